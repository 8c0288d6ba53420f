-- pgshadow: the internal schema. Public API functions are created in the
-- extension's schema (the first schema of search_path at install time, public
-- by default) so they work with the default search_path; everything else lives
-- in the fixed schema pgshadow, owned by the installing role.
CREATE SCHEMA pgshadow;
COMMENT ON SCHEMA pgshadow IS 'pgshadow internals: catalog, shadow tables, helpers';

-- Everyone may look up objects here; shadow tables are granted one by one to
-- the owner of the table they shadow, nothing else is writable.
GRANT USAGE ON SCHEMA pgshadow TO PUBLIC;
