-- shadow_track / shadow_untrack: create and remove a table's shadow table and
-- capture triggers. The shadow table is created by a SECURITY DEFINER helper
-- (writers need no rights on it); the triggers are created with the caller's
-- own rights, since only the table's owner may put triggers on it.

-- Runs the 'shadow' steps of the plan: shadow table, catalog entry and the
-- table's capture function (created here, then handed to the table's owner).
CREATE FUNCTION pgshadow._make_shadow(p_tbl regclass) RETURNS regclass
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sql   text;
    v_owner name;
    v_super boolean;
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, pgshadow._caller());
    PERFORM pgshadow._gc();
    SELECT c.relowner::regrole::name INTO v_owner FROM pg_class c WHERE c.oid = p_tbl;
    SELECT r.rolsuper INTO v_super FROM pg_roles r WHERE r.rolname = current_user;
    -- the capture function is written for the catalog row's generation and
    -- notify flag: wait for a purge or an async (un)subscribe changing them,
    -- and plan after it (pgshadow._replace_capture)
    PERFORM FROM pgshadow.tracked t WHERE t.tbl = p_tbl FOR UPDATE;
    FOR v_sql IN SELECT p.sql FROM pgshadow.track_plan(p_tbl) p WHERE p.kind = 'shadow' ORDER BY p.step LOOP
        IF v_sql LIKE 'ALTER FUNCTION %' AND NOT v_super THEN
            -- A non-superuser pgshadow owner may give the function away only
            -- to a role it is a member of, and only if that role may create
            -- in schema pgshadow: granted for this one statement.
            IF NOT pg_has_role(current_user, v_owner, 'MEMBER') THEN
                RAISE EXCEPTION 'pgshadow: cannot track %: pgshadow''s owner % is neither a superuser nor a member of the table''s owner %',
                    p_tbl, current_user, v_owner
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'The capture function must belong to the table''s owner; install pgshadow as a superuser, or GRANT the table''s owner to pgshadow''s owner.';
            END IF;
            IF NOT has_schema_privilege(v_owner, 'pgshadow', 'CREATE') THEN
                EXECUTE format('GRANT CREATE ON SCHEMA pgshadow TO %I', v_owner);
                EXECUTE v_sql;
                EXECUTE format('REVOKE CREATE ON SCHEMA pgshadow FROM %I', v_owner);
                CONTINUE;
            END IF;
        END IF;
        EXECUTE v_sql;
    END LOOP;
    RETURN (SELECT format('pgshadow.%I', shadow)::regclass FROM pgshadow.tracked WHERE tbl = p_tbl);
END
$$;

-- Removes the shadow table and catalog entry of p_tbl (its triggers are the
-- caller's to drop). Refuses while subscriptions still ship the table.
CREATE FUNCTION pgshadow._drop_shadow(p_tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_targets text;
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, pgshadow._caller());
    SELECT string_agg(target, ', ' ORDER BY target) INTO v_targets
      FROM pgshadow.subscription WHERE tbl = p_tbl;
    IF v_targets IS NOT NULL THEN
        RAISE EXCEPTION 'pgshadow: cannot untrack %: it is still subscribed by target(s) %', p_tbl, v_targets
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'shadow_unsubscribe() each target first.';
    END IF;
    PERFORM pgshadow._forget(t) FROM pgshadow.tracked t WHERE t.tbl = p_tbl;
END
$$;

-- Removes a table's catalog entry and every table pgshadow made for it. Not
-- callable by users (REVOKEd): callers check ownership or act on dropped tables.
CREATE FUNCTION pgshadow._forget(p_tracked pgshadow.tracked) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM pgshadow.tracked WHERE tbl = p_tracked.tbl;
    -- with the capture triggers that use it, if the table still has them
    EXECUTE format('DROP FUNCTION IF EXISTS pgshadow.%I() CASCADE', pgshadow._capture_fn_name(p_tracked.shadow));
    EXECUTE format('DROP TABLE IF EXISTS pgshadow.%I', p_tracked.shadow);
    IF p_tracked.versions IS NOT NULL THEN
        EXECUTE format('DROP TABLE IF EXISTS pgshadow.%I', p_tracked.versions);
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION pgshadow._forget(pgshadow.tracked) FROM PUBLIC;

-- Forgets tables that were dropped while no event trigger watched (installs
-- without superuser cannot create one). Cheap: compares the catalog to pg_class.
CREATE FUNCTION pgshadow._gc() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._forget(t) FROM pgshadow.tracked t
      WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.tbl::oid);
    -- export grants of dropped roles, before a new role could get the oid
    DELETE FROM pgshadow.export_grant g WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = g.grantee);
