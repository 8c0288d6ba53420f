-- pgshadow 0.1.1 -> 0.2.0: the security model (docs/DESIGN.md): subscriptions
-- act only with their owner's rights, nobody reads through pgshadow what
-- they cannot SELECT, every function pins search_path; copies that never
-- keep writers or target readers waiting.
--
-- This part changes the tables and drops what CREATE OR REPLACE cannot
-- change; the functions, procedures and views of 0.2.0 follow, taken by the
-- generator from sql/ (-- #include code), so they are never copied here.

-- Row filters, error texts and conflicts quote row data: a row of the
-- catalog is visible only to roles that may SELECT the table it is about.
ALTER TABLE pgshadow.subscription ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.subscription FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT'));
ALTER TABLE pgshadow.error ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.error FOR SELECT
    USING (EXISTS (SELECT FROM pgshadow.subscription s WHERE s.id = sub_id AND NOT pg_catalog.row_security_active(s.tbl)));
ALTER TABLE pgshadow.skipped ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.skipped FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT') AND NOT pg_catalog.row_security_active(tbl));
ALTER TABLE pgshadow.conflict ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.conflict FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT') AND NOT pg_catalog.row_security_active(tbl));

-- Roles a table's owner lets export its subscriptions without owning the
-- table (shadow_grant_export): a scheduler that must not be able to drop it.
-- #include table pgshadow.export_grant

-- The transaction-id history the watermarks were taken in (see
-- sql/15_history.sql). Left empty: a 0.1.1 database may have been moved
-- before this upgrade, so its first check re-baselines (ships every held key
-- once; file targets get a full copy), which is always safe.
-- #include table pgshadow.history

-- Failure history and a failure counter per subscription (see
-- sql/10_catalog.sql): an incident outlives the success that clears it.
ALTER TABLE pgshadow.subscription ADD COLUMN failures bigint NOT NULL DEFAULT 0;
-- #include table pgshadow.failure

-- Mesh peers are known by identity (sql/10_catalog.sql): this node's id,
-- and what node each target reaches, learned at the next connection.
CREATE TABLE pgshadow.node (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    id   uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid()
);
INSERT INTO pgshadow.node DEFAULT VALUES;
GRANT SELECT ON pgshadow.node TO PUBLIC;
ALTER TABLE pgshadow.target ADD COLUMN peer_id uuid, ADD COLUMN peer_node text, ADD COLUMN peer_at timestamptz;
-- consistent export: all of a target's tables at one snapshot (shadow_alter_target)
ALTER TABLE pgshadow.target ADD COLUMN consistent boolean NOT NULL DEFAULT false;
-- its argument is now the target that reaches the origin (a new name)
DROP FUNCTION pgshadow._peer_gate(regclass, text);

-- Capture: each tracked table gets a function of its own (converted below);
-- the precomputed statements of the generic function go.
ALTER TABLE pgshadow.tracked DROP COLUMN ins_sql, DROP COLUMN upd_sql, DROP COLUMN upd_new_sql,
    DROP COLUMN del_sql, DROP COLUMN trunc_sql;

-- A subscription whose backlog a purge stopped keeping (pgshadow.max_backlog_age)
ALTER TABLE pgshadow.subscription ADD COLUMN backlog_dropped_at timestamptz,
    ADD COLUMN backlog_dropped_reason text;

-- A subscription made without a column list keeps shipping all columns as
-- the table changes. 0.1.1 stored such a one as the list of the columns the
-- table had: a list equal to the table's current shippable columns, in
-- order, is taken for one (an explicit list naming every column then ships
-- a later column too, once the target has it, rather than leave it out).
ALTER TABLE pgshadow.subscription ADD COLUMN all_columns boolean NOT NULL DEFAULT false;
UPDATE pgshadow.subscription s
   SET all_columns = s.columns = ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a
                                        WHERE a.attrelid = s.tbl AND a.attnum > 0 AND NOT a.attisdropped
                                          AND a.attgenerated = '' ORDER BY a.attnum);

-- _pending gains an argument, and shadow_status columns
DROP VIEW shadow_status;
DROP FUNCTION pgshadow._pending(bigint);

-- #include code

GRANT SELECT ON shadow_status TO PUBLIC;
GRANT SELECT ON shadow_failures TO PUBLIC;
GRANT SELECT ON shadow_progress TO PUBLIC;

-- the fixed value settings as SET clauses (sql/89_finish.sql; CREATE OR
-- REPLACE above has none)
SELECT pgshadow._pin_settings();
-- the catalog tables pg_dump dumps with their rows, new ones included
-- (sql/10_catalog.sql)
SELECT pgshadow._dump_catalog();

-- Every tracked table to its own capture function, in place: shadow table,
-- pending keys and watermarks stay (needs a superuser, or an extension owner
-- that is a member of every table owner's role). Until then the old
-- triggers call the stub pgshadow.capture(), which refuses writes rather
-- than lose them.
-- The event triggers 0.2.0 adds.
SELECT pgshadow._create_watches();
SELECT pgshadow._install_capture(t.tbl) FROM pgshadow.tracked t ORDER BY t.tbl::oid;
DROP FUNCTION pgshadow.capture_key();

-- Row filters are stored canonical now (pgshadow._filter parses, never runs
-- them). One that 0.2.0 refuses stops the upgrade, naming it: dropping it
-- would ship rows it kept out.
DO $$
DECLARE
    v     record;
    v_bad text := '';
BEGIN
    FOR v IN SELECT s.id, s.target, s.tbl, s.row_filter FROM pgshadow.subscription s
              WHERE s.row_filter IS NOT NULL ORDER BY s.id LOOP
        BEGIN
            UPDATE pgshadow.subscription SET row_filter = pgshadow._filter(v.tbl, v.row_filter) WHERE id = v.id;
        EXCEPTION WHEN OTHERS THEN
            v_bad := v_bad || format(E'\n  %s to target "%s": %s', v.tbl, v.target, SQLERRM);
        END;
    END LOOP;
    IF v_bad <> '' THEN
        RAISE EXCEPTION 'pgshadow: cannot update to 0.2.0: row filters it no longer accepts:%', v_bad
            USING HINT = 'Row filters may hold only columns of built-in types, constants and built-in immutable functions and operators. shadow_unsubscribe() these and subscribe them again with such a filter, then update.';
    END IF;
END
$$;
