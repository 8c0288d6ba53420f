-- The transaction-id history the watermarks belong to. A watermark (a
-- pg_snapshot) and a shadow row's xid8 mean something only on the server and
-- in the xid history where they were taken: a database moved by pg_dump /
-- pg_restore, copied under another name or restored onto another server
-- keeps its watermarks and shadow rows while the xids around them belong to
-- another history, and shipping by snapshot arithmetic then silently skips
-- changes. The one row here stamps the history the watermarks were taken in;
-- every export checks it first (pgshadow._check_history) and, on a break,
-- re-baselines: every key the shadow tables hold becomes pending for every
-- subscription again (a key always ships as its current row, so shipping
-- too much is correct, shipping too little is not). See DESIGN.md,
-- guarantee 1.

CREATE TABLE pgshadow.history (
    one               boolean PRIMARY KEY DEFAULT true CHECK (one),  -- at most one row
    system_id         text,          -- pg_control_system().system_identifier; NULL when not readable
    database          name NOT NULL, -- current_database() when stamped
    stamp_xid         xid8 NOT NULL, -- the transaction that wrote this row
    -- the row's own xmin when it was written (a subtransaction's xid, when
    -- written in one), which it must still carry. A dump and restore (onto
    -- any server) rewrites the row and so its xmin, whatever the counters
    -- are; a physical copy (standby, base backup, TEMPLATE copy, pg_upgrade)
    -- keeps it.
    stamp_xmin        bigint NOT NULL,
    stamped_at        timestamptz NOT NULL,
    rebaselined_at    timestamptz,   -- the last re-baseline, and why
    rebaseline_reason text
);
COMMENT ON TABLE pgshadow.history IS
    'pgshadow: the transaction-id history the watermarks were taken in, and the last re-baseline';
GRANT SELECT ON pgshadow.history TO PUBLIC;

-- This cluster's system identifier, or NULL where the definer may not read
-- pg_control_system() (a non-superuser install without pg_monitor); the other
-- checks of _history_break still apply then.
CREATE FUNCTION pgshadow._system_id() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT system_identifier::text FROM pg_control_system());
EXCEPTION WHEN insufficient_privilege THEN
    RETURN NULL;
END
$$;

