-- shadow_export and shadow_resync: export a target's subscriptions, table
-- by table (sql/66_export_table.sql) or all at one snapshot (consistent).
-- Shipping runs with the caller's rights (so the caller's user mapping is
-- used and its row reads are its own); only catalog writes and shadow-table
-- purges go through SECURITY DEFINER helpers, each of which checks that the
-- caller owns the table or holds an export grant.

-- Ships the subscriptions p_ids of a consistent target at ONE source
-- snapshot in ONE remote transaction, so the target only ever shows states
-- the source had (foreign keys between its tables hold, a reader never sees
-- a line without its order). The one snapshot is the calling transaction's:
-- under REPEATABLE READ every read sees it, and pgshadow._snapshot() (each
-- watermark) is it, so what each table ships is exactly its change up to
-- that moment. Under READ COMMITTED each statement has a snapshot of its own,
-- so the export refuses (pgshadow export and shadow_run open the right
-- transaction). The remote transaction defers the target's constraints
-- (SET CONSTRAINTS ALL DEFERRED): those declared DEFERRABLE hold at its
-- commit. All watermarks move together, after the remote COMMIT. A failure
-- of any table fails the whole export (nothing ships, nothing moves), naming
-- the table; the callers record it on every subscription of the target.
-- Purging is left to a READ COMMITTED transaction after the commit
-- (_purge does nothing under REPEATABLE READ).
-- Length: one remote transaction for all of a target's tables: the checks
-- before it, the loop over the subscriptions, and the one error that names
-- the failing table.
CREATE FUNCTION pgshadow._export_consistent(p_target text, p_ids bigint[], p_batch_size integer)
RETURNS TABLE (tbl regclass, dest text, batches integer, keys bigint, upserts bigint, deletes bigint,
               truncated boolean, error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id    bigint;
    v_sub   pgshadow.subscription;
    v_cur   regclass;
    v_own   xid8;
    v_wrote boolean;
    v_state text;
    v_msg   text;
    v_hint  text;
BEGIN
    IF current_setting('transaction_isolation') = 'read committed' THEN
        RAISE EXCEPTION 'pgshadow: target "%" is exported consistently (all its tables at one snapshot), which needs a REPEATABLE READ transaction', p_target
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM shadow_export(...); COMMIT; or use pgshadow export, CALL shadow_export_logged() or CALL shadow_run(), which do so.';
    END IF;
    -- every subscription locked first, in id order, before anything ships
    FOREACH v_id IN ARRAY p_ids LOOP
        v_sub := pgshadow._lock_subscription(v_id);
        -- callable directly: every batch goes over the one connection to p_target
        IF v_sub.target <> p_target OR v_sub.mode = 'sync' THEN
            RAISE EXCEPTION 'pgshadow: subscription % of % is not a batch or async subscription to target "%"', v_id, v_sub.tbl, p_target
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- the transaction reads its own uncommitted writes, which its
        -- watermark leaves pending: the target would get a state the source
        -- never committed
        v_own := pg_current_xact_id_if_assigned();
        IF v_own IS NOT NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT FROM pgshadow.%I WHERE shadow_xid = $1)',
                           (SELECT t.shadow FROM pgshadow.tracked t WHERE t.tbl = v_sub.tbl))
               INTO v_wrote USING v_own;
            IF v_wrote THEN
                RAISE EXCEPTION 'pgshadow: target "%" is exported consistently, and this transaction wrote %, which it ships', p_target, v_sub.tbl
                    USING ERRCODE = 'invalid_transaction_state',
                          HINT = 'Export in a transaction of its own, after the writes committed.';
            END IF;
        END IF;
    END LOOP;
    PERFORM set_config('pgshadow.consistent_batch', 'on', true);
    PERFORM pgshadow._connect(p_target);
    BEGIN
        PERFORM pgshadow._remote_exec('pgshadow', p_target, pgshadow._remote_begin() || ' SET CONSTRAINTS ALL DEFERRED;');
        FOREACH v_id IN ARRAY p_ids LOOP
            v_cur := (SELECT s.tbl FROM pgshadow.subscription s WHERE s.id = v_id);
            SELECT * INTO tbl, dest, batches, keys, upserts, deletes, truncated
              FROM pgshadow._export_sub(v_id, p_batch_size);
            error := NULL;
            RETURN NEXT;
        END LOOP;
        v_cur := NULL;
        -- deferred constraints are checked here
        PERFORM pgshadow._remote_exec('pgshadow', p_target, 'COMMIT');
    EXCEPTION WHEN OTHERS THEN
        -- the subtransaction took every watermark move back with it
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
        PERFORM set_config('pgshadow.consistent_batch', '', true);
        PERFORM pgshadow._disconnect();  -- the target rolls its transaction back
        IF v_state = '23503' THEN
            v_hint := 'The target checks a foreign key before the batch is complete: declare it DEFERRABLE there (ALTER TABLE ... ALTER CONSTRAINT ... DEFERRABLE); a consistent export defers constraints to its commit.';
        END IF;
        v_msg := format('pgshadow: consistent export to target "%s" failed %s, nothing shipped: %s', p_target,
                        CASE WHEN v_cur IS NULL THEN 'at its commit' ELSE format('at table %s', v_cur) END, v_msg);
        IF coalesce(v_hint, '') = '' THEN
            RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = v_state;
        END IF;
        RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = v_state, HINT = v_hint;
    END;
    PERFORM set_config('pgshadow.consistent_batch', '', true);
    PERFORM pgshadow._disconnect();
