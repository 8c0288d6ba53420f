-- pgshadow 0.2.0 -> 0.1.1 (golang-migrate down step): the functions 0.2.0
-- added go, the tables lose what 0.2.0 gave them, and the code of the
-- released 0.1.1 script comes back.

-- Tracked tables go back to the generic capture function: their own
-- functions go with their triggers, and 0.1.1's _track (below) puts its
-- triggers and statements back.
DROP EVENT TRIGGER IF EXISTS pgshadow_key_watch;
DROP EVENT TRIGGER IF EXISTS pgshadow_partition_watch;
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'pgshadow'::regnamespace AND p.proname LIKE '%\_\_%\_fn' LOOP
        EXECUTE pg_catalog.format('DROP FUNCTION %s CASCADE', f);
    END LOOP;
END
$$;
ALTER TABLE pgshadow.tracked ADD COLUMN ins_sql text NOT NULL DEFAULT '', ADD COLUMN upd_sql text NOT NULL DEFAULT '',
    ADD COLUMN upd_new_sql text NOT NULL DEFAULT '', ADD COLUMN del_sql text NOT NULL DEFAULT '',
    ADD COLUMN trunc_sql text NOT NULL DEFAULT '';
ALTER TABLE pgshadow.tracked ALTER COLUMN ins_sql DROP DEFAULT, ALTER COLUMN upd_sql DROP DEFAULT,
    ALTER COLUMN upd_new_sql DROP DEFAULT, ALTER COLUMN del_sql DROP DEFAULT, ALTER COLUMN trunc_sql DROP DEFAULT;

-- Every function 0.2.0 has goes (those triggers and the drop watch call are
-- replaced below instead); the code of 0.1.1 then comes back whole.
DROP VIEW shadow_status, shadow_errors, shadow_conflicts;
-- the failure history, its view and the procedure that records into it
DROP VIEW shadow_failures;
DROP VIEW shadow_progress;
DROP PROCEDURE shadow_export_logged(text, integer);
DROP TABLE pgshadow.failure;
ALTER TABLE pgshadow.subscription DROP COLUMN failures;
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'pgshadow'::regnamespace AND p.prokind = 'f'
                AND p.proname NOT IN ('capture', 'capture_key', 'capture_sync', 'sync_commit', '_on_drop', '_forget') LOOP
        EXECUTE pg_catalog.format('DROP FUNCTION %s', f);
    END LOOP;
END
$$;
DROP TABLE pgshadow.history;
ALTER TABLE pgshadow.subscription DROP COLUMN backlog_dropped_at, DROP COLUMN backlog_dropped_reason;
ALTER TABLE pgshadow.subscription DROP COLUMN all_columns;
DROP FUNCTION shadow_learn_peer(text);
DROP TABLE pgshadow.node;
ALTER TABLE pgshadow.target DROP COLUMN consistent;
DROP FUNCTION shadow_alter_target(text, boolean);
ALTER TABLE pgshadow.target DROP COLUMN peer_id, DROP COLUMN peer_node, DROP COLUMN peer_at;
DROP FUNCTION shadow_grant_export(regclass, regrole), shadow_revoke_export(regclass, regrole);
DROP TABLE pgshadow.export_grant;

DROP POLICY readable ON pgshadow.subscription;
ALTER TABLE pgshadow.subscription DISABLE ROW LEVEL SECURITY;
DROP POLICY readable ON pgshadow.error;
ALTER TABLE pgshadow.error DISABLE ROW LEVEL SECURITY;
DROP POLICY readable ON pgshadow.skipped;
ALTER TABLE pgshadow.skipped DISABLE ROW LEVEL SECURITY;
DROP POLICY readable ON pgshadow.conflict;
ALTER TABLE pgshadow.conflict DISABLE ROW LEVEL SECURITY;

-- #include code from pgshadow--0.1.1.sql

GRANT SELECT ON shadow_status, shadow_errors, shadow_conflicts TO PUBLIC;
SELECT pgshadow._track(t.tbl) FROM pgshadow.tracked t ORDER BY t.tbl::oid;
