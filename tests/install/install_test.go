// Install paths: the generated files are fresh, CREATE EXTENSION and the
// golang-migrate migrations install the same objects, the down migration
// removes them all, and an install updated from every shipped version equals
// a fresh one.
package install_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	_ "github.com/golang-migrate/migrate/v4/source/file"

	"github.com/pgshadow/pgshadow/internal/generator"
	"github.com/pgshadow/pgshadow/tests/install"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, "source")
}

// The install tests read the generated scripts from disk: run by plain
// `go test` after sql/ changed (make test generates first), they would test
// stale ones.
func TestGeneratedFilesAreFresh(t *testing.T) {
	err := generator.Check(install.RepoRoot(t))
	var stale *generator.StaleError
	if errors.As(err, &stale) {
		t.Fatalf("generated files are stale (run `make generate`): %v", err)
	}
	if err != nil {
		t.Fatalf("generator.Check: %v", err)
	}
}

// newMigrate opens golang-migrate on db with the repository's migrations,
// connected as the server's superuser.
func newMigrate(t *testing.T, db *pgtest.DB) *migrate.Migrate {
	t.Helper()
	return newMigrateAs(t, db, db.Server.User, db.Server.Password)
}

func newMigrateAs(t *testing.T, db *pgtest.DB, user, password string) *migrate.Migrate {
	t.Helper()
	s := db.Server
	u := url.URL{
		Scheme:   "pgx5",
		User:     url.UserPassword(user, password),
		Host:     fmt.Sprintf("%s:%d", s.Host, s.Port),
		Path:     "/" + db.Name,
		RawQuery: "sslmode=disable",
	}
	src := "file://" + filepath.Join(install.RepoRoot(t), "migrations")
	m, err := migrate.New(src, u.String())
	if err != nil {
		t.Fatalf("open migrations %s on %s as %s: %v", src, db.Name, user, err)
	}
	t.Cleanup(func() {
		if serr, derr := m.Close(); serr != nil || derr != nil {
			t.Errorf("close migrate: source %v, database %v", serr, derr)
		}
	})
	return m
}

// newMigratedDB is a fresh database with pgshadow installed by the migrations
// (its required extensions first, as a DBA would create them).
func newMigratedDB(t *testing.T) (*pgtest.DB, *migrate.Migrate) {
	t.Helper()
	db := pgtest.NewDB(t, pgtest.Server("source"))
	db.Exec(t, "CREATE EXTENSION postgres_fdw; CREATE EXTENSION dblink")
	m := newMigrate(t, db)
	if err := m.Up(); err != nil {
		t.Fatalf("migrate up on %s: %v", db.Name, err)
	}
	return db, m
}

func assertSameInventory(t *testing.T, wantName string, want []string, gotName string, got []string) {
	t.Helper()
	if diff := pgtest.DiffRows(want, got); diff != "" {
		t.Fatalf("%s (-) and %s (+) installed different objects:\n%s", wantName, gotName, diff)
	}
}

func TestExtensionAndMigrationsInstallTheSameObjects(t *testing.T) {
	ext := pgtest.NewDBWithExtension(t, pgtest.Server("source"))
	mig, _ := newMigratedDB(t)
	want := install.Inventory(t, ext)
	if len(want) < 10 {
		t.Fatalf("inventory of CREATE EXTENSION has only %d objects, the inventory queries miss them:\n%s",
			len(want), strings.Join(want, "\n"))
	}
	assertSameInventory(t, "CREATE EXTENSION pgshadow", want, "migrate up", install.Inventory(t, mig))
}

