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
    USING (EXISTS (SELECT FROM pgshadow.subscription s WHERE s.id = sub_id));
ALTER TABLE pgshadow.skipped ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.skipped FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT'));
ALTER TABLE pgshadow.conflict ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.conflict FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT'));

-- #include code