END
$$;

-- Tracking with the caller's rights (the triggers are the table owner's).
CREATE FUNCTION pgshadow._track(tbl regclass) RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_shadow regclass;
    v_step   record;
BEGIN
    PERFORM pgshadow._check_owner(tbl, current_user);
    -- Under REPEATABLE READ or SERIALIZABLE the plan would read pg_inherits
    -- and pg_class with the transaction's snapshot, taken before the lock
    -- below: an INHERIT or ATTACH committed since would go unseen, and its
    -- watch ran while the table was not tracked. A table already tracked
    -- (converted by an upgrade, tracked again) has been watched since.
    IF current_setting('transaction_isolation') <> 'read committed'
       AND NOT EXISTS (SELECT FROM pgshadow.tracked t WHERE t.tbl = _track.tbl) THEN
        RAISE EXCEPTION 'pgshadow: cannot start tracking % in a % transaction: its snapshot may not show table inheritance or partitioning committed after it began, which capture must know of',
            tbl, upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Track it in a READ COMMITTED transaction (the default).';
    END IF;
    -- Locked (a partitioned table with its whole tree) before anything is
    -- planned: a DDL not yet committed that adds a member to its tree or
    -- makes it take part in table inheritance ran its watch before the
    -- table was tracked, so tracking must wait for it and plan with it in
    -- view. SHARE UPDATE EXCLUSIVE is the weakest mode that waits for all
    -- of them (ATTACH and INHERIT take it on the parent), and lets writers
    -- in: tracking a tracked table again locks out no one.
    EXECUTE format('LOCK TABLE %s%s IN SHARE UPDATE EXCLUSIVE MODE',
                   CASE WHEN (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) = 'p' THEN '' ELSE 'ONLY ' END, tbl);
    v_shadow := pgshadow._make_shadow(tbl);
    FOR v_step IN SELECT p.sql FROM pgshadow.track_plan(tbl) p WHERE p.kind = 'trigger' ORDER BY p.step LOOP
        EXECUTE v_step.sql;
    END LOOP;
    RETURN v_shadow;
END
$$;

CREATE FUNCTION shadow_track(tbl regclass) RETURNS regclass
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow._track(tbl)
$$;
COMMENT ON FUNCTION shadow_track(regclass) IS
    'pgshadow: start capturing the keys of changed rows of a table (idempotent)';

-- Converts a tracked table to the capture of this version in place: its
-- own capture function, the shadow's INSERT grant to the table's owner, and
-- triggers that call the function (those of an earlier version, which call
-- the generic pgshadow.capture(), are replaced in the same transaction). The
-- shadow table, its pending keys and every watermark stay. Idempotent: it is
-- shadow_track. For upgrade scripts, run by a superuser, or by pgshadow's
-- owner if it is a member of the table's owning role.
CREATE FUNCTION pgshadow._install_capture(p_tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_fn regprocedure;
BEGIN
    PERFORM pgshadow._track(p_tbl);
    SELECT to_regprocedure(format('pgshadow.%I()', pgshadow._capture_fn_name(t.shadow))) INTO v_fn
      FROM pgshadow.tracked t WHERE t.tbl = p_tbl;
    -- Run from an extension script, the new function would join the
    -- extension: DROP EXTENSION would take the triggers along, and pg_dump
    -- would dump triggers whose function it leaves out. It belongs to the table.
    IF EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = v_fn AND d.deptype = 'e') THEN
        EXECUTE format('ALTER EXTENSION pgshadow DROP FUNCTION %s', v_fn);
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION pgshadow._install_capture(regclass) FROM PUBLIC;