func TestMigrationDownRemovesEverything(t *testing.T) {
	db, m := newMigratedDB(t)
	// tracked tables have capture triggers that depend on their capture functions in schema pgshadow
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t VALUES (1, 'a');
		SELECT shadow_track('t');
		INSERT INTO t VALUES (2, 'b')`)
	if err := m.Down(); err != nil {
		t.Fatalf("migrate down on %s: %v", db.Name, err)
	}
	install.AssertNothingLeft(t, db, "migrate down")
	db.Exec(t, "INSERT INTO t VALUES (3, 'c')")
	if n := db.QueryInt(t, "SELECT count(*) FROM t"); n != 3 {
		t.Fatalf("after migrate down, the formerly tracked table has %d rows, want 3", n)
	}
}

func TestMigrationUpAfterDownInstallsAgain(t *testing.T) {
	db, m := newMigratedDB(t)
	want := install.Inventory(t, db)
	if err := m.Down(); err != nil {
		t.Fatalf("migrate down on %s: %v", db.Name, err)
	}
	if err := m.Up(); err != nil {
		t.Fatalf("migrate up after down on %s: %v", db.Name, err)
	}
	assertSameInventory(t, "first migrate up", want, "migrate up after down", install.Inventory(t, db))
}

// Where no extension files can be installed, the database's owner runs the
// migrations after a DBA created the two contrib extensions. Without
// superuser there is no event trigger; everything else is the same.
func TestMigrationsInstallAsANonSuperuserDatabaseOwner(t *testing.T) {
	const password = "app_pw"
	ext := pgtest.NewDBWithExtension(t, pgtest.Server("source"))
	db := pgtest.NewDB(t, pgtest.Server("source"))
	app := fmt.Sprintf("app_%d", os.Getpid())
	db.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", install.Ident(app), password))
	t.Cleanup(func() {
		// the role owns the database too, which DROP OWNED does not cover
		for _, sql := range []string{"REASSIGN OWNED BY " + install.Ident(app) + " TO " + install.Ident(db.Server.User),
			"DROP OWNED BY " + install.Ident(app), "DROP ROLE " + install.Ident(app)} {
			if err := db.ExecErr(sql); err != nil {
				t.Errorf("cleanup %s: %v", sql, err)
			}
		}
	})
	db.Exec(t, fmt.Sprintf(`ALTER DATABASE %s OWNER TO %s; ALTER SCHEMA public OWNER TO %[2]s;
		CREATE EXTENSION postgres_fdw; CREATE EXTENSION dblink`, install.Ident(db.Name), install.Ident(app)))
	m := newMigrateAs(t, db, app, password)
	if err := m.Up(); err != nil {
		t.Fatalf("migrate up as non-superuser %s: %v", app, err)
	}

	var want []string
	for _, l := range install.Inventory(t, ext) {
		if !strings.HasPrefix(l, "event trigger ") {
			want = append(want, strings.ReplaceAll(l, db.Server.User, "<installer>"))
		}
	}
	var got []string
	for _, l := range install.Inventory(t, db) {
		got = append(got, strings.ReplaceAll(l, app, "<installer>"))
	}
	assertSameInventory(t, "CREATE EXTENSION by a superuser, without its event trigger", want,
		"migrate up by non-superuser "+app, got)

	asApp := db.ConnAs(t, app, password)
	if _, err := asApp.Exec(context.Background(), `CREATE TABLE t (id int PRIMARY KEY);
		SELECT shadow_track('t'); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatalf("as %s after its migrate up: track and write a table: %v", app, err)
	}
	if n := db.QueryInt(t, "SELECT count(*) FROM pgshadow.public__t"); n != 1 {
		t.Fatalf("non-superuser install: the insert left %d shadow rows, want 1", n)
	}

	if err := m.Down(); err != nil {
		t.Fatalf("migrate down as non-superuser %s: %v", app, err)
	}
	install.AssertNothingLeft(t, db, "migrate down as a non-superuser")
}

// The whole capture suite runs over every upgrade path: for each version with
// a full script in the repository, install it, ALTER EXTENSION UPDATE, and
// compare with a fresh install; for older versions also rerun the capture
// package with install.FromVersionEnv set. With a single version the update
// is a no-op, and the ordinary test run already is the run "from" it.
func TestUpdateFromEveryShippedVersionEqualsAFreshInstall(t *testing.T) {
	root := install.RepoRoot(t)
	vs := install.ReadVersions(t, root)
	if len(vs.Full) == 0 {
		t.Fatalf("no pgshadow--<version>.sql in %s: run `make generate`", root)
	}
	fresh := pgtest.NewDBWithExtension(t, pgtest.Server("source"))
	if got := install.ExtVersion(t, fresh); got != vs.Current {
		t.Fatalf("CREATE EXTENSION installed version %s, pgshadow.control says %s: run `make install`", got, vs.Current)
	}
	want := install.Inventory(t, fresh)
	// every catalog table (and identity sequence) is dumped with its rows but
	// pgshadow.node (a database restored from a dump is a new node) and the
	// unlogged ones (sync_open: the state of running transactions)
	wantDumped := fresh.QueryString(t, dumpedSQL)
	if catalog := fresh.QueryString(t, `SELECT string_agg(c.oid::regclass::text, ' ' ORDER BY c.oid::regclass::text)
	      FROM pg_class c WHERE c.relnamespace = 'pgshadow'::regnamespace AND c.relkind IN ('r', 'p', 'S')
	       AND c.oid <> 'pgshadow.node'::regclass AND c.relpersistence = 'p'
	       AND NOT EXISTS (SELECT FROM pg_depend d JOIN pg_class o ON o.oid = d.refobjid
	                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
	                          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
	                          AND o.relpersistence = 'u')`); wantDumped != catalog {
		t.Errorf("CREATE EXTENSION marks %q for pg_dump, want every catalog table: %q", wantDumped, catalog)
	}
	for _, from := range vs.Full {
		t.Run("from_"+from, func(t *testing.T) {
			db := pgtest.NewDB(t, pgtest.Server("source"))
			if db.QueryInt(t, `SELECT count(*) FROM pg_available_extension_versions
			                    WHERE name = 'pgshadow' AND version = $1`, from) != 1 {
				t.Fatalf("version %s is in the repository but not installed on the server: run `make install`", from)
			}
			install.InstallVersionAndUpdate(t, db, from)
			if got := install.ExtVersion(t, db); got != vs.Current {
				t.Fatalf("after ALTER EXTENSION pgshadow UPDATE from %s: version %s, want %s", from, got, vs.Current)
			}
			assertSameInventory(t, "fresh install of "+vs.Current, want,
				"install of "+from+" updated to "+vs.Current, install.Inventory(t, db))
			if got := db.QueryString(t, dumpedSQL); got != wantDumped {
				t.Errorf("tables pg_dump dumps with their rows, after the update from %s: %s, a fresh install: %s", from, got, wantDumped)
			}
			if from == vs.Current {
				return
			}
			if testing.Short() {
				t.Skipf("-short: not rerunning the capture suite over the update from %s", from)
			}
			runCaptureSuiteFrom(t, root, from)
		})
	}
}