-- Why the watermarks and shadow rows no longer belong to this database's
-- transaction-id history, or NULL when they do. Read-only; cheap (one row,
-- the control file, the watermarks, and one index probe per shadow table
-- looked at: p_tbl's, or with NULL every one).
CREATE FUNCTION pgshadow._history_break(p_tbl regclass DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_h    record;
    v_sys  text := pgshadow._system_id();
    v_own  xid8 := pg_current_xact_id_if_assigned();
    -- the first xid this server has not handed out: the snapshot's xmax, or
    -- past this transaction's own xid, taken after the snapshot was
    v_xmax xid8 := greatest(pg_snapshot_xmax(pg_current_snapshot()),
                            (v_own::text::numeric + 1)::text::xid8);
    v_tr   record;
    v_max  xid8;
BEGIN
    SELECT h.*, h.xmin::text::bigint AS row_xmin INTO v_h FROM pgshadow.history h;
    IF NOT FOUND THEN
        -- every subscription stamps the history when it is made, so
        -- watermarks without a stamp come from an older version or from a
        -- dump without it: nothing says which history they belong to
        IF EXISTS (SELECT FROM pgshadow.subscription WHERE mode <> 'sync') THEN
            RETURN 'the watermarks carry no transaction-id history stamp';
        END IF;
        RETURN NULL;
    END IF;
    IF v_sys IS NOT NULL AND v_h.system_id IS NOT NULL AND v_sys <> v_h.system_id THEN
        RETURN format('the database moved to another server (system identifier %s, was %s)', v_sys, v_h.system_id);
    END IF;
    IF v_h.database <> current_database() THEN
        RETURN format('the database was copied or renamed (now %I, was %I)', current_database(), v_h.database);
    END IF;
    IF v_h.stamp_xid >= v_xmax THEN
        RETURN format('the history stamp''s transaction %s is in the future of this server (next %s)', v_h.stamp_xid, v_xmax);
    END IF;
    -- 2 is FrozenTransactionId: a frozen row no longer shows its xmin
    IF v_h.row_xmin <> 2 AND v_h.row_xmin <> v_h.stamp_xmin THEN
        RETURN 'the database was restored from a dump (the history stamp was rewritten)';
    END IF;
    IF EXISTS (SELECT FROM pgshadow.subscription WHERE mode <> 'sync' AND pg_snapshot_xmax(snapshot) > v_xmax) THEN
        RETURN format('a watermark is ahead of the current snapshot (next transaction %s)', v_xmax);
    END IF;
    FOR v_tr IN SELECT t.tbl, t.shadow FROM pgshadow.tracked t
                 WHERE (p_tbl IS NULL OR t.tbl = p_tbl)
                   AND to_regclass(format('pgshadow.%I', t.shadow)) IS NOT NULL LOOP
        -- ORDER BY/LIMIT, not max(): PostgreSQL 13 and 14 have no max(xid8)
        EXECUTE format('SELECT shadow_xid FROM pgshadow.%I ORDER BY shadow_xid DESC LIMIT 1', v_tr.shadow) INTO v_max;
        IF v_max >= v_xmax THEN
            RETURN format('changes of %s carry transaction id %s, in the future of this server (next %s)',
                          v_tr.tbl, v_max, v_xmax);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Stamps the current history (and, with p_reason, a re-baseline done now).
-- Not callable by users (REVOKEd): a fresh stamp would hide a break.
CREATE FUNCTION pgshadow._stamp(p_reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO pgshadow.history AS h (system_id, database, stamp_xid, stamp_xmin, stamped_at,
                                       rebaselined_at, rebaseline_reason)
    VALUES (pgshadow._system_id(), current_database(), pg_current_xact_id(), 0, clock_timestamp(),
            CASE WHEN p_reason IS NOT NULL THEN clock_timestamp() END, p_reason)
    ON CONFLICT (one) DO UPDATE
       SET system_id = EXCLUDED.system_id, database = EXCLUDED.database, stamp_xid = EXCLUDED.stamp_xid,
           stamped_at = EXCLUDED.stamped_at,
           rebaselined_at = coalesce(EXCLUDED.rebaselined_at, h.rebaselined_at),
           rebaseline_reason = coalesce(EXCLUDED.rebaseline_reason, h.rebaseline_reason);
    -- the row's xmin is known only once written; this second write in the
    -- same (sub)transaction keeps it
    UPDATE pgshadow.history SET stamp_xmin = xmin::text::bigint;
END
$$;
REVOKE EXECUTE ON FUNCTION pgshadow._stamp(text) FROM PUBLIC;

-- Checks the history before anything reads or moves a watermark, and
-- re-baselines on a break: every shadow row gets xid X0 = (xmin of the
-- current snapshot) - 1, which every snapshot from now on sees as committed,
-- and every (non-sync) watermark becomes 'X0:X0:', which sees neither X0 nor
-- any xid of this server's running or future transactions (all >= X0 + 1).
-- So every held key, and every change written on this server since the move,
-- is pending for every subscription; file targets get a full copy (their
-- batch chain is keyed by the source's identity, which changed). Returns the
-- reason of a re-baseline done now, else NULL. Idempotent; anyone who may
-- export may trigger it, since it only ever ships more. p_tbl: the table
-- about to be shipped or purged, whose shadow rows are looked at (NULL:
-- every table's).
CREATE FUNCTION pgshadow._check_history(p_tbl regclass DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_reason text := pgshadow._history_break(p_tbl);
    v_own    xid8;
    v_x0     xid8;
    v_tr     record;
    v_n      bigint;
    v_total  bigint := 0;
BEGIN
    IF v_reason IS NULL THEN
        -- stamp a new install, and renew a stamp whose row was frozen (its
        -- xmin no longer tells a restored row from the original)
        IF NOT EXISTS (SELECT FROM pgshadow.history h WHERE h.xmin::text <> '2') THEN
            PERFORM pgshadow._stamp(NULL);
        END IF;
        RETURN NULL;
    END IF;
    -- One re-baseline at a time; purges hold ROW SHARE on this table while
    -- they decide, so none truncates on watermarks being reset. Rechecked
    -- under the lock: another session may have just re-baselined.
    LOCK TABLE pgshadow.history IN EXCLUSIVE MODE;
    v_reason := pgshadow._history_break();
    IF v_reason IS NULL THEN
        RETURN NULL;
    END IF;
    -- This transaction's own uncommitted changes keep their xid: they must
    -- not look committed to the export that may follow in it.
    v_own := pg_current_xact_id_if_assigned();
    v_x0 := (pg_snapshot_xmin(pg_current_snapshot())::text::numeric - 1)::text::xid8;
    FOR v_tr IN SELECT t.tbl, t.shadow FROM pgshadow.tracked t
                 WHERE to_regclass(format('pgshadow.%I', t.shadow)) IS NOT NULL LOOP
        EXECUTE format('UPDATE pgshadow.%I SET shadow_xid = $1 WHERE shadow_xid IS DISTINCT FROM $2', v_tr.shadow)
          USING v_x0, v_own;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_total := v_total + v_n;
    END LOOP;
    UPDATE pgshadow.subscription s
       SET snapshot = format('%s:%s:', v_x0, v_x0)::pg_snapshot,
           needs_copy = s.needs_copy OR (SELECT t.server IS NULL FROM pgshadow.target t WHERE t.name = s.target)
     WHERE s.mode <> 'sync';
    -- a database in another history is another node (a copy may run beside
    -- its original): its peers learn it anew at their next connection
    UPDATE pgshadow.node SET id = gen_random_uuid();
    PERFORM pgshadow._stamp(v_reason);
    RAISE WARNING 'pgshadow: watermarks re-baselined: %', v_reason
        USING DETAIL = format('Every key the shadow tables held (%s change(s)) ships again to every target; file targets get a full copy; this node has a new id for its peers.', v_total);
    RETURN v_reason;
END
$$;
