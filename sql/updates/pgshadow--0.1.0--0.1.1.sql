-- pgshadow 0.1.0 -> 0.1.1: push export pipelines its chunks.
--
-- _ship sends each chunk of deletes and rows with dblink_send_query and reads
-- and renders the next chunk while the target applies it, in chunks of at
-- most 20k keys or rows; _remote_send, _remote_wait and _remote_pipe are the
-- asynchronous halves, _remote_failed the error they share with _remote.
-- The functions below are copies of their sql/60_ship.sql versions.

-- Runs SQL on the open target connection, naming target and table on failure.
CREATE OR REPLACE FUNCTION pgshadow._remote(p_sub pgshadow.subscription, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('SELECT %I.dblink_exec(%L, $1)', pgshadow._dblink(), 'pgshadow') USING p_sql;
EXCEPTION WHEN OTHERS THEN
    PERFORM pgshadow._remote_failed(p_sub, SQLERRM, SQLSTATE);
END
$$;

-- Sends SQL on the open target connection and returns at once, so the caller
-- builds the next chunk while the target applies this one. At most one
-- statement string is in flight: _remote_wait must collect it before the
-- connection is used again.
CREATE FUNCTION pgshadow._remote_send(p_sub pgshadow.subscription, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sent integer;
BEGIN
    EXECUTE format('SELECT %I.dblink_send_query(%L, $1)', pgshadow._dblink(), 'pgshadow') INTO v_sent USING p_sql;
    IF v_sent IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'could not send the statements (connection lost?)' USING ERRCODE = 'connection_failure';
    END IF;
EXCEPTION WHEN OTHERS THEN
    PERFORM pgshadow._remote_failed(p_sub, SQLERRM, SQLSTATE);
END
$$;

-- Waits until the statements _remote_send sent have run, collecting the
-- result of each (a command status row, then an empty result at the end); a
-- statement that failed raises its error here.
CREATE FUNCTION pgshadow._remote_wait(p_sub pgshadow.subscription) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl name := pgshadow._dblink();
    v_n   bigint;
BEGIN
    LOOP
        EXECUTE format('SELECT count(*) FROM %I.dblink_get_result(%L) AS r(status text)', v_dbl, 'pgshadow') INTO v_n;
        EXIT WHEN v_n = 0;
    END LOOP;
EXCEPTION WHEN OTHERS THEN
    PERFORM pgshadow._remote_failed(p_sub, SQLERRM, SQLSTATE);
END
$$;

-- The error of a failed apply, naming table, destination and target.
CREATE FUNCTION pgshadow._remote_failed(p_sub pgshadow.subscription, p_message text, p_state text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'pgshadow: applying % to %.% on target "%" failed: %',
        p_sub.tbl, quote_ident(p_sub.dest_schema), quote_ident(p_sub.dest_table), p_sub.target, p_message
        USING ERRCODE = p_state;
END
$$;

-- Hands the next statements of a pipelined apply to the target: waits for
-- the ones in flight (p_busy), if any, then sends these without waiting, so
-- the source reads and renders the next chunk while the target applies this
-- one. Returns true: something is in flight now.
CREATE FUNCTION pgshadow._remote_pipe(p_sub pgshadow.subscription, p_sql text, p_busy boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_busy THEN
        PERFORM pgshadow._remote_wait(p_sub);
    END IF;
    PERFORM pgshadow._remote_send(p_sub, p_sql);
    RETURN true;
END
$$;

-- Ships one batch (the keys that became visible between p_old and p_new) or,
-- with p_copy, the whole table, inside ONE remote transaction: first every
-- pending key is deleted (in chunks of at most 20k keys), then the current
-- rows are appended (in chunks of at most 20k rows, all read under one
-- snapshot), so the target passes through no state that breaks a unique
-- constraint the source keeps. Chunks are pipelined: the target applies one
-- while the source reads and renders the next (dblink_send_query), so the
-- two servers work at the same time. A batch that fits in one chunk is one
-- round trip. A batch
-- holding a TRUNCATE ships as TRUNCATE + full copy: right whatever order the
-- batch's transactions committed in.
CREATE OR REPLACE FUNCTION pgshadow._ship(p_sub pgshadow.subscription, p_old pg_snapshot, p_new pg_snapshot,
                               p_copy boolean, p_chunk integer,
                               OUT keys bigint, OUT upserts bigint, OUT deletes bigint, OUT truncated boolean,
                               OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
SET enable_hashagg = off   -- stream the chunk aggregation instead of holding every chunk
SET work_mem = '64MB'      -- a chunk's key sort (100k keys: a few MB) stays in memory
AS $$
DECLARE
    v_tr     pgshadow.tracked;
    v_types  text[] := pgshadow._column_types(p_sub);
    v_dest   text := format('%I.%I', p_sub.dest_schema, p_sub.dest_table);
    v_full   boolean;
    v_keys   text;
    v_after  text[];
    v_last   text[];
    v_nkeys  bigint;
    v_nrows  bigint;
    v_karr   text[];
    v_rarr   text[];
    v_at     timestamptz[];
    v_buf    text;
    v_cur    refcursor;
    v_done   boolean;
    v_first  boolean := true;
    v_busy   boolean := false;
    -- rows (or keys) per statement sent: small enough that the target starts
    -- applying early and the source's last chunk, which nothing overlaps, is short
    -- (measured on 100k updated rows: 20k about as fast as 50k or 100k, 5k slower)
    v_chunk  integer := least(p_chunk, 20000);
BEGIN
    SELECT * INTO v_tr FROM pgshadow.tracked WHERE tbl = p_sub.tbl;
    keys := 0; upserts := 0; deletes := 0; truncated := false; conflicts := 0;
    IF NOT p_copy THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM pgshadow.%I WHERE %s AND shadow_op = ''T'')',
                       v_tr.shadow, pgshadow._pending_where('$1', '$2'))
           INTO truncated USING p_old, p_new;
    END IF;
    v_full := p_copy OR truncated;

    IF current_setting('pgshadow.peer', true) = 'on' AND NOT v_full THEN
        -- A peer applies each chunk through pgshadow.apply(), which needs a
        -- chunk's keys and rows together to resolve conflicts.
        PERFORM pgshadow._remote(p_sub, pgshadow._remote_begin());
        v_keys := pgshadow._chunk_sql(p_sub);
        LOOP
            EXECUTE v_keys INTO v_nkeys, v_nrows, v_last, v_karr, v_rarr, v_at USING p_old, p_new, v_after, p_chunk;
            IF v_nkeys > 0 THEN
                conflicts := conflicts + pgshadow._remote_apply(p_sub, v_karr, v_at, CASE WHEN v_nrows > 0 THEN v_rarr END);
            END IF;
            keys := keys + v_nkeys;
            upserts := upserts + v_nrows;
            EXIT WHEN v_nkeys < p_chunk;
            v_after := v_last;
        END LOOP;
        PERFORM pgshadow._remote(p_sub, 'COMMIT');
        deletes := keys - upserts;
        RETURN;
    END IF;

    -- v_buf holds what is not sent yet: it is flushed only when more follows,
    -- so a batch of one chunk goes in one round trip with its BEGIN and COMMIT
    v_buf := pgshadow._remote_begin() || CASE WHEN v_full THEN format(' TRUNCATE %s;', v_dest) ELSE '' END;
    IF NOT v_full THEN
        -- the distinct pending keys, in chunks of p_chunk, through one cursor:
        -- one pass over the shadow table however many chunks there are
        OPEN v_cur FOR EXECUTE format(
            'SELECT count(*), ARRAY[%1$s] FROM (SELECT %2$s, row_number() OVER (ORDER BY %2$s) AS pgshadow_rn'
            ' FROM pgshadow.%3$I WHERE %4$s AND shadow_op <> ''T'' GROUP BY %2$s) k'
            ' GROUP BY (pgshadow_rn - 1) / $3 ORDER BY (pgshadow_rn - 1) / $3',
            (SELECT string_agg(format('array_agg(%I::text)::text', c), ', ') FROM unnest(v_tr.key_cols) c),
            (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c),
            v_tr.shadow, pgshadow._pending_where('$1', '$2'))
          USING p_old, p_new, v_chunk;
        LOOP
            FETCH v_cur INTO v_nkeys, v_karr;
            EXIT WHEN NOT FOUND;
            IF NOT v_first THEN
                v_busy := pgshadow._remote_pipe(p_sub, v_buf, v_busy);
                v_buf := '';
            END IF;
            v_buf := v_buf || pgshadow._apply_sql(p_sub, v_tr, v_types, v_karr, NULL);
            v_first := false;
            keys := keys + v_nkeys;
        END LOOP;
        CLOSE v_cur;
    END IF;

    -- A batch touching a good part of the table reads it faster by one hash
    -- join than by an index probe per key; the planner cannot know the batch
    -- size (the shadow rows' snapshot filter defeats its estimates), we do.
    IF NOT v_full AND keys > 10000
       AND keys > 0.05 * (SELECT greatest(c.reltuples, 0) FROM pg_class c WHERE c.oid = p_sub.tbl) THEN
        PERFORM set_config('enable_nestloop', 'off', true);
    END IF;
    -- the pending keys again, as a plain semi-join source (no grouping or order)
    OPEN v_cur FOR EXECUTE pgshadow._row_chunks_sql(p_sub,
            CASE WHEN v_full THEN NULL
                 ELSE format('SELECT %s FROM pgshadow.%I WHERE %s AND shadow_op <> ''T''',
                             (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c),
                             v_tr.shadow, pgshadow._pending_where('$1', '$2')) END,
            NOT v_full AND keys < v_chunk)
        USING p_old, p_new, v_chunk;
    LOOP
        FETCH v_cur INTO v_nrows, v_rarr;
        EXIT WHEN NOT FOUND;
        IF NOT v_first THEN
            v_busy := pgshadow._remote_pipe(p_sub, v_buf, v_busy);
            v_buf := '';
        END IF;
        v_buf := v_buf || pgshadow._apply_sql(p_sub, v_tr, v_types, NULL, v_rarr);
        v_first := false;
        upserts := upserts + v_nrows;
    END LOOP;
    CLOSE v_cur;
    IF v_busy THEN
        PERFORM pgshadow._remote_wait(p_sub);
    END IF;
    PERFORM pgshadow._remote(p_sub, v_buf || ' COMMIT;');

    IF v_full THEN
        keys := upserts;
    ELSE
        deletes := keys - upserts;
    END IF;
END
$$;
