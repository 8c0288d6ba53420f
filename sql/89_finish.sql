-- What runs last, since it names objects of every other file: the fixed
-- value settings pinned on the functions that render values, and the
-- catalog tables marked for pg_dump.
--
-- The functions that render values as text for a target, or compare them,
-- run under the fixed value settings of pgshadow._settings(), their one home:
-- given to them here as SET clauses, which PostgreSQL restores when the
-- function returns, so the caller's session keeps its own settings. This is
-- the one list of them, and the last file, since it names functions of every
-- other. CREATE OR REPLACE drops SET clauses: upgrade scripts call it again
-- after their code.
CREATE FUNCTION pgshadow._pin_settings() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_fn regprocedure;
    v    record;
BEGIN
    FOREACH v_fn IN ARRAY ARRAY[
        'pgshadow._ship(pgshadow.subscription, pg_snapshot, pg_snapshot, boolean, integer)',
        'pgshadow._ship_peer(pgshadow.subscription, pg_snapshot, pg_snapshot, integer, boolean)',
        'pgshadow.capture_sync()',
        format('%I.shadow_compare(text, regclass, integer, boolean)', pgshadow._api_schema())
    ]::regprocedure[] LOOP
        FOR v IN SELECT * FROM pgshadow._settings() LOOP
            EXECUTE format('ALTER FUNCTION %s SET %I = %L', v_fn, v.name, v.setting);
        END LOOP;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION pgshadow._pin_settings() FROM PUBLIC;

SELECT pgshadow._pin_settings();

-- the catalog tables pg_dump dumps with their rows (sql/10_catalog.sql)
SELECT pgshadow._dump_catalog();
