-- When a tracked table is dropped, drop its shadow table and catalog entries
-- with it. Event triggers need superuser, so this is installed only when the
-- installing role is one; without it, pgshadow._gc() forgets dropped tables
-- the next time a table is tracked or exported.
CREATE FUNCTION pgshadow._on_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- DROP EXTENSION drops the catalog in the same command
    IF to_regclass('pgshadow.tracked') IS NULL THEN
        RETURN;
    END IF;
    PERFORM pgshadow._forget(t) FROM pgshadow.tracked t
      JOIN pg_event_trigger_dropped_objects() d
        ON d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = t.tbl::oid;
END
$$;

-- Refuses an ALTER TABLE that changes the primary key of a tracked table
-- (drops or replaces it, changes a key column's type or name): the shadow
-- table and the table's capture function hold the key as it was tracked.
-- The table owner cannot drop this trigger, but capture does not rely on it
-- to stay safe (its function runs with the table owner's rights, see
-- sql/30_capture.sql); it turns a change that would break capture into a
-- clear error. Installed, like the drop watch, only by a superuser.
CREATE FUNCTION pgshadow._on_alter() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    IF to_regclass('pgshadow.tracked') IS NULL THEN
        RETURN;
    END IF;
    FOR v IN
        SELECT t.tbl, t.key_cols, t.key_types, k.cols, k.types
          FROM pgshadow.tracked t
          CROSS JOIN LATERAL pgshadow._key(t.tbl) k
         WHERE t.tbl::oid IN (SELECT d.objid FROM pg_event_trigger_ddl_commands() d
                               WHERE d.classid = 'pg_class'::regclass)
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

DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER pgshadow_drop_watch ON sql_drop
            EXECUTE FUNCTION pgshadow._on_drop();
        CREATE EVENT TRIGGER pgshadow_key_watch ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
            EXECUTE FUNCTION pgshadow._on_alter();
    END IF;
END
$$;
