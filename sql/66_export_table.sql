-- Exporting one subscription: ship its pending batch (or its copy) and move
-- its watermark, or record why not.

-- Moves the watermark: called only after the target committed the batch.
CREATE FUNCTION pgshadow._advance(p_id bigint, p_snapshot pg_snapshot, p_keys bigint, p_batches integer)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tbl regclass;
BEGIN
    SELECT tbl INTO v_tbl FROM pgshadow.subscription WHERE id = p_id;
    PERFORM pgshadow._check_may_export(v_tbl, pgshadow._caller());
    -- A watermark is a snapshot of this server's past: one ahead of its
    -- transaction counter would make the next export re-baseline every
    -- subscription of every role (pgshadow._history_break).
    IF pg_snapshot_xmax(p_snapshot) > greatest(pg_snapshot_xmax(pg_current_snapshot()),
                                                (pg_current_xact_id()::text::numeric + 1)::text::xid8) THEN
        RAISE EXCEPTION 'pgshadow: watermark % of subscription % is in the future of this server (next transaction %)',
            p_snapshot, p_id, pg_snapshot_xmax(pg_current_snapshot())
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE pgshadow.subscription
       SET snapshot = p_snapshot, batch_no = batch_no + p_batches, needs_copy = false,
           keys_shipped = keys_shipped + p_keys, last_export = clock_timestamp(),
           last_error = NULL, last_error_at = NULL
     WHERE id = p_id;
    IF p_batches > 0 THEN
        DELETE FROM pgshadow.error WHERE sub_id = p_id;
    END IF;
END
$$;

-- Records why an export failed (called by clients in their own transaction,
-- since the failed export itself rolls back).
CREATE FUNCTION pgshadow._record_error(p_target text, p_error text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE pgshadow.subscription s
       SET last_error = left(p_error, 2000), last_error_at = clock_timestamp()
     WHERE s.target = p_target
       AND pgshadow._may_export(pgshadow._caller(), s.tbl);
END
$$;

CREATE FUNCTION pgshadow._reset(p_id bigint, p_snapshot pg_snapshot, p_needs_copy boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._check_acts_for((SELECT tbl FROM pgshadow.subscription WHERE id = p_id), pgshadow._caller());
    UPDATE pgshadow.subscription
       SET snapshot = p_snapshot, needs_copy = p_needs_copy, last_error = NULL, last_error_at = NULL
     WHERE id = p_id;
    DELETE FROM pgshadow.error WHERE sub_id = p_id;
END
$$;

-- Ships every pending batch of one subscription over the open target
-- connection. Each batch is one remote transaction; the watermark moves only
-- after its batch committed on the target, so a failure resends, never loses.
-- A backlog over p_batch_size is cut at a transaction boundary into several
-- batches, each with a snapshot of its own (pgshadow._snapshot_between).
-- Length: the loop over a subscription's batches: deferred copy, column
-- changes, the cut at the batch cap, ship, move the watermark. The steps
-- share the subscription row and the snapshots of the loop.
CREATE FUNCTION pgshadow._export_sub(p_id bigint, p_batch_size integer,
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
    IF NOT pgshadow._acts_for(pgshadow._caller(), v_sub.tbl) THEN
        PERFORM pgshadow._check_export_login(v_sub);
    END IF;
    -- columns added or dropped since the last export (a new one the target
    -- lacks stops the table here, its changes pending)
    v_sub := pgshadow._current_columns(v_sub, true);
    IF v_sub.needs_copy THEN
        -- the initial copy deferred by shadow_subscribe: as a resync, the
        -- watermark is taken before the copy reads, so what commits later
        -- ships again with the next batch
        v_new := pgshadow._snapshot();
        v_r := pgshadow._ship(v_sub, NULL, NULL, true, p_batch_size);
        PERFORM pgshadow._advance(p_id, v_new, v_r.upserts, 1);
        v_sub.snapshot := v_new;
        batches := 1; keys := v_r.upserts; upserts := v_r.upserts; truncated := true;
    END IF;
    LOOP
        v_new := pgshadow._snapshot();
        -- the pending changes and, in the same pass, the transaction where
        -- they pass the cap (and whether it is the first one). cum grows with
        -- every transaction, so exactly one has cum > cap >= cum - n; taking it
        -- with array_agg needs no min(xid8), which PostgreSQL 13 and 14 lack.
        EXECUTE format('SELECT coalesce(sum(n), 0)::bigint, (array_agg(x) FILTER (WHERE cum > $3 AND cum - n <= $3))[1],'
                       ' min(rn) FILTER (WHERE cum > $3) = 1'
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
        -- A consistent export (one snapshot for all the target's tables) is
        -- never cut: its batch is everything up to that snapshot.
        IF v_pending > p_batch_size AND NOT pgshadow._in_consistent_export()
           AND NOT EXISTS (
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
