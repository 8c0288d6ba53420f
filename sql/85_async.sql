-- Async mode: changes ship shortly after commit, and writers never wait on or
-- fail because of a target. `CALL shadow_run()` (from `pgshadow run`, which
-- wakes on the NOTIFY capture sends, or from pg_cron) exports every async
-- subscription in a transaction of its own. A failure is kept in the error
-- queue and retried with backoff; since a subscription's watermark does not
-- move past a failed batch, later changes of that table wait behind it and
-- can never overtake it.

-- Makes every queued failure of a target due now.
CREATE FUNCTION pgshadow._retry_now(p_target text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_n integer;
BEGIN
    UPDATE pgshadow.error e SET next_retry = clock_timestamp()
      FROM pgshadow.subscription s
     WHERE s.id = e.sub_id AND s.target = p_target
       AND pgshadow._may_export(pgshadow._caller(), s.tbl);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- Whether a subscription has anything to ship (cheap: stops at the first row).
CREATE FUNCTION pgshadow._has_pending(p_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub pgshadow.subscription;
    v_shadow name;
    v boolean;
BEGIN
    SELECT * INTO v_sub FROM pgshadow.subscription WHERE id = p_id;
    IF NOT FOUND OR NOT pgshadow._may_export(pgshadow._caller(), v_sub.tbl) THEN
        RETURN NULL;
    ELSIF v_sub.needs_copy THEN
        RETURN true;  -- the initial copy is still to be made
    END IF;
    SELECT shadow INTO v_shadow FROM pgshadow.tracked WHERE tbl = v_sub.tbl;
    EXECUTE format('SELECT EXISTS (SELECT FROM pgshadow.%I WHERE %s)',
                   v_shadow, pgshadow._pending_where('$1', 'pg_current_snapshot()'))
       INTO v USING v_sub.snapshot;
    RETURN v;
END
$$;

-- Whether a target is exported consistently (shadow_alter_target).
CREATE FUNCTION pgshadow._consistent(p_target text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT t.consistent AND t.server IS NOT NULL FROM pgshadow.target t WHERE t.name = p_target), false)
$$;

-- The async subscriptions (of one target, or all) that are due: something
-- pending or a failure whose retry time has come; only those the caller acts
-- may export (pgshadow._may_export), in order.
CREATE FUNCTION pgshadow._run_due(p_target text) RETURNS SETOF bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.id FROM pgshadow.subscription s
      LEFT JOIN pgshadow.error e ON e.sub_id = s.id
     WHERE s.mode = 'async' AND (p_target IS NULL OR s.target = p_target)
       AND (e.next_retry IS NULL OR e.next_retry <= clock_timestamp())
       AND pgshadow._may_export(pgshadow._caller(), s.tbl)
       AND NOT pgshadow._consistent(s.target)
     ORDER BY s.target, s.id
$$;

-- The consistent targets (of one, or all) with a due async subscription the
-- caller may export: shadow_run ships each as a whole (_run_consistent).
CREATE FUNCTION pgshadow._run_due_consistent(p_target text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT s.target ORDER BY s.target), '{}')
      FROM pgshadow.subscription s
      LEFT JOIN pgshadow.error e ON e.sub_id = s.id
     WHERE s.mode = 'async' AND (p_target IS NULL OR s.target = p_target)
       AND (e.next_retry IS NULL OR e.next_retry <= clock_timestamp())
       AND pgshadow._may_export(pgshadow._caller(), s.tbl)
       AND pgshadow._consistent(s.target)
$$;