CREATE FUNCTION shadow_untrack(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_name text;
    v_rel  regclass;
BEGIN
    PERFORM pgshadow._check_owner(tbl, current_user);
    -- refuse first, so a refused untrack leaves the triggers in place
    IF EXISTS (SELECT FROM pgshadow.subscription s WHERE s.tbl = shadow_untrack.tbl) THEN
        PERFORM pgshadow._drop_shadow(tbl);
    END IF;
    -- every member of a partitioned table's tree, the root last: the key
    -- trigger's clones on partitions go with the root's
    FOR v_rel IN
        SELECT t.relid FROM pg_partition_tree(tbl) t WHERE t.level > 0 ORDER BY t.level DESC
    LOOP
        FOREACH v_name IN ARRAY ARRAY['pgshadow_capture_ins', 'pgshadow_capture_upd',
                                      'pgshadow_capture_del', 'pgshadow_capture_trunc'] LOOP
            IF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = v_rel AND tgname = v_name) THEN
                EXECUTE format('DROP TRIGGER %I ON %s', v_name, v_rel);
            END IF;
        END LOOP;
    END LOOP;
    FOREACH v_name IN ARRAY ARRAY['pgshadow_capture_key', 'pgshadow_capture_ins', 'pgshadow_capture_upd',
                                  'pgshadow_capture_del', 'pgshadow_capture_trunc'] LOOP
        -- only what exists: DROP ... IF EXISTS would NOTICE each one missing
        IF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = tbl AND tgname = v_name) THEN
            EXECUTE format('DROP TRIGGER %I ON %s', v_name, tbl);
        END IF;
    END LOOP;
    PERFORM pgshadow._drop_shadow(tbl);
END
$$;
COMMENT ON FUNCTION shadow_untrack(regclass) IS
    'pgshadow: stop capturing a table and drop its shadow table (idempotent)';

-- Creates (p_on) or drops the sync triggers of a table, with the caller's
-- rights: they exist only while the table has a sync subscription. On a
-- partitioned table, on every member of its tree (statement triggers fire
-- only on the table a statement names).
CREATE FUNCTION pgshadow._sync_triggers(p_tbl regclass, p_on boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v     record;
    v_rel regclass;
BEGIN
    FOR v_rel IN SELECT p_tbl UNION SELECT t.relid FROM pg_partition_tree(p_tbl) t LOOP
    FOR v IN SELECT * FROM (VALUES
            ('pgshadow_sync_ins', 'INSERT',   ' REFERENCING NEW TABLE AS pgshadow_new'),
            ('pgshadow_sync_upd', 'UPDATE',   ' REFERENCING OLD TABLE AS pgshadow_old NEW TABLE AS pgshadow_new'),
            ('pgshadow_sync_del', 'DELETE',   ' REFERENCING OLD TABLE AS pgshadow_old'),
            ('pgshadow_sync_trunc', 'TRUNCATE', '')) AS t(name, event, referencing)
    LOOP
        IF NOT p_on THEN
            -- only what exists: DROP ... IF EXISTS would NOTICE each one missing
            IF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = v_rel AND tgname = v.name) THEN
                EXECUTE format('DROP TRIGGER %I ON %s', v.name, v_rel);
            END IF;
        ELSIF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = v_rel AND tgname = v.name) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s%s FOR EACH STATEMENT EXECUTE FUNCTION pgshadow.capture_sync()',
                           v.name, v.event, v_rel, v.referencing);
        END IF;
    END LOOP;
    END LOOP;
END
$$;
