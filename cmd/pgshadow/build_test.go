// Tests for the generate and migrate subcommands. The migrate tests apply the
// repository's generated migrations to a real server through golang-migrate,
// the way a user without extension files on the server would.
package main

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, "migrate")
}

// migrateURL is the pgx5:// URL golang-migrate wants for db.
func migrateURL(db *pgtest.DB) string {
	u := url.URL{
		Scheme:   "pgx5",
		User:     url.UserPassword(db.Server.User, db.Server.Password),
		Host:     db.Server.Host + ":" + strconv.Itoa(db.Server.Port),
		Path:     "/" + db.Name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// The public API that must exist after the install, whichever path it took.
var apiFunctions = []string{"shadow_track", "shadow_untrack", "shadow_add_target", "shadow_subscribe", "shadow_unsubscribe", "shadow_export"}

func countAPI(t *testing.T, db *pgtest.DB) int64 {
	t.Helper()
	return db.QueryInt(t, `SELECT count(DISTINCT proname) FROM pg_proc WHERE proname = ANY($1)`, apiFunctions) +
		db.QueryInt(t, `SELECT count(*) FROM pg_class WHERE relname = 'shadow_status' AND relkind = 'v'`)
}

func TestMigrateUpInstallsThePublicAPIAndDownAllRemovesIt(t *testing.T) {
	db := pgtest.NewDB(t, pgtest.Server("migrate"))
	dir := filepath.Join("..", "..", "migrations")
	ups, err := filepath.Glob(filepath.Join(dir, "*.up.sql"))
	if err != nil || len(ups) == 0 {
		t.Fatalf("no generated migrations in %s (err %v): run make generate", dir, err)
	}
	ctx := context.Background()
	migrate := func(args ...string) error {
		return runMigrate(ctx, append([]string{"-database", migrateURL(db), "-path", dir}, args...))
	}

	if err := migrate("up"); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	if got := db.QueryInt(t, "SELECT version FROM schema_migrations WHERE NOT dirty"); got != int64(len(ups)) {
		t.Errorf("after up: at migration %d, want %d (the last one)", got, len(ups))
	}
	if got, want := countAPI(t, db), int64(len(apiFunctions)+1); got != want {
		t.Errorf("after up: %d of the %d public functions and views exist", got, want)
	}
	if err := migrate("up"); err != nil {
		t.Errorf("a second up should change nothing, got: %v", err)
	}

	if err := migrate("down", "all"); err != nil {
		t.Fatalf("migrate down all: %v", err)
	}
	if got := countAPI(t, db); got != 0 {
		t.Errorf("after down all: %d public functions and views are left", got)
	}
	if got := db.QueryInt(t, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgshadow'"); got != 0 {
		t.Errorf("after down all: schema pgshadow still exists")
	}

	if err := migrate("up"); err != nil {
		t.Fatalf("migrate up after down all: %v", err)
	}
	if got, want := countAPI(t, db), int64(len(apiFunctions)+1); got != want {
		t.Errorf("after reinstall: %d of the %d public functions and views exist", got, want)
	}
}

func TestMigrateFailureIsOneLineNamingMigrationAndLine(t *testing.T) {
	db := pgtest.NewDB(t, pgtest.Server("migrate"))
	dir := t.TempDir()
	files := map[string]string{
		"000001_ok.up.sql":    "CREATE TABLE ok_table ();\n",
		"000001_ok.down.sql":  "DROP TABLE ok_table;\n",
		"000002_bad.up.sql":   "-- a comment\nCREATE TABLE bad_table ();\nSELECT no_such_function();\n",
		"000002_bad.down.sql": "DROP TABLE bad_table;\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := runMigrate(context.Background(), []string{"-database", migrateURL(db), "-path", dir, "up"})
	if err == nil {
		t.Fatal("migrate up succeeded over a migration that calls a missing function")
	}
	msg := err.Error()
	for _, want := range []string{"migration 2", "line 3", "no_such_function", "force"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, "CREATE TABLE") {
		t.Errorf("error should be one line without the migration's text, got %q", msg)
	}
	// The failed migration ran in one implicit transaction: nothing of it stays.
	if got := db.QueryInt(t, "SELECT count(*) FROM pg_class WHERE relname = 'bad_table'"); got != 0 {
		t.Errorf("the failed migration left bad_table behind")
	}
}

func TestMigrateAcceptsPostgresURLs(t *testing.T) {
	db := pgtest.NewDB(t, pgtest.Server("migrate"))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "000001_one.up.sql"), []byte("CREATE TABLE one ();\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := strings.Replace(migrateURL(db), "pgx5://", "postgres://", 1)
	if err := runMigrate(context.Background(), []string{"-database", u, "-path", dir, "up"}); err != nil {
		t.Fatalf("migrate up with a postgres:// URL: %v", err)
	}
	if got := db.QueryInt(t, "SELECT count(*) FROM pg_class WHERE relname = 'one'"); got != 1 {
		t.Errorf("migration did not run")
	}
}

func TestCommandExitCodes(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"pgshadow.control":  "default_version = '1.0.0'\n",
		"sql/01_a.sql":      "SELECT 1;\n",
		"sql/uninstall.sql": "SELECT 1;\n",
	} {
		full := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"check before generating", []string{"generate", "-check", "-root", root}, 1},
		{"generate", []string{"generate", "-root", root}, 0},
		{"check after generating", []string{"generate", "-check", "-root", root}, 0},
		{"no build alias", []string{"build", "-root", root}, 1},
		{"unknown flag", []string{"generate", "-nope"}, 1},
		{"help flag", []string{"generate", "-h"}, 0},
		{"unknown command", []string{"no-such-command"}, 1},
		{"migrate without database", []string{"migrate", "up"}, 1},
		{"migrate with unknown action", []string{"migrate", "-database", "pgx5://u@127.0.0.1:1/db", "sideways"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(tc.args); got != tc.want {
				t.Errorf("pgshadow %s: exit code %d, want %d", strings.Join(tc.args, " "), got, tc.want)
			}
		})
	}
}

// Without -path, pgshadow migrate runs the migrations built into the binary,
// from any directory: installing needs the binary, not a checkout.
func TestMigrateRunsTheMigrationsBuiltIntoTheBinary(t *testing.T) {
	db := pgtest.NewDB(t, pgtest.Server("migrate"))
	ups, err := filepath.Glob(filepath.Join("..", "..", "migrations", "*.up.sql"))
	if err != nil || len(ups) == 0 {
		t.Fatalf("no generated migrations (err %v): run make generate", err)
	}
	t.Chdir(t.TempDir()) // no migrations/ here
	if err := runMigrate(context.Background(), []string{"-database", migrateURL(db), "up"}); err != nil {
		t.Fatalf("migrate up from the binary: %v", err)
	}
	if got := db.QueryInt(t, "SELECT version FROM schema_migrations WHERE NOT dirty"); got != int64(len(ups)) {
		t.Errorf("at migration %d, want %d (the last one in migrations/)", got, len(ups))
	}
	if got := countAPI(t, db); got != int64(len(apiFunctions))+1 {
		t.Errorf("the public API is not installed: %d of %d objects", got, len(apiFunctions)+1)
	}
}