-- Exports a consistent target as a whole (shadow_export: every table of it
-- the caller may export, at one snapshot) if one of its async subscriptions
-- has something to do; called by shadow_run in a REPEATABLE READ
-- transaction. A failure is the whole export's: it is recorded on every
-- subscription of the target (retry times included) instead of raised.
CREATE FUNCTION pgshadow._run_consistent(p_target text, p_batch_size integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_state text;
    v_msg   text;
BEGIN
    IF NOT EXISTS (SELECT FROM pgshadow.subscription s
                    WHERE s.target = p_target AND s.mode = 'async'
                      AND pgshadow._may_export(pgshadow._caller(), s.tbl)
                      AND (pgshadow._has_pending(s.id) OR EXISTS (SELECT FROM pgshadow.error e WHERE e.sub_id = s.id))) THEN
        RETURN;
    END IF;
    SELECT state, message INTO v_state, v_msg FROM pgshadow._try_export(p_target, p_batch_size);
    IF v_state IS NULL THEN
        PERFORM pgshadow._clear_failure(s.id) FROM pgshadow.subscription s
          WHERE s.target = p_target AND s.mode <> 'sync' AND pgshadow._may_export(pgshadow._caller(), s.tbl);
        RETURN;
    END IF;
    PERFORM pgshadow.record_failure(p_target, v_state, v_msg, false);
    RAISE WARNING '%', v_msg;
END
$$;

-- Exports one async subscription if it has anything to do; a failure is
-- queued in pgshadow.error (with its retry time) instead of raised.
CREATE FUNCTION pgshadow._run_one(p_id bigint, p_batch_size integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub    pgshadow.subscription;
    v_state  text;
    v_msg    text;
BEGIN
    SELECT * INTO v_sub FROM pgshadow.subscription s WHERE s.id = p_id;
    IF NOT FOUND THEN
        RETURN;  -- unsubscribed meanwhile
    END IF;
    BEGIN
        IF pgshadow._has_pending(p_id) OR EXISTS (SELECT FROM pgshadow.error e WHERE e.sub_id = p_id) THEN
            PERFORM pgshadow._connect(v_sub.target);
            PERFORM pgshadow._export_sub(p_id, p_batch_size);
            PERFORM pgshadow._disconnect();
            PERFORM pgshadow._clear_failure(p_id);
            PERFORM pgshadow._purge(v_sub.tbl);
        END IF;
        RETURN;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
    END;
    PERFORM pgshadow._disconnect();
    PERFORM pgshadow._record_failure(p_id, v_state, v_msg);
    RAISE WARNING '%', v_msg;
END
$$;

-- Exports every due async subscription (of one target, or all), each in its
-- own transaction. A procedure that COMMITs cannot pin search_path with a SET
-- clause, so these two only call pgshadow functions by qualified name with
-- arguments of exactly their parameter types: nothing here is resolved
-- through the caller's search_path (no operator, cast or unqualified name).
-- _has_pending reads the watermarks, so a database moved into another xid
-- history is re-baselined first (_check_history).
-- A consistent target goes first, as a whole, in a REPEATABLE READ
-- transaction (its one snapshot), then purges in a READ COMMITTED one.
CREATE PROCEDURE shadow_run(target text DEFAULT NULL, batch_size integer DEFAULT 100000)
LANGUAGE plpgsql AS $$
DECLARE
    v_id      bigint;
    v_target  text;
BEGIN
    PERFORM pgshadow._check_history();
    FOREACH v_target IN ARRAY pgshadow._run_due_consistent(target) LOOP
        COMMIT;
        SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;
        PERFORM pgshadow._run_consistent(v_target, batch_size);
        COMMIT;
        PERFORM pgshadow.file_purge(v_target);
    END LOOP;
    COMMIT;
    FOR v_id IN SELECT pgshadow._run_due(target) LOOP
        PERFORM pgshadow._run_one(v_id, batch_size);
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE shadow_run(text, integer) IS
    'pgshadow: ship every due async subscription, each in its own transaction; failures go to shadow_errors';

-- Retries the queued failures of a target now, in order.
CREATE PROCEDURE shadow_retry(target text)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM pgshadow._retry_now(target);
    PERFORM pgshadow._check_history();
    COMMIT;
    FOR v_id IN SELECT pgshadow._run_due(target) LOOP
        PERFORM pgshadow._run_one(v_id, 100000);
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE shadow_retry(text) IS 'pgshadow: retry the queued failures of a target now';

-- The schema of the public API (shadow_export's): the extension's, or for a
-- migrations install the one whose shadow_export belongs to the owner of
-- schema pgshadow (an outsider's function of that name has another owner).
CREATE FUNCTION pgshadow._api_schema() RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(
        (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pgshadow'),
        (SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE p.proname = 'shadow_export' AND p.proargtypes = '25 23'::oidvector
            AND p.proowner = (SELECT o.nspowner FROM pg_namespace o WHERE o.nspname = 'pgshadow')))
$$;

-- shadow_export in a subtransaction: its failure (a cancel or a statement
-- timeout too) comes back as (state, message) with nothing of it kept.
CREATE FUNCTION pgshadow._try_export(p_target text, p_batch_size integer, OUT state text, OUT message text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('SELECT count(*) FROM %I.shadow_export($1, $2)', pgshadow._api_schema())
      USING p_target, p_batch_size;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
END
$$;

-- Raises message with SQLSTATE state (for the procedures, which may hold no operator).
CREATE FUNCTION pgshadow._raise(p_state text, p_message text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message;
END
$$;

-- shadow_export for cron and psql: when the call fails as a whole (every
-- table failed: a target down), the failure is recorded on the caller's
-- subscriptions of the target (shadow_status.last_error, shadow_errors,
-- shadow_failures) and committed, then raised, so psql still exits non-zero.
-- Must be CALLed outside a transaction block (it commits). A consistent
-- target is exported in a REPEATABLE READ transaction of its own (its one
-- snapshot, pgshadow._export_consistent) and purged after its commit, on
-- current state (READ COMMITTED).
CREATE PROCEDURE shadow_export_logged(target text, batch_size integer DEFAULT 100000)
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_msg   text;
BEGIN
    IF pgshadow._consistent(target) THEN
        COMMIT;
        SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;
    END IF;
    SELECT state, message INTO v_state, v_msg FROM pgshadow._try_export(target, batch_size);
    IF v_state IS NULL THEN
        IF pgshadow._consistent(target) THEN
            COMMIT;
            PERFORM pgshadow.file_purge(target);
        END IF;
        RETURN;
    END IF;
    PERFORM pgshadow.record_failure(target, v_state, v_msg, false);
    COMMIT;
    PERFORM pgshadow._raise(v_state, v_msg);
END
$$;
COMMENT ON PROCEDURE shadow_export_logged(text, integer) IS
    'pgshadow: shadow_export that records a failure of the whole call (then raises it); CALL it outside a transaction block';

-- Deliberately skips what is pending for a table (e.g. a batch the target
-- refuses for good): the watermark jumps to now without shipping. The skip,
-- its key count and the error it cleared are recorded in pgshadow.skipped;
-- shadow_compare() then finds what differs.
CREATE FUNCTION shadow_skip(target text, tbl regclass, reason text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub  pgshadow.subscription;
    v_new  pg_snapshot := pgshadow._snapshot();
    v_keys bigint;
BEGIN
    v_sub := pgshadow._subscription(target, tbl);
    v_sub := pgshadow._lock_subscription(v_sub.id);
    EXECUTE format('SELECT count(*) FROM (%s) k', pgshadow._keys_sql(tbl, '$1', '$2', NULL, NULL))
       INTO v_keys USING v_sub.snapshot, v_new;
    PERFORM pgshadow._log_skip(v_sub.id, v_sub.snapshot, v_new, v_keys, reason);
    PERFORM pgshadow._advance(v_sub.id, v_new, 0, 0);
    PERFORM pgshadow._clear_failure(v_sub.id);
    RETURN v_keys;
END
$$;
COMMENT ON FUNCTION shadow_skip(text, regclass, text) IS
    'pgshadow: skip (and record) every pending change of a table for a target; returns the keys skipped';

CREATE FUNCTION pgshadow._log_skip(p_id bigint, p_from pg_snapshot, p_to pg_snapshot, p_keys bigint, p_reason text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub pgshadow.subscription;
BEGIN
    SELECT * INTO v_sub FROM pgshadow.subscription WHERE id = p_id;
    PERFORM pgshadow._check_acts_for(v_sub.tbl, pgshadow._caller());
    INSERT INTO pgshadow.skipped (target, tbl, from_snapshot, to_snapshot, keys, error, reason, skipped_by)
    VALUES (v_sub.target, v_sub.tbl, p_from, p_to, p_keys,
            (SELECT message FROM pgshadow.error WHERE sub_id = p_id), p_reason, pgshadow._caller());
END
$$;
