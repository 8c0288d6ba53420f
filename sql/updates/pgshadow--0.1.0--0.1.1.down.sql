-- pgshadow 0.1.1 -> 0.1.0 (golang-migrate down step): back to one
-- synchronous round trip per chunk. _ship and _remote are copies of their
-- 0.1.0 versions; the asynchronous helpers go.

-- Runs SQL on the open target connection, naming target and table on failure.
CREATE OR REPLACE FUNCTION pgshadow._remote(p_sub pgshadow.subscription, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('SELECT %I.dblink_exec(%L, $1)', pgshadow._dblink(), 'pgshadow') USING p_sql;
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'pgshadow: applying % to %.% on target "%" failed: %',
        p_sub.tbl, quote_ident(p_sub.dest_schema), quote_ident(p_sub.dest_table), p_sub.target, SQLERRM
        USING ERRCODE = SQLSTATE;
END
$$;

-- Ships one batch (the keys that became visible between p_old and p_new) or,
-- with p_copy, the whole table, inside ONE remote transaction: first every
-- pending key is deleted (in chunks of p_chunk keys), then the current rows
-- are appended (in chunks of p_chunk rows, all read under one snapshot), so
-- the target passes through no state that breaks a unique constraint the
-- source keeps. A batch that fits in one chunk is one round trip. A batch
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
    v_c      bigint;
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
          USING p_old, p_new, p_chunk;
        LOOP
            FETCH v_cur INTO v_nkeys, v_karr;
            EXIT WHEN NOT FOUND;
            IF NOT v_first THEN
                PERFORM pgshadow._remote(p_sub, v_buf);
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
            NOT v_full AND keys < p_chunk)
        USING p_old, p_new, p_chunk;
    LOOP
        FETCH v_cur INTO v_nrows, v_rarr;
        EXIT WHEN NOT FOUND;
        IF NOT v_first THEN
            PERFORM pgshadow._remote(p_sub, v_buf);
            v_buf := '';
        END IF;
        v_buf := v_buf || pgshadow._apply_sql(p_sub, v_tr, v_types, NULL, v_rarr);
        v_first := false;
        upserts := upserts + v_nrows;
    END LOOP;
    CLOSE v_cur;
    PERFORM pgshadow._remote(p_sub, v_buf || ' COMMIT;');

    IF v_full THEN
        keys := upserts;
    ELSE
        deletes := keys - upserts;
    END IF;
END
$$;

DROP FUNCTION pgshadow._remote_pipe(pgshadow.subscription, text, boolean);
DROP FUNCTION pgshadow._remote_wait(pgshadow.subscription);
DROP FUNCTION pgshadow._remote_send(pgshadow.subscription, text);
DROP FUNCTION pgshadow._remote_failed(pgshadow.subscription, text, text);
