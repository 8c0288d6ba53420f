// Package pgshadow holds what the pgshadow binary carries of the repository
// itself: the generated golang-migrate files, so `pgshadow migrate` installs
// or upgrades the version it was built with from no checkout at all.
package pgshadow

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/pgshadow/pgshadow/internal/generator"
)

// migrations is migrations/*.sql as `pgshadow generate` (run by make) left
// them when the binary was built. Only released versions' migrations are
// committed, so a binary built from a checkout without generating them
// would carry an older version than its pgshadow.control names.
//
//go:embed migrations/*.sql pgshadow.control
var migrations embed.FS

// Migrations returns the golang-migrate files built into the binary (the
// directory "migrations"), after checking that the last of them installs
// the version the binary was built for.
func Migrations() (fs.FS, error) {
	return complete(migrations)
}

// complete returns fsys (the layout of the repository root) if its last
// up migration is the version its pgshadow.control names.
func complete(fsys fs.FS) (fs.FS, error) {
	control, err := fs.ReadFile(fsys, "pgshadow.control")
	if err != nil {
		return nil, err
	}
	want, err := generator.DefaultVersion(control)
	if err != nil {
		return nil, fmt.Errorf("built into this binary: %w", err)
	}
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	last := ""
	for _, e := range entries { // sorted by name, so by migration number
		if v := generator.UpMigrationVersion(e.Name()); v != "" {
			last = v
		}
	}
	if last != want {
		return nil, fmt.Errorf("this binary carries the migrations up to pgshadow %s, not %s, the version it was built from: "+
			"build it with make (which generates migrations/ from sql/), or pass -path DIR", last, want)
	}
	return fsys, nil
}
