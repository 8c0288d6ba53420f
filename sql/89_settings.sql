-- The functions that render values as text for a target, or compare them,
-- run under the fixed value settings of pgshadow._settings(), their one home:
-- given here as SET clauses, which PostgreSQL restores when the function
-- returns, so the caller's session keeps its own settings. A function
-- replaced later (CREATE OR REPLACE drops its SET clauses) must be pinned
-- again: upgrade scripts end with the same calls.
CREATE FUNCTION pgshadow._pin_settings(p_fn regprocedure) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT * FROM pgshadow._settings() LOOP
        EXECUTE format('ALTER FUNCTION %s SET %I = %L', p_fn, v.name, v.setting);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION pgshadow._pin_settings(regprocedure) FROM PUBLIC;

SELECT pgshadow._pin_settings(f) FROM unnest(ARRAY[
    'pgshadow._ship(pgshadow.subscription, pg_snapshot, pg_snapshot, boolean, integer)',
    'pgshadow.capture_sync()',
    'shadow_compare(text, regclass, integer, boolean)'
]::regprocedure[]) AS f;
