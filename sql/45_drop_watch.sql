-- When a tracked table is dropped, drop its shadow table and catalog entries
-- with it. Event triggers need superuser, so this is installed only when the
-- installing role is one; without it, pgshadow._gc() forgets dropped tables
-- the next time a table is tracked or exported.
CREATE FUNCTION pgshadow._on_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_part text;
BEGIN
    -- DROP EXTENSION drops the catalog in the same command
    IF to_regclass('pgshadow.tracked') IS NULL THEN
        RETURN;
    END IF;
    -- A dropped partition of a tracked table (a table that is not tracked
    -- itself and carried the capture triggers, the key trigger among them,
    -- which only a partition has as a clone): its rows are gone by now, so
    -- their keys cannot be recorded, and the targets would keep them. The
    -- drop is refused, unless a tracked table goes in the same command
    -- (dropping a whole partitioned table with its partitions).
    SELECT string_agg(DISTINCT format('%I.%I', d.address_names[1], d.address_names[2]), ', ') INTO v_part
      FROM pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'trigger' AND d.address_names[3] = 'pgshadow_capture_ins'
       AND EXISTS (SELECT FROM pg_event_trigger_dropped_objects() k
                    WHERE k.object_type = 'trigger' AND k.address_names[1] = d.address_names[1]
                      AND k.address_names[2] = d.address_names[2] AND k.address_names[3] = 'pgshadow_capture_key')
       AND EXISTS (SELECT FROM pg_event_trigger_dropped_objects() o
                    WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0
                      AND o.address_names[1] = d.address_names[1] AND o.address_names[2] = d.address_names[2]
                      AND NOT EXISTS (SELECT FROM pgshadow.tracked t WHERE t.tbl::oid = o.objid));
    IF v_part IS NOT NULL AND NOT EXISTS (
            SELECT FROM pgshadow.tracked t JOIN pg_event_trigger_dropped_objects() o
              ON o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND o.objid = t.tbl::oid) THEN
        RAISE EXCEPTION 'pgshadow: cannot drop %: a partition of a tracked table, whose rows would stay on its targets', v_part
            USING ERRCODE = 'object_in_use',
                  HINT = 'ALTER TABLE ... DETACH PARTITION it first (its rows are then deleted on the targets by the next export), then drop it.';
    END IF;
    PERFORM pgshadow._forget(t) FROM pgshadow.tracked t
      JOIN pg_event_trigger_dropped_objects() d
        ON d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = t.tbl::oid;
END
$$;

-- Records the keys of every row of p_rel (a leaf of p_tracked's tree, or
-- one detached from it) in p_tracked's shadow as changed (op 'U': the rows
-- came into the table) or deleted ('D': they left it). Called by the
-- partition watch only. Key columns are copied into columns of the same
-- types (a partition has its parent's), so nothing of the table's owner
-- (no cast, domain check or operator) runs.
CREATE FUNCTION pgshadow._record_rows(p_tracked pgshadow.tracked, p_rel regclass, p_op text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_list text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_tracked.key_cols) c);
BEGIN
    EXECUTE format('INSERT INTO pgshadow.%I (%s, shadow_op, shadow_gen, shadow_xid, shadow_at)'
                   ' SELECT %s, %L, $1, pg_current_xact_id(), statement_timestamp() FROM ONLY %s',
                   p_tracked.shadow, v_list, v_list, p_op, p_rel)
        USING p_tracked.gen;
    IF p_tracked.notify THEN
        PERFORM pg_notify('pgshadow', '');
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION pgshadow._record_rows(pgshadow.tracked, regclass, text) FROM PUBLIC;

-- Whether p_rel (a leaf joining a tracked table) holds any row.
CREATE FUNCTION pgshadow._has_rows(p_rel regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_found boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT FROM ONLY %s)', p_rel) INTO v_found;
    RETURN v_found;
END
$$;