// runCaptureSuiteFrom runs the capture test package with every database
// installed at version from and then updated.
func runCaptureSuiteFrom(t *testing.T, root, from string) {
	t.Helper()
	cmd := exec.Command("go", "test", "-count=1", "-short", "./tests/capture/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), install.FromVersionEnv+"="+from)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("capture suite over the update from %s failed: %v\n%s", from, err, out)
	}
}

// Each migration's down step takes the objects back to what the migrations
// before it installed, so `migrate down 1` after an upgrade restores the
// previous version exactly (and `migrate up 1` moves forward again).
func TestEveryMigrationDownStepRestoresThePreviousVersion(t *testing.T) {
	db := pgtest.NewDB(t, pgtest.Server("source"))
	db.Exec(t, "CREATE EXTENSION postgres_fdw; CREATE EXTENSION dblink")
	m := newMigrate(t, db)
	if err := m.Steps(1); err != nil {
		t.Fatalf("migrate up 1 on %s: %v", db.Name, err)
	}
	for {
		version, _, err := m.Version()
		if err != nil {
			t.Fatalf("migrate version: %v", err)
		}
		before := install.Inventory(t, db)
		// past the last migration golang-migrate reports "file does not exist"
		var short migrate.ErrShortLimit
		if err := m.Steps(1); errors.Is(err, os.ErrNotExist) || errors.As(err, &short) {
			if version < 2 {
				t.Skipf("only one migration: no down step between versions to check")
			}
			return
		} else if err != nil {
			t.Fatalf("migrate up from %d: %v", version, err)
		}
		after := install.Inventory(t, db)
		if diff := pgtest.DiffRows(before, after); diff == "" {
			t.Fatalf("migration %d changed no object: the inventory misses what it changed", version+1)
		}
		if err := m.Steps(-1); err != nil {
			t.Fatalf("migrate down from %d: %v", version+1, err)
		}
		assertSameInventory(t, fmt.Sprintf("migrations up to %d", version), before,
			fmt.Sprintf("migration %d and its down step", version+1), install.Inventory(t, db))
		if err := m.Steps(1); err != nil {
			t.Fatalf("migrate up again to %d: %v", version+1, err)
		}
	}
}

// An update keeps the work in flight: a table tracked and subscribed under an
// older version, with changes pending and a watermark, ships exactly those
// changes after ALTER EXTENSION pgshadow UPDATE (through the new version's
// export), and keeps capturing afterwards.
func TestUpdateKeepsPendingChangesAndWatermarks(t *testing.T) {
	root := install.RepoRoot(t)
	vs := install.ReadVersions(t, root)
	older := 0
	for _, from := range vs.Full {
		if from == vs.Current {
			continue
		}
		older++
		t.Run("from_"+from, func(t *testing.T) {
			s := pgtest.Server("source")
			src, dst := pgtest.NewDB(t, s), pgtest.NewDB(t, s)
			src.Exec(t, "CREATE EXTENSION pgshadow VERSION "+install.Literal(from)+" CASCADE")
			// pending under the old version: more than one chunk of updates, and deletes
			leavePendingChanges(t, src, dst, 30000)
			watermark := src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription")

			src.Exec(t, "ALTER EXTENSION pgshadow UPDATE")
			if got := install.ExtVersion(t, src); got != vs.Current {
				t.Fatalf("after ALTER EXTENSION pgshadow UPDATE from %s: version %s, want %s", from, got, vs.Current)
			}
			if got := src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription"); got != watermark {
				t.Fatalf("the update moved the watermark from %s to %s", watermark, got)
			}
			assertShipsPendingAndCaptures(t, src, dst, 30000, "the update")
		})
	}
	if older == 0 {
		t.Skip("no older version in the repository: nothing to update from")
	}
}

