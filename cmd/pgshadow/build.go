// Build-side subcommands: `generate` assembles sql/ into the
// extension scripts and migrations; `migrate` applies those migrations with
// golang-migrate, for servers where extension files cannot be installed.

package main

import (
	"context"
	"errors"
	"fmt"
	iofsys "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow"
	"github.com/pgshadow/pgshadow/internal/generator"
)

func runGenerate(_ context.Context, args []string) error {
	fs := newFlagSet("generate", "pgshadow generate [-root DIR] [-check]")
	root := fs.String("root", ".", "repository root, the directory holding pgshadow.control and sql/")
	check := fs.Bool("check", false, "write nothing; fail listing the generated files that are out of date")
	if err := fs.parseFlagsOnly(args); err != nil {
		return err
	}
	if *check {
		if err := generator.Check(*root); err != nil {
			return err
		}
		fmt.Println("generated files are up to date")
		return nil
	}
	changed, err := generator.Write(*root)
	if err != nil {
		return err
	}
	for _, p := range changed {
		verb := "wrote"
		if _, err := os.Stat(filepath.Join(*root, filepath.FromSlash(p))); errors.Is(err, os.ErrNotExist) {
			verb = "removed"
		}
		fmt.Println(verb, p)
	}
	if len(changed) == 0 {
		fmt.Println("generated files are up to date")
	}
	return nil
}

const migrateUsage = "pgshadow migrate -database pgx5://USER@HOST/DB [-path DIR] up [N] | down [N|all] | version | force VERSION"

func runMigrate(ctx context.Context, args []string) error {
	fs := newFlagSet("migrate", migrateUsage)
	dbURL := fs.String("database", "", "database URL, pgx5://user:password@host:port/dbname?sslmode=disable (postgres:// works too)")
	dir := fs.String("path", "", "directory holding the migrations to run (default: the ones built into this binary)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbURL == "" {
		return fmt.Errorf("-database is required: %s", migrateUsage)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("missing action: %s", migrateUsage)
	}
	step, err := migrateStep(fs.Arg(0), fs.Args()[1:])
	if err != nil {
		return err
	}

	// the migrations built into the binary: those of the version it was
	// built from, whatever directory it runs in
	var from iofsys.FS
	sub, where := "migrations", "this binary"
	if *dir != "" {
		from, sub, where = os.DirFS(*dir), ".", *dir
	} else if from, err = pgshadow.Migrations(); err != nil {
		return err
	}
	src, err := iofs.New(from, sub)
	if err != nil {
		return fmt.Errorf("read migrations from %s: %w", where, err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, pgx5URL(*dbURL))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer m.Close()
	m.Log = stdoutLog{}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true
		case <-stopped:
		}
	}()

	if err := step(m); err != nil {
		return err
	}
	return printVersion(m)
}

// migrateStep checks an action and its arguments before anything connects,
// and returns what to run once connected.
func migrateStep(action string, rest []string) (func(*migrate.Migrate) error, error) {
	switch action {
	case "up":
		n, err := optionalCount(rest, 0)
		if err != nil {
			return nil, err
		}
		return func(m *migrate.Migrate) error {
			var err error
			if n == 0 {
				err = m.Up()
			} else {
				err = m.Steps(n)
			}
			var short migrate.ErrShortLimit
			switch {
			case errors.As(err, &short):
				return fmt.Errorf("up: only %d migration(s) were pending, all applied", n-int(short.Short))
			case err != nil && !errors.Is(err, migrate.ErrNoChange):
				return migrationFailed(m, "up", err)
			}
			return nil
		}, nil
	case "down":
		all := len(rest) == 1 && (rest[0] == "all" || rest[0] == "-all")
		n := 0
		if !all {
			var err error
			if n, err = optionalCount(rest, 1); err != nil {
				return nil, err
			}
		}
		return func(m *migrate.Migrate) error {
			if _, _, err := m.Version(); errors.Is(err, migrate.ErrNilVersion) {
				return nil // nothing applied; golang-migrate would report a missing file
			}
			var err error
			if all {
				err = m.Down()
			} else {
				err = m.Steps(-n)
			}
			if err != nil && !errors.Is(err, migrate.ErrNoChange) {
				return migrationFailed(m, "down", err)
			}
			return nil
		}, nil
	case "version":
		if len(rest) > 0 {
			return nil, fmt.Errorf("version takes no argument, got %q", rest[0])
		}
		return func(*migrate.Migrate) error { return nil }, nil
	case "force":
		if len(rest) != 1 {
			return nil, fmt.Errorf("force needs exactly one version: %s", migrateUsage)
		}
		v, err := strconv.Atoi(rest[0])
		if err != nil {
			return nil, fmt.Errorf("force: version %q is not a number", rest[0])
		}
		return func(m *migrate.Migrate) error {
			if err := m.Force(v); err != nil {
				return fmt.Errorf("force: %w", err)
			}
			return nil
		}, nil
	default:
		return nil, fmt.Errorf("unknown action %q: %s", action, migrateUsage)
	}
}

// migrationFailed reports a failed step in one line: golang-migrate's own
// message quotes the whole migration file.
func migrationFailed(m *migrate.Migrate, action string, err error) error {
	var orig error
	var line uint
	var byValue database.Error
	var byPointer *database.Error
	switch {
	case errors.As(err, &byValue):
		orig, line = byValue.OrigErr, byValue.Line
	case errors.As(err, &byPointer):
		orig, line = byPointer.OrigErr, byPointer.Line
	default:
		return fmt.Errorf("%s: %w", action, err)
	}
	where, hint := "", ""
	if v, dirty, verr := m.Version(); verr == nil && dirty {
		where = fmt.Sprintf(" in migration %d", v)
		hint = "; the database is marked dirty: repair it, then `force` the last good version"
	}
	// The driver counts lines from the error's position; without one its
	// line number means nothing.
	var pgErr *pgconn.PgError
	if line > 0 && errors.As(orig, &pgErr) && pgErr.Position > 0 {
		where += fmt.Sprintf(" at line %d", line)
	}
	return fmt.Errorf("%s failed%s: %v%s", action, where, orig, hint)
}

// pgx5URL accepts the postgres:// URLs users already have; golang-migrate
// picks its driver by scheme and only the pgx v5 one is linked in.
func pgx5URL(u string) string {
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		if rest, ok := strings.CutPrefix(u, scheme); ok {
			return "pgx5://" + rest
		}
	}
	return u
}

// optionalCount parses the [N] of up/down, returning def when it is absent.
func optionalCount(rest []string, def int) (int, error) {
	switch len(rest) {
	case 0:
		return def, nil
	case 1:
		n, err := strconv.Atoi(rest[0])
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("step count %q: want a positive number", rest[0])
		}
		return n, nil
	default:
		return 0, fmt.Errorf("too many arguments %q: %s", rest, migrateUsage)
	}
}

func printVersion(m *migrate.Migrate) error {
	v, dirty, err := m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		fmt.Println("no migration applied")
		return nil
	}
	if err != nil {
		return fmt.Errorf("read version: %w", err)
	}
	state := ""
	if dirty {
		state = " (dirty: the last migration failed part-way; fix the database, then force the version)"
	}
	fmt.Printf("at migration %d%s\n", v, state)
	return nil
}

// stdoutLog shows each migration as it is applied.
type stdoutLog struct{}

func (stdoutLog) Printf(format string, v ...any) { fmt.Printf(format, v...) }
func (stdoutLog) Verbose() bool                  { return false }
