// Package pgsession configures the connections the pgshadow CLI and daemon
// open: a bounded connect, TCP keepalives, and a pinned search_path, and finds
// the schema of pgshadow's public API so it is always called qualified.
//
// With a writable public schema (the default before PostgreSQL 15) any role
// can create functions and operators there; a superuser whose search_path
// reaches such a schema would resolve them instead of the intended ones. So
// every session runs with search_path = pg_catalog, pg_temp and names
// pgshadow's objects with their schema: nothing an outsider creates is ever
// picked.
package pgsession
