-- Shipping: one batch or copy to a target, over dblink, with the SQL that
-- reads it (sql/59_batch_sql.sql) and the SQL that applies it
-- (sql/37_apply.sql). File export (the CLI) runs the same read queries
-- through COPY.
--
-- Values travel as text produced by each type's output function under fixed
-- settings (pgshadow._settings: DateStyle ISO, IntervalStyle postgres, TimeZone
-- UTC, extra_float_digits 3, bytea_output hex, lc_monetary C) and are parsed by the same type's
-- input function on the target under the same settings, so they round-trip
-- exactly whatever either server's defaults are. Rows go column by column as
-- text arrays, so one statement of a few literals carries a whole chunk (up to
-- 20k keys or rows), no per-row statements; chunks are pipelined (see _ship).

-- The batch strategy for a target that runs pgshadow (_target_is_peer): each
-- chunk of keys goes with its rows and versions to the target's
-- pgshadow.apply(), which needs them together to resolve conflicts. p_open:
-- inside a consistent export's remote transaction (_ship).
CREATE FUNCTION pgshadow._ship_peer(p_sub pgshadow.subscription, p_old pg_snapshot, p_new pg_snapshot,
                                    p_chunk integer, p_open boolean,
                                    OUT keys bigint, OUT upserts bigint, OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp  -- and the fixed value settings (89_finish.sql)
AS $$
DECLARE
    v_keys  text := pgshadow._chunk_sql(p_sub);
    v_after text[];
    v_last  text[];
    v_nkeys bigint;
    v_nrows bigint;
    v_karr  text[];
    v_rarr  text[];
    v_at    timestamptz[];
BEGIN
    keys := 0; upserts := 0; conflicts := 0;
    IF NOT p_open THEN
        PERFORM pgshadow._remote(p_sub, pgshadow._remote_begin());
    END IF;
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
    IF NOT p_open THEN
        PERFORM pgshadow._remote(p_sub, 'COMMIT');
    END IF;
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
-- Length: the pipeline state (statements buffered, values staged, a
-- message in flight) runs through both phases, deleting keys and appending
-- rows; split, each part would pass it back and forth. The peer strategy
-- is _ship_peer, the SQL it runs comes from sql/59_batch_sql.sql.
CREATE FUNCTION pgshadow._ship(p_sub pgshadow.subscription, p_old pg_snapshot, p_new pg_snapshot,
                               p_copy boolean, p_chunk integer,
                               OUT keys bigint, OUT upserts bigint, OUT deletes bigint, OUT truncated boolean,
                               OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp  -- and the fixed value settings (89_finish.sql)
SET enable_hashagg = off   -- stream the chunk aggregation instead of holding every chunk
SET work_mem = '64MB'      -- a batch's key sort (1M keys: about 25 MB) stays in memory
AS $$
DECLARE
    v_tr     pgshadow.tracked;
    v_types  text[] := pgshadow._column_types(p_sub);
    v_dest   text := format('%I.%I', p_sub.dest_schema, p_sub.dest_table);
    v_full   boolean;
    v_nkeys  bigint;
    v_nrows  bigint;
    v_karr   text[];
    v_rarr   text[];
    v_buf    text;                -- statements to apply, naming no row value
    v_stage  text;                -- what they apply, staged (_stage_sql); sent first
    v_upsert boolean;
    -- pgshadow.stage_values = off puts the values in the applying statements
    -- again (one message per chunk: a little faster, see README)
    v_staged boolean := coalesce(nullif(current_setting('pgshadow.stage_values', true), ''), 'on')::boolean;
    v_cur    refcursor;
    v_first  boolean := true;    -- no key chunk in v_buf yet
    v_rows   boolean := false;   -- a chunk of rows is in v_buf
    v_busy   boolean := false;
    v_nestloop text;
    v_appname  text := current_setting('application_name');
    -- NULL when never analyzed: the total is then unknown
    v_total    bigint := pgshadow._row_estimate(p_sub.tbl);
    -- rows per statement sent: small enough that the target starts applying
    -- early and the source's last chunk, which nothing overlaps, is short
    -- (measured on 100k updated rows: 20k about as fast as 50k or 100k, 5k slower)
    v_chunk  integer := least(p_chunk, 20000);
    -- keys per DELETE: one statement deletes a whole batch of up to a
    -- million keys, so the target's planner may pick one hash join over a
    -- scan of the table (a 1M-key batch in a 1M-row table: 2.9 s against 4
    -- by index probes); in 20k-key chunks it would scan the table per chunk
    v_key_chunk integer := greatest(p_chunk, 1000000);
    -- a consistent export (shadow_export) holds one remote transaction open
    -- for all the target's tables: then this batch neither begins nor ends it
    v_open   boolean := pgshadow._in_consistent_export();
BEGIN
    PERFORM pgshadow._check_policy(p_sub.tbl, p_sub.target, p_sub.on_conflict);
    SELECT * INTO v_tr FROM pgshadow.tracked WHERE tbl = p_sub.tbl;
    keys := 0; upserts := 0; deletes := 0; truncated := false; conflicts := 0;
    IF NOT p_copy THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM pgshadow.%I WHERE %s AND shadow_op = ''T'')',
                       v_tr.shadow, pgshadow._pending_where('$1', '$2'))
           INTO truncated USING p_old, p_new;
    END IF;
    v_full := p_copy OR truncated;

    IF pgshadow._target_is_peer() AND NOT v_full THEN
        SELECT p.keys, p.upserts, p.conflicts INTO keys, upserts, conflicts
          FROM pgshadow._ship_peer(p_sub, p_old, p_new, p_chunk, v_open) p;
        deletes := keys - upserts;
        RETURN;
    END IF;

    v_upsert := pgshadow._apply_mode(p_sub, v_tr, v_full) = 'upsert';
    -- v_stage and v_buf hold what is not sent yet: they are flushed only when
    -- more follows, so a batch of one chunk (its BEGIN and staged values,
    -- then its deletes, rows and COMMIT) goes in two round trips
    -- A full copy replaces the target's rows by DELETE, not TRUNCATE: readers
    -- of the target keep seeing the old rows until the new ones commit
    -- (TRUNCATE would lock them out for the whole copy), and rows other
    -- tables reference may be replaced within deferred constraints (so the
    -- copy defers them: a DEFERRABLE foreign key to the table holds at commit).
    -- Staged values go first, in a message of their own that opens the
    -- transaction (none is opened inside a consistent export's); an
    -- upserting full copy deletes what it did not write at the end.
    v_stage := CASE WHEN v_staged AND NOT v_open THEN pgshadow._remote_begin() ELSE '' END;
    v_buf := CASE WHEN v_staged OR v_open THEN '' ELSE pgshadow._remote_begin() END
          || CASE WHEN v_full THEN ' SET CONSTRAINTS ALL DEFERRED;' ELSE '' END
          || CASE WHEN v_full AND NOT v_upsert THEN format(' DELETE FROM %s;', v_dest) ELSE '' END;
    IF NOT v_full THEN
        -- the keys to delete, in chunks of v_key_chunk (_key_chunks_sql). A
        -- row that comes or goes between this read and the read of the rows
        -- is shipped by the next batch, as its change commits after this
        -- batch's snapshot.
        OPEN v_cur FOR EXECUTE pgshadow._key_chunks_sql(p_sub, v_tr, v_upsert)
          USING p_old, p_new, v_key_chunk;
        LOOP
            FETCH v_cur INTO v_nkeys, v_karr;
            EXIT WHEN NOT FOUND;
            keys := keys + v_nkeys;
            CONTINUE WHEN v_karr[1] IS NULL;  -- (upsert) every key of the chunk has a row
            IF NOT v_first THEN
                v_busy := pgshadow._remote_flush(p_sub, v_stage, v_buf, v_busy);
                v_stage := ''; v_buf := '';
            END IF;
            v_stage := v_stage || pgshadow._stage_sql('k', v_karr, v_staged);
            v_buf := v_buf || pgshadow._apply_text(p_sub, v_tr, v_types, pgshadow._staged('k', v_karr, v_staged), NULL, false);
            v_first := false;
        END LOOP;
        CLOSE v_cur;
        IF keys >= v_chunk AND v_buf <> '' THEN
            -- more than one chunk of rows follows: the target deletes while
            -- the source reads them (reading starts with a sort of the batch)
            v_busy := pgshadow._remote_flush(p_sub, v_stage, v_buf, v_busy);
            v_stage := ''; v_buf := '';
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
       AND keys > 0.05 * coalesce(v_total, 0) THEN
        PERFORM set_config('enable_nestloop', 'off', true);
    END IF;
    -- the pending keys again, as a plain semi-join source (_pending_keys_sql)
    OPEN v_cur FOR EXECUTE pgshadow._row_chunks_sql(p_sub,
            CASE WHEN v_full THEN NULL ELSE pgshadow._pending_keys_sql(v_tr) END,
            NOT v_full AND keys < v_chunk)
        USING p_old, p_new, v_chunk;
    PERFORM set_config('enable_nestloop', v_nestloop, true);
    PERFORM pgshadow._progress(p_sub.id, p_sub.tbl, v_full, 0, CASE WHEN v_full THEN v_total ELSE keys END);
    LOOP
        FETCH v_cur INTO v_nrows, v_rarr;
        EXIT WHEN NOT FOUND;
        IF v_rows THEN
            v_busy := pgshadow._remote_flush(p_sub, v_stage, v_buf, v_busy);
            v_stage := ''; v_buf := '';
            -- progress, for other sessions to watch (shadow_progress)
            PERFORM pgshadow._progress(p_sub.id, p_sub.tbl, v_full, upserts, CASE WHEN v_full THEN v_total ELSE keys END);
        END IF;
        v_stage := v_stage || pgshadow._stage_sql('r', v_rarr, v_staged);
        v_buf := v_buf || pgshadow._apply_text(p_sub, v_tr, v_types, NULL, pgshadow._staged('r', v_rarr, v_staged), v_upsert);
        v_rows := true;
        upserts := upserts + v_nrows;
    END LOOP;
    CLOSE v_cur;
    PERFORM set_config('application_name', v_appname, true);
    IF v_busy THEN
        PERFORM pgshadow._remote_wait(p_sub);
    END IF;
    IF v_stage <> '' THEN
        PERFORM pgshadow._remote(p_sub, v_stage);
    END IF;
    IF v_full AND v_upsert THEN
        -- every row of the source was written by this transaction (an
        -- update too makes a new row version): the others are not in the
        -- source any more. Rows other tables reference are kept where the
        -- source kept them, so a non-deferrable foreign key holds.
        v_buf := v_buf || format(' DELETE FROM %s d WHERE NOT d.xmin OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()::pg_catalog.xid;', v_dest);
    END IF;
    IF NOT v_open THEN
        PERFORM pgshadow._remote(p_sub, v_buf || ' COMMIT;');
    ELSIF v_buf <> '' THEN
        PERFORM pgshadow._remote(p_sub, v_buf);
    END IF;

    IF v_full THEN
        keys := upserts;
    ELSE
        deletes := keys - upserts;
    END IF;
END
$$;

-- Progress of a running copy or batch (pgshadow._ship), for other sessions
-- to watch: the shipping session writes it into its application_name, the
-- one place another session sees mid-transaction (a row written to a table
-- shows only at commit). Numbers first and the table last, since
-- application_name keeps 63 bytes. p_total NULL: not known. Callable by
-- anyone (_ship runs with the exporter's rights): it only sets the caller's
-- own application_name.
CREATE FUNCTION pgshadow._progress(p_sub bigint, p_tbl regclass, p_full boolean, p_done bigint, p_total bigint)
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT set_config('application_name',
                      left(format('pgshadow %s #%s: %s/%s%s rows %s', CASE WHEN p_full THEN 'copy' ELSE 'batch' END, p_sub,
                                  p_done, CASE WHEN p_full THEN '~' ELSE '' END, coalesce(p_total::text, '?'), p_tbl), 63),
                      true)
$$;
