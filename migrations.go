// Package pgshadow holds what the pgshadow binary carries of the repository
// itself: the generated golang-migrate files, so `pgshadow migrate` installs
// or upgrades the version it was built with from no checkout at all.
package pgshadow

import "embed"

// Migrations is migrations/*.sql, as generated from sql/ (pgshadow generate).
//
//go:embed migrations/*.sql
var Migrations embed.FS
