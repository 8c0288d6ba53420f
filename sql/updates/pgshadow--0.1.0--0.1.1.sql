-- pgshadow 0.1.0 -> 0.1.1: push export pipelines its statements, and
-- chunks are cheaper to apply.
--
-- _ship sends each statement with dblink_send_query and reads and renders
-- the next while the target applies it: the deletes of a batch in one
-- statement per million keys, then the rows in chunks of at most 20k;
-- _remote_send, _remote_wait and _remote_pipe are the asynchronous halves,
-- _remote_failed the error they share with _remote. _apply_sql parses each
-- column's array as an array of the column's type (_array_of) and unnests
-- rows in the select list. _ship no longer leaves enable_nestloop off for the
-- rest of the transaction. _export_sub finds the pending count and where a
-- backlog would be cut in one pass, and counts its distinct keys only when
-- a cut is possible.
-- The functions below are copies of their sql/ versions.

-- How the target parses a column's text array literal: as an array of the
-- column's own type where the text form can go through array_in as it is
-- (array_in then calls the type's input function on each element, with no
-- text value made in between: a chunk applies about 30% faster). NULL means
-- text[] and a cast per value: for array types (their elements are array
-- literals themselves) and types whose array delimiter is not a comma (box).
CREATE FUNCTION pgshadow._array_of(p_type text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_type || '[]' FROM pg_type y
     WHERE y.oid = to_regtype(p_type) AND y.typdelim = ',' AND y.typcategory <> 'A' AND y.typarray <> 0
$$;

-- The statements that apply one chunk on a target: delete the keys (one
-- array literal per key column), then append the rows (one per shipped
-- column), each value parsed by the target's input function of its source
-- type. The target maps columns by name, so it may order them differently or
-- have more (those get their defaults). Rows are unnested in the select list,
-- which streams them (unnest in FROM would first copy the chunk into a
-- tuplestore).
-- The planner sees how many keys a constant array holds, and so chooses
-- between probing the key index per key and one hash join over a scan of
-- the table; that is why key chunks are large (see _ship).
CREATE OR REPLACE FUNCTION pgshadow._apply_sql(p_sub pgshadow.subscription, p_tr pgshadow.tracked, p_types text[],
                                    p_keys text[], p_rows text[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p_keys IS NULL THEN '' ELSE
               (SELECT format(' DELETE FROM %I.%I d USING unnest(%s) AS k(%s) WHERE %s;',
                       p_sub.dest_schema, p_sub.dest_table,
                       string_agg(format('%s::%s', pgshadow._dollar(v), coalesce(y, 'text[]')), ', ' ORDER BY i),
                       string_agg(quote_ident(c), ', ' ORDER BY i),
                       string_agg(format('d.%1$I = k.%1$I', c) || CASE WHEN y IS NULL THEN '::' || t ELSE '' END, ' AND ' ORDER BY i))
                  FROM unnest(p_tr.key_cols, p_tr.key_types, p_keys) WITH ORDINALITY AS u(c, t, v, i),
                       LATERAL pgshadow._array_of(t) AS y)
           END
        || CASE WHEN p_rows IS NULL THEN '' ELSE
               (SELECT format(' INSERT INTO %I.%I (%s) OVERRIDING SYSTEM VALUE SELECT %s;',
                       p_sub.dest_schema, p_sub.dest_table,
                       string_agg(quote_ident(c), ', ' ORDER BY i),
                       string_agg(format('unnest(%s::%s)', pgshadow._dollar(v), coalesce(y, 'text[]'))
                                  || CASE WHEN y IS NULL THEN '::' || t ELSE '' END, ', ' ORDER BY i))
                  FROM unnest(p_sub.columns, p_types, p_rows) WITH ORDINALITY AS u(c, t, v, i),
                       LATERAL pgshadow._array_of(t) AS y)
           END
$$;

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
-- pending key is deleted (a statement per million keys), then the current
-- rows are appended (in chunks of at most 20k rows, all read under one
-- snapshot), so the target passes through no state that breaks a unique
-- constraint the source keeps. Statements are pipelined: the target applies
-- one while the source reads and renders the next (dblink_send_query), so
-- the two servers work at the same time. A batch that fits in one chunk is
-- one round trip. A batch
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
SET work_mem = '64MB'      -- a batch's key sort (1M keys: about 25 MB) stays in memory
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
    v_first  boolean := true;    -- no key chunk in v_buf yet
    v_rows   boolean := false;   -- a chunk of rows is in v_buf
    v_busy   boolean := false;
    v_nestloop text;
    -- rows per statement sent: small enough that the target starts applying
    -- early and the source's last chunk, which nothing overlaps, is short
    -- (measured on 100k updated rows: 20k about as fast as 50k or 100k, 5k slower)
    v_chunk  integer := least(p_chunk, 20000);
    -- keys per DELETE: one statement deletes a whole batch of up to a
    -- million keys, so the target's planner may pick one hash join over a
    -- scan of the table (a 1M-key batch in a 1M-row table: 2.9 s against 4
    -- by index probes); in 20k-key chunks it would scan the table per chunk
    v_key_chunk integer := greatest(p_chunk, 1000000);
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
    -- so a batch of one chunk (its BEGIN, deletes, rows and COMMIT) goes in
    -- one round trip
    v_buf := pgshadow._remote_begin() || CASE WHEN v_full THEN format(' TRUNCATE %s;', v_dest) ELSE '' END;
    IF NOT v_full THEN
        -- the distinct pending keys, in chunks of v_key_chunk, through one
        -- cursor: one pass over the shadow table however many chunks there are
        OPEN v_cur FOR EXECUTE format(
            'SELECT count(*), ARRAY[%1$s] FROM (SELECT %2$s, row_number() OVER (ORDER BY %2$s) AS pgshadow_rn'
            ' FROM pgshadow.%3$I WHERE %4$s AND shadow_op <> ''T'' GROUP BY %2$s) k'
            ' GROUP BY (pgshadow_rn - 1) / $3 ORDER BY (pgshadow_rn - 1) / $3',
            (SELECT string_agg(format('array_agg(%I::text)::text', c), ', ') FROM unnest(v_tr.key_cols) c),
            (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c),
            v_tr.shadow, pgshadow._pending_where('$1', '$2'))
          USING p_old, p_new, v_key_chunk;
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
        IF keys >= v_chunk THEN
            -- more than one chunk of rows follows: the target deletes while
            -- the source reads them (reading starts with a sort of the batch)
            v_busy := pgshadow._remote_pipe(p_sub, v_buf, v_busy);
            v_buf := '';
        END IF;
    END IF;

    -- A batch touching a good part of the table reads it faster by one hash
    -- join than by an index probe per key; the planner cannot know the batch
    -- size (the shadow rows' snapshot filter defeats its estimates), we do.
    -- The setting holds only while the cursor is planned: left on, it would
    -- slow every later query of the transaction, ours (each chunk's SQL took
    -- ten times as long to build) and the caller's.
    v_nestloop := current_setting('enable_nestloop');
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
    PERFORM set_config('enable_nestloop', v_nestloop, true);
    LOOP
        FETCH v_cur INTO v_nrows, v_rarr;
        EXIT WHEN NOT FOUND;
        IF v_rows THEN
            v_busy := pgshadow._remote_pipe(p_sub, v_buf, v_busy);
            v_buf := '';
        END IF;
        v_buf := v_buf || pgshadow._apply_sql(p_sub, v_tr, v_types, NULL, v_rarr);
        v_rows := true;
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

-- Ships every pending batch of one subscription over the open target
-- connection. Each batch is one remote transaction; the watermark moves only
-- after its batch committed on the target, so a failure resends, never loses.
-- A backlog over p_batch_size is cut at a transaction boundary into several
-- batches, each with a snapshot of its own (pgshadow._snapshot_between).
CREATE OR REPLACE FUNCTION pgshadow._export_sub(p_id bigint, p_batch_size integer,
    OUT tbl regclass, OUT dest text, OUT batches integer, OUT keys bigint, OUT upserts bigint,
    OUT deletes bigint, OUT truncated boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub     pgshadow.subscription := pgshadow._lock_subscription(p_id);
    v_tr      pgshadow.tracked;
    v_new     pg_snapshot;
    v_to      pg_snapshot;
    v_pending bigint;
    v_bound   xid8;
    v_first   boolean;
    v_r       record;
BEGIN
    SELECT * INTO v_tr FROM pgshadow.tracked t WHERE t.tbl = v_sub.tbl;
    tbl := v_sub.tbl;
    dest := format('%I.%I', v_sub.dest_schema, v_sub.dest_table);
    batches := 0; keys := 0; upserts := 0; deletes := 0; truncated := false;
    LOOP
        v_new := pgshadow._snapshot();
        -- the pending changes and, in the same pass, the transaction where
        -- they pass the cap (and whether it is the first one)
        EXECUTE format('SELECT coalesce(sum(n), 0)::bigint, min(x) FILTER (WHERE cum > $3), min(rn) FILTER (WHERE cum > $3) = 1'
                       ' FROM (SELECT shadow_xid AS x, count(*) AS n, sum(count(*)) OVER (ORDER BY shadow_xid) AS cum,'
                       ' row_number() OVER (ORDER BY shadow_xid) AS rn'
                       ' FROM pgshadow.%I WHERE %s GROUP BY shadow_xid) s',
                       v_tr.shadow, pgshadow._pending_where('$1', '$2'))
           INTO v_pending, v_bound, v_first USING v_sub.snapshot, v_new, p_batch_size;
        IF v_pending = 0 THEN
            -- nothing to ship: still move the watermark so purges can proceed
            PERFORM pgshadow._advance(p_id, v_new, 0, 0);
            EXIT;
        END IF;
        v_to := v_new;
        -- A cut is not a real snapshot (a later xid may have committed first),
        -- so the target would pass through a state the source never had; that
        -- is harmless unless a unique constraint other than the key forbids it.
        -- Cutting also ships a key again in every part it changed in, so it is
        -- only done when the backlog's distinct keys, not just its changes,
        -- pass the cap: 100k keys changed 10 times each stay one net batch.
        IF v_pending > p_batch_size AND NOT EXISTS (
               SELECT FROM pg_index i WHERE i.indrelid = v_sub.tbl
                  AND ((i.indisunique AND NOT i.indisprimary) OR i.indisexclusion)) THEN
            -- cut after the transaction that passes the cap; one larger
            -- transaction goes alone, chunked
            IF v_first THEN
                v_bound := (v_bound::text::numeric + 1)::text::xid8;
            END IF;
            -- a cut that leaves something for later, only if the distinct
            -- keys pass the cap too (counted last: it reads the whole backlog)
            IF v_bound < pg_snapshot_xmax(v_new) THEN
                EXECUTE format('SELECT count(*) FROM (SELECT DISTINCT %s FROM pgshadow.%I WHERE %s AND shadow_op <> ''T'') k',
                               (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c),
                               v_tr.shadow, pgshadow._pending_where('$1', '$2'))
                   INTO v_pending USING v_sub.snapshot, v_new;
                IF v_pending > p_batch_size THEN
                    v_to := pgshadow._snapshot_between(v_sub.snapshot, v_new, v_bound);
                END IF;
            END IF;
        END IF;
        v_r := pgshadow._ship(v_sub, v_sub.snapshot, v_to, false, p_batch_size);
        IF v_r.conflicts > 0 AND v_sub.on_conflict = 'error' THEN
            -- the target applied what did not conflict and logged the rest; the
            -- watermark stays until an operator resolves them
            RAISE EXCEPTION 'pgshadow: % conflict(s) shipping % to target "%" (on_conflict => error)',
                v_r.conflicts, v_sub.tbl, v_sub.target
                USING ERRCODE = 'serialization_failure',
                      HINT = 'See shadow_conflicts on the target; resolve the rows, or shadow_skip() one side.';
        END IF;
        PERFORM pgshadow._advance(p_id, v_to, v_r.keys, 1);
        v_sub.snapshot := v_to;
        batches := batches + 1;
        keys := keys + v_r.keys;
        upserts := upserts + v_r.upserts;
        deletes := deletes + v_r.deletes;
        truncated := truncated OR v_r.truncated;
        EXIT WHEN v_to::text = v_new::text;
    END LOOP;
END
$$;