// assertOwnCaptureFunction fails unless every capture trigger of tbl calls
// the table's own capture function (0.2.0), none the generic one of 0.1.x.
func assertOwnCaptureFunction(t *testing.T, db *pgtest.DB, tbl string) {
	t.Helper()
	got := db.QueryStrings(t, `SELECT DISTINCT g.tgfoid::regproc::text FROM pg_trigger g
		 WHERE g.tgrelid = $1::regclass AND g.tgname LIKE 'pgshadow\_capture%'`, tbl)
	want := db.QueryString(t, `SELECT 'pgshadow.' || pgshadow._capture_fn_name(shadow) FROM pgshadow.tracked WHERE tbl = $1::regclass`, tbl)
	if len(got) != 1 || got[0] != want {
		t.Fatalf("after the update the capture triggers of %s call %v, want only %s", tbl, got, want)
	}
}

// The same through the migrations: a table tracked and subscribed at
// migration 2 (0.1.1), with changes pending, ships them after migrate up, and
// its captures then use its own capture function.
func TestMigrateUpKeepsPendingChangesAndWatermarks(t *testing.T) {
	s := pgtest.Server("source")
	src, dst := pgtest.NewDB(t, s), pgtest.NewDB(t, s)
	src.Exec(t, "CREATE EXTENSION postgres_fdw; CREATE EXTENSION dblink")
	m := newMigrate(t, src)
	if err := m.Steps(2); err != nil {
		t.Fatalf("migrate up to 0.1.1: %v", err)
	}
	leavePendingChanges(t, src, dst, 3000)
	if err := m.Up(); err != nil {
		t.Fatalf("migrate up from 0.1.1: %v", err)
	}
	assertShipsPendingAndCaptures(t, src, dst, 3000, "migrate up")
}

// leavePendingChanges links src to dst as target t1 and subscribes table t
// (id int PRIMARY KEY, v text; rows rows, a multiple of 30) to it, then
// leaves pending, unexported, the update of the first five sixths of the
// rows and the delete of the last thirtieth: rows*13/15 keys.
func leavePendingChanges(t *testing.T, src, dst *pgtest.DB, rows int) {
	t.Helper()
	src.LinkServer(t, "tgt", dst)
	const ddl = "CREATE TABLE t (id int PRIMARY KEY, v text)"
	src.Exec(t, ddl)
	dst.Exec(t, ddl)
	src.Exec(t, fmt.Sprintf(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, %d) g;
		SELECT shadow_add_target('t1', 'tgt'); SELECT shadow_subscribe('t1', 't')`, rows))
	src.Exec(t, fmt.Sprintf("UPDATE t SET v = 'old version' WHERE id <= %d; DELETE FROM t WHERE id > %d", rows*5/6, rows*29/30))
}

// assertShipsPendingAndCaptures checks, after an upgrade (named by what),
// the table of leavePendingChanges(rows): its capture triggers call its own
// capture function, the first export ships exactly the keys pending from
// before, a change made afterwards (one row in every rows/30 of the 29/30
// left) is captured and shipped, and the target ends equal to the source.
func assertShipsPendingAndCaptures(t *testing.T, src, dst *pgtest.DB, rows int, what string) {
	t.Helper()
	assertOwnCaptureFunction(t, src, "t")
	if n, want := src.QueryInt(t, "SELECT keys FROM shadow_export('t1')"), int64(rows*13/15); n != want {
		t.Errorf("first export after %s shipped %d keys, want the %d pending from before it", what, n, want)
	}
	src.Exec(t, fmt.Sprintf("UPDATE t SET v = 'new version' WHERE id %% %d = 0", rows/30))
	if n := src.QueryInt(t, "SELECT keys FROM shadow_export('t1')"); n != 29 {
		t.Errorf("export of changes made after %s shipped %d keys, want 29", what, n)
	}
	pgtest.AssertSameRows(t, src, "t", dst, "t")
}

// dumpedSQL lists the tables and sequences pg_dump dumps with their rows.
const dumpedSQL = `SELECT coalesce(string_agg(c::regclass::text, ' ' ORDER BY c::regclass::text), '')
                     FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'pgshadow'`