END
$$;

-- Ships every pending batch of every (batch or async) subscription of a target.
-- A table that fails does not hold the others back: each is shipped in a
-- subtransaction of its own. Its row then carries the error (also kept in
-- shadow_status.last_error and shadow_errors, and raised as a WARNING) while
-- the other tables' watermarks move. The call fails only when every table
-- failed (a target that is down, say), and then nothing moves.
CREATE FUNCTION shadow_export(target text, batch_size integer DEFAULT 100000)
RETURNS TABLE (tbl regclass, dest text, batches integer, keys bigint, upserts bigint, deletes bigint,
               truncated boolean, error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id      bigint;
    v_ids     bigint[];
    v_tables  regclass[] := '{}';
    v_errors  text[] := '{}';
    v_failed  bigint[] := '{}';
    v_states  text[] := '{}';
    v_n       integer := 0;
    v_i       integer;
    v_down    text;
    v_down_state text;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'pgshadow: batch_size must be a positive number of keys' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pgshadow._gc();
    -- only the subscriptions the caller acts for: another role's subscription
    -- to the same target is that role's to ship, with its own rights (and a
    -- role with nothing to ship does not even connect)
    v_ids := ARRAY(SELECT s.id FROM pgshadow.subscription s
                    WHERE s.target = shadow_export.target AND s.mode <> 'sync'
                      AND pgshadow._may_export(pgshadow._caller(), s.tbl)
                    ORDER BY s.id);
    IF cardinality(v_ids) = 0 THEN
        IF NOT EXISTS (SELECT FROM pgshadow.target t WHERE t.name = shadow_export.target) THEN
            PERFORM pgshadow._connect(target);  -- raises its "does not exist"
        END IF;
        RETURN;
    END IF;
    IF (SELECT t.consistent FROM pgshadow.target t WHERE t.name = shadow_export.target) THEN
        RETURN QUERY SELECT * FROM pgshadow._export_consistent(target, v_ids, batch_size);
        RETURN;
    END IF;
    PERFORM pgshadow._connect(target);
    FOREACH v_id IN ARRAY v_ids
    LOOP
        v_n := v_n + 1;
        BEGIN
            SELECT * INTO tbl, dest, batches, keys, upserts, deletes, truncated
              FROM pgshadow._export_sub(v_id, batch_size);
            error := NULL;
            v_tables := v_tables || tbl;
            RETURN NEXT;
        EXCEPTION WHEN OTHERS THEN
            v_failed := v_failed || v_id;
            v_errors := v_errors || SQLERRM;
            v_states := v_states || SQLSTATE;
            -- the remote transaction may be left aborted: go on afresh with
            -- the tables left (if any). A target that cannot be reached now
            -- fails them with that reason, and this table keeps its own error.
            CONTINUE WHEN v_n = cardinality(v_ids);
            BEGIN
                PERFORM pgshadow._connect(target);
            EXCEPTION WHEN OTHERS THEN
                v_down := SQLERRM;
                v_down_state := SQLSTATE;
                EXIT;
            END;
        END;
    END LOOP;
    IF v_down IS NOT NULL THEN
        -- the caller's subscriptions not reached (never another role's)
        FOR v_id IN SELECT i FROM unnest(v_ids) i WHERE i > v_failed[cardinality(v_failed)] ORDER BY i
        LOOP
            v_n := v_n + 1;
            v_failed := v_failed || v_id;
            v_errors := v_errors || format('pgshadow: %s not shipped: %s',
                                           (SELECT s.tbl FROM pgshadow.subscription s WHERE s.id = v_id), v_down);
            v_states := v_states || v_down_state;
        END LOOP;
    END IF;
    PERFORM pgshadow._disconnect();
    IF cardinality(v_failed) > 0 AND cardinality(v_failed) = v_n THEN
        RAISE EXCEPTION '%', array_to_string(v_errors, E'\n')
            USING ERRCODE = CASE WHEN v_n = 1 THEN v_states[1] ELSE 'PS001' END;
    END IF;
    FOR v_i IN 1 .. cardinality(v_failed) LOOP
        PERFORM pgshadow._record_failure(v_failed[v_i], v_states[v_i], v_errors[v_i]);
        RAISE WARNING '%', v_errors[v_i];
        SELECT s.tbl, format('%I.%I', s.dest_schema, s.dest_table), 0, 0, 0, 0, false, v_errors[v_i]
          INTO tbl, dest, batches, keys, upserts, deletes, truncated, error
          FROM pgshadow.subscription s WHERE s.id = v_failed[v_i];
        RETURN NEXT;
    END LOOP;
    -- last, so the brief lock a TRUNCATE purge takes is held for the shortest time
    PERFORM pgshadow._purge(t) FROM unnest(v_tables) t;