-- Whether p_rel joined its partition tree in this transaction: its link to
-- its parent, or an ancestor's, is no older than the transaction (age() of
-- its pg_inherits row's xmin, counted from this transaction's xid, is not
-- positive: inserted by it, a subtransaction of it, or a transaction begun
-- after it, which committed already).
CREATE FUNCTION pgshadow._joined_here(p_rel regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM pg_partition_ancestors(p_rel) a JOIN pg_inherits i ON i.inhrelid = a.relid
                    WHERE age(i.xmin) <= 0)
$$;

-- Whether p_rel carries the insert capture trigger of capture function p_fn
-- (schema-qualified): a tracked table whose triggers a restore has yet to
-- create, or a member of its tree not given them yet, does not.
CREATE FUNCTION pgshadow._has_capture(p_rel regclass, p_fn text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = p_rel AND g.tgname = 'pgshadow_capture_ins'
                                             AND g.tgfoid = to_regproc(p_fn))
$$;

-- Under REPEATABLE READ or SERIALIZABLE a watch reads pgshadow.tracked with
-- the transaction's snapshot, which may be older than a shadow_track of the
-- very tables its DDL touches (committed after the snapshot, before the DDL
-- got its lock): the watch would take them for untracked and leave a new
-- partition, or an inheritance link, uncaptured. The primary key index sees
-- every committed row: a speculative insert of each table's catalog row,
-- undone at once, fails with a serialization failure exactly where the row
-- it meets is one the snapshot cannot see. A table the snapshot shows
-- tracked is not probed so: its row may have changed since in ways that
-- leave it tracked (a purge switching gen, notify, versions), which would
-- fail the insert as well. Its row is locked FOR KEY SHARE instead, which
-- under these levels fails only if the row was deleted since (untracked,
-- and perhaps tracked again, with another key or shadow). Under READ
-- COMMITTED each query of the watch takes a snapshot after the DDL's
-- locks, and nothing is done.
CREATE FUNCTION pgshadow._check_unseen_tracking(p_rels oid[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r      oid;
    v_seen boolean;
BEGIN
    IF current_setting('transaction_isolation') = 'read committed' THEN
        RETURN;
    END IF;
    -- only tables (indexes, sequences, TOAST tables are never tracked):
    -- under SERIALIZABLE each probe is a write SSI may count against the
    -- transaction, even undone
    FOR r IN SELECT DISTINCT u FROM unnest(p_rels) u JOIN pg_class c ON c.oid = u
              WHERE c.relkind IN ('r', 'p', 'f') ORDER BY 1 LOOP
        v_seen := EXISTS (SELECT FROM pgshadow.tracked t WHERE t.tbl = r);
        BEGIN
            IF v_seen THEN
                PERFORM FROM pgshadow.tracked t WHERE t.tbl = r FOR KEY SHARE;
            ELSE
                -- shadow names are at most 60 bytes: this 63-byte one is no table's
                INSERT INTO pgshadow.tracked (tbl, shadow, key_cols, key_types, tracked_by)
                VALUES (r, '~' || lpad(r::text, 62, '~'), '{}', '{}', '') ON CONFLICT (tbl) DO NOTHING;
                RAISE SQLSTATE 'PGSUN';
            END IF;
        EXCEPTION
            WHEN SQLSTATE 'PGSUN' THEN
                NULL;
            WHEN serialization_failure THEN
                RAISE EXCEPTION 'pgshadow: % was %tracked by a transaction that committed after this % transaction began: this statement cannot see its capture',
                    r::regclass, CASE WHEN v_seen THEN 'un' ELSE '' END, upper(current_setting('transaction_isolation'))
                    USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
        END;
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION pgshadow._check_unseen_tracking(oid[]) FROM PUBLIC;

-- Keeps the capture of tracked partitioned tables whole as their trees
-- change, in the transaction that changes them (see docs/DESIGN.md,
-- "Partitioned tables"). A partition created or attached gets its capture
-- triggers (statement triggers are not inherited), and the rows an attached
-- one brings are recorded as changed; one detached loses them, and its rows
-- are recorded as deleted. A tracked table may not become a partition, nor
-- join a table inheritance tree (writes through a parent, or to a child,
-- would not all be captured). A tree whose root has no capture triggers yet
-- is left alone: pg_restore creates the triggers after the constraints
-- whose ALTER TABLE fires this, and would find them made; for the same
-- reason only members that joined the tree in this transaction get them
-- (a parallel restore may create the root's first). Installed, like
-- the drop watch, only by a superuser; without it partitioned tables cannot
-- be tracked.
-- Length: one event trigger for CREATE, ATTACH and DETACH of partitions,
-- a short branch each, sharing the lookup of the tracked root.
CREATE FUNCTION pgshadow._on_partition() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v     pgshadow.tracked;
    m     record;
    v_fn  text;
    v_sql text;
    v_bad regclass;
    v_sync boolean;
    v_inh record;
    -- the tables this DDL made or altered (an ATTACH alters the parent):
    -- only links they take part in are refused, so no DDL fails for a
    -- table it does not touch
    v_rels oid[] := ARRAY(SELECT d.objid FROM pg_event_trigger_ddl_commands() d WHERE d.classid = 'pg_class'::regclass);
BEGIN
    IF to_regclass('pgshadow.tracked') IS NULL THEN
        RETURN;
    END IF;
    -- the tables, their partition ancestors, the tables attached to them
    -- here (an ATTACH names the parent only) and inheritance partners
    PERFORM pgshadow._check_unseen_tracking(
        v_rels || ARRAY(SELECT a.relid::oid FROM unnest(v_rels) r CROSS JOIN LATERAL pg_partition_ancestors(r) a)
               || ARRAY(SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = ANY (v_rels) AND age(i.xmin) <= 0)
               || ARRAY(SELECT unnest(ARRAY[i.parent::oid, i.child::oid])
                          FROM unnest(v_rels) r CROSS JOIN LATERAL pgshadow._inheritance(r::regclass) i));
    SELECT t.tbl INTO v_bad FROM pgshadow.tracked t JOIN pg_class c ON c.oid = t.tbl
     WHERE c.relispartition
       AND (t.tbl::oid = ANY (v_rels)
            OR EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = t.tbl AND i.inhparent = ANY (v_rels)))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pgshadow: tracked table % cannot become a partition (of %): writes through its parent would not be captured',
            v_bad, pg_partition_root(v_bad)
            USING ERRCODE = 'object_in_use',
                  HINT = 'shadow_untrack() it first, and track the partitioned table instead.';
    END IF;
    SELECT t.tbl AS tracked, i.parent, i.child INTO v_inh
      FROM unnest(v_rels) r CROSS JOIN LATERAL pgshadow._inheritance(r::regclass) i
      JOIN pgshadow.tracked t ON t.tbl IN (i.parent, i.child)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pgshadow: tracked table % cannot take part in table inheritance (% inherits from %): writes to the child, or through the parent, would not all be captured',
            v_inh.tracked, v_inh.child, v_inh.parent
            USING ERRCODE = 'object_in_use',
                  HINT = 'Use declarative partitioning, and track the partitioned table.';
    END IF;
    FOR v IN
        SELECT t.* FROM pgshadow.tracked t JOIN pg_class c ON c.oid = t.tbl
         WHERE c.relkind = 'p'
           AND pgshadow._has_capture(t.tbl, format('pgshadow.%I', pgshadow._capture_fn_name(t.shadow)))
           AND t.tbl IN (SELECT pg_partition_root(r) FROM unnest(v_rels) r)
         ORDER BY t.tbl::oid
    LOOP
        v_fn := format('pgshadow.%I', pgshadow._capture_fn_name(v.shadow));
        -- sync subscriptions apply each statement, not the shadow: rows an
        -- attach brings or a detach takes away would never reach them
        v_sync := EXISTS (SELECT FROM pgshadow.subscription s WHERE s.tbl = v.tbl AND s.mode = 'sync');
        -- members new to the tree (no insert trigger of this table's yet,
        -- joined in this transaction: an older member without them is one
        -- whose triggers a restore has yet to create, in parallel, after
        -- the root's)
        FOR m IN
            SELECT p.relid, p.isleaf FROM pg_partition_tree(v.tbl) p
             WHERE p.level > 0
               AND NOT pgshadow._has_capture(p.relid, v_fn)
               AND pgshadow._joined_here(p.relid)
             ORDER BY p.level, p.relid::oid
        LOOP
            IF m.isleaf THEN
                PERFORM pgshadow._record_rows(v, m.relid, 'U');
            END IF;
            FOR v_sql IN SELECT pgshadow._trigger_plan(m.relid, v_fn, v.key_cols, true) LOOP
                EXECUTE v_sql;
            END LOOP;
            -- enabled as the root's (ALWAYS, REPLICA, disabled), as
            -- PostgreSQL clones the key trigger
            FOR v_sql IN
                SELECT format('ALTER TABLE %s %s TRIGGER %I', m.relid,
                              CASE r.tgenabled WHEN 'A' THEN 'ENABLE ALWAYS' WHEN 'R' THEN 'ENABLE REPLICA'
                                               WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END, g.tgname)
                  FROM pg_trigger g JOIN pg_trigger r ON r.tgrelid = v.tbl AND r.tgname = g.tgname
                 WHERE g.tgrelid = m.relid AND g.tgfoid = to_regproc(v_fn) AND g.tgparentid = 0
                   AND r.tgenabled <> g.tgenabled
            LOOP
                EXECUTE v_sql;
            END LOOP;
            IF v_sync THEN
                IF m.isleaf AND pgshadow._has_rows(m.relid) THEN
                    RAISE EXCEPTION 'pgshadow: cannot attach % with rows to %: it has a sync subscription, which would not receive them', m.relid, v.tbl
                        USING ERRCODE = 'feature_not_supported',
                              HINT = 'Attach it empty and insert its rows through the table, or unsubscribe the sync subscription first.';
                END IF;
                PERFORM pgshadow._sync_triggers(m.relid, true);
            END IF;
        END LOOP;
        -- tables that left the tree, with this table's triggers still on them
        FOR m IN
            SELECT g.tgrelid::regclass AS relid, c.relkind FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
             WHERE g.tgname = 'pgshadow_capture_ins' AND g.tgfoid = to_regproc(v_fn)
               AND g.tgrelid <> v.tbl::oid
               AND g.tgrelid NOT IN (SELECT p.relid FROM pg_partition_tree(v.tbl) p)
             ORDER BY g.tgrelid
        LOOP
            IF v_sync THEN
                RAISE EXCEPTION 'pgshadow: cannot detach % from %: it has a sync subscription, whose target would keep its rows', m.relid, v.tbl
                    USING ERRCODE = 'feature_not_supported',
                          HINT = 'DELETE its rows through the table first, or unsubscribe the sync subscription.';
            END IF;
            IF m.relkind = 'r' THEN
                PERFORM pgshadow._record_rows(v, m.relid, 'D');
            END IF;
            -- the key trigger only where it is not a clone (of a detached
            -- partitioned member's, which goes with it)
            FOR v_sql IN
                SELECT format('DROP TRIGGER %I ON %s', g.tgname, m.relid) FROM pg_trigger g
                 WHERE g.tgrelid = m.relid AND g.tgfoid = to_regproc(v_fn) AND g.tgparentid = 0
            LOOP
                EXECUTE v_sql;
            END LOOP;
        END LOOP;
    END LOOP;
END
$$;

-- Refuses an ALTER TABLE that changes the primary key of a tracked table
-- (drops or replaces it, changes a key column's type or name): the shadow
-- table and the table's capture function hold the key as it was tracked.
-- The table owner cannot drop this trigger, but capture does not rely on it
-- to stay safe (its function runs with the table owner's rights, see
-- sql/30_capture.sql); it turns a change that would break capture into a
-- clear error. A table without its capture triggers has no capture to
-- break, and is left alone: pg_restore adds constraints (ALTER TABLE) after
-- the catalog rows, some of them (a NOT VALID check, sorted by name) before
-- the primary key, and the triggers after all of them; tracking the table
-- again refuses a key that changed. Installed, like the drop watch, only by
-- a superuser.
CREATE FUNCTION pgshadow._on_alter() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    IF to_regclass('pgshadow.tracked') IS NULL THEN
        RETURN;
    END IF;
    PERFORM pgshadow._check_unseen_tracking(ARRAY(SELECT d.objid FROM pg_event_trigger_ddl_commands() d
                                                   WHERE d.classid = 'pg_class'::regclass));
    FOR v IN
        SELECT t.tbl, t.key_cols, t.key_types, k.cols, k.types
          FROM pgshadow.tracked t
          CROSS JOIN LATERAL pgshadow._key(t.tbl) k
         WHERE t.tbl::oid IN (SELECT d.objid FROM pg_event_trigger_ddl_commands() d
                               WHERE d.classid = 'pg_class'::regclass)
           AND pgshadow._has_capture(t.tbl, format('pgshadow.%I', pgshadow._capture_fn_name(t.shadow)))
    LOOP
        IF v.cols IS DISTINCT FROM v.key_cols OR v.types IS DISTINCT FROM v.key_types THEN
            RAISE EXCEPTION 'pgshadow: cannot change the primary key of tracked table % (tracked as (%), would be (%))',
                v.tbl,
                (SELECT string_agg(format('%I %s', c, y), ', ') FROM unnest(v.key_cols, v.key_types) u(c, y)),
                coalesce((SELECT string_agg(format('%I %s', c, y), ', ') FROM unnest(v.cols, v.types) u(c, y)), 'no primary key')
                USING ERRCODE = 'object_in_use',
                      HINT = 'Ship its pending changes, shadow_untrack() it, change the key, then shadow_track() it again.';
        END IF;
    END LOOP;
END
$$;

-- Creates the event triggers above that do not exist yet, for a superuser
-- (only one may create them): on install, and on update from a version
-- that had fewer.
CREATE FUNCTION pgshadow._create_watches() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w record;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    FOR w IN
        SELECT * FROM (VALUES
            ('pgshadow_drop_watch',      'sql_drop',        NULL,                               'pgshadow._on_drop'),
            ('pgshadow_key_watch',       'ddl_command_end', ARRAY['ALTER TABLE'],               'pgshadow._on_alter'),
            -- CREATE SCHEMA may create partitions (and children) among its
            -- elements; a foreign table may inherit from a tracked table
            ('pgshadow_partition_watch', 'ddl_command_end',
             ARRAY['CREATE TABLE', 'ALTER TABLE', 'CREATE SCHEMA', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE'],
             'pgshadow._on_partition'))
            AS v(name, event, tags, fn)
         WHERE NOT EXISTS (SELECT FROM pg_event_trigger e WHERE e.evtname = v.name)
    LOOP
        EXECUTE format('CREATE EVENT TRIGGER %I ON %I%s EXECUTE FUNCTION %s()', w.name, w.event,
                       CASE WHEN w.tags IS NOT NULL
                            THEN format(' WHEN TAG IN (%s)', (SELECT string_agg(quote_literal(t), ', ') FROM unnest(w.tags) t)) ELSE '' END,
                       w.fn);
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION pgshadow._create_watches() FROM PUBLIC;
SELECT pgshadow._create_watches();
