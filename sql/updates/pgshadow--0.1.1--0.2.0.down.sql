-- pgshadow 0.2.0 -> 0.1.1 (golang-migrate down step): the functions 0.2.0
-- added go, the tables lose what 0.2.0 gave them, and the code of the
-- released 0.1.1 script comes back.

DROP FUNCTION pgshadow._acts_for(name, regclass), pgshadow._check_acts_for(regclass, name),
    pgshadow._blocks_writers(regclass), pgshadow._run_due(text), pgshadow._run_one(bigint, integer);

DROP VIEW shadow_status;
DROP FUNCTION pgshadow._pending(bigint, boolean), pgshadow._system_id(), pgshadow._history_break(regclass),
    pgshadow._stamp(text), pgshadow._check_history(regclass), pgshadow.file_purge(text);
DROP TABLE pgshadow.history;

DROP POLICY readable ON pgshadow.subscription;
ALTER TABLE pgshadow.subscription DISABLE ROW LEVEL SECURITY;
DROP POLICY readable ON pgshadow.error;
ALTER TABLE pgshadow.error DISABLE ROW LEVEL SECURITY;
DROP POLICY readable ON pgshadow.skipped;
ALTER TABLE pgshadow.skipped DISABLE ROW LEVEL SECURITY;
DROP POLICY readable ON pgshadow.conflict;
ALTER TABLE pgshadow.conflict DISABLE ROW LEVEL SECURITY;
-- views: 0.1.1's have no options
ALTER VIEW shadow_errors RESET (security_barrier);
ALTER VIEW shadow_conflicts RESET (security_barrier);

-- #include code from pgshadow--0.1.1.sql

GRANT SELECT ON shadow_status TO PUBLIC;
