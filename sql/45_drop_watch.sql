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

DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER pgshadow_drop_watch ON sql_drop
            EXECUTE FUNCTION pgshadow._on_drop();
    END IF;
END
$$;
