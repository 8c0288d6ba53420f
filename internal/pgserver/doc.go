// Package pgserver starts and stops real PostgreSQL servers for tests, the CLI
// demo and the benchmarks. It deliberately does not import "testing": callers
// outside test binaries use it too. By default it runs initdb/pg_ctl from the
// local PostgreSQL installation; setting PGSHADOW_TEST_IMAGE switches to a
// container (see container.go).
package pgserver