END
$$;
COMMENT ON FUNCTION shadow_export(text, integer) IS
    'pgshadow: ship every pending change of every table subscribed to a target; one row per table';

-- Copies the whole table to the target again (push targets now; file targets
-- with their next export) and restarts the watermark from this moment: the
-- recovery after a target was restored, skipped or edited by hand.
CREATE FUNCTION shadow_resync(target text, tbl regclass) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub  pgshadow.subscription := pgshadow._subscription(target, tbl);
    v_snap pg_snapshot;
    v_r    record;
BEGIN
    -- not for a role that may only export (shadow_grant_export)
    PERFORM pgshadow._check_acts_for(tbl, pgshadow._caller());
    v_sub := pgshadow._lock_subscription(v_sub.id);
    -- taken before the copy reads: changes committed after it ship again later
    v_snap := pgshadow._snapshot();
    IF (SELECT t.server IS NULL OR (t.consistent AND v_sub.mode <> 'sync')
          FROM pgshadow.target t WHERE t.name = shadow_resync.target) THEN
        -- a file target, or a consistent one: the copy goes with the next
        -- export (for a consistent target, at the snapshot of its other
        -- tables, so the target never mixes two moments of the source)
        PERFORM pgshadow._reset(v_sub.id, v_snap, true);
        IF (SELECT t.server IS NOT NULL FROM pgshadow.target t WHERE t.name = shadow_resync.target) THEN
            RAISE NOTICE 'pgshadow: % is copied to target "%" by its next shadow_export, at the snapshot its other tables ship at', tbl, target;
        END IF;
        RETURN 0;
    END IF;
    PERFORM pgshadow._connect(target);
    BEGIN
        v_sub := pgshadow._current_columns(v_sub, true);
        v_r := pgshadow._ship(v_sub, NULL, NULL, true, 100000);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pgshadow._disconnect();
        RAISE;
    END;
    PERFORM pgshadow._disconnect();
    PERFORM pgshadow._reset(v_sub.id, v_snap, false);
    RETURN v_r.upserts;
END
$$;
COMMENT ON FUNCTION shadow_resync(text, regclass) IS
    'pgshadow: copy a table to a target again and restart its watermark; returns rows copied';
