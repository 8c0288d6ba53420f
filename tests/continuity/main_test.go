// Package continuity tests that no change is lost when a source database
// moves into another transaction-id history (pg_dump/pg_restore onto a
// server whose counter is behind or ahead, a TEMPLATE copy) and when exports
// or purges run in a REPEATABLE READ or SERIALIZABLE transaction. Every
// scenario ends with the targets holding the source's rows, row by row.
package continuity

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// Servers: the source starts on "old", moves to "new"; "target" holds the
// push target, "files" the file target's imports.
func TestMain(m *testing.M) {
	pgtest.Main(m, "old", "new", "target", "files")
}

const (
	pushTarget = pgtest.PushTarget
	fileTarget = pgtest.FileTarget
)

// env is a source database with a push target and a file target.
type env struct {
	*pgtest.PushAndFiles
}

// newEnv puts the source on server on.
func newEnv(t *testing.T, on *pgserver.Server) *env {
	t.Helper()
	return &env{pgtest.NewPushAndFiles(t, on, pgtest.Server("target"), pgtest.Server("files"))}
}

const tableDDL = "CREATE TABLE tbl (id int PRIMARY KEY, v text)"

// setup creates tbl everywhere, seeds it and subscribes it to both targets
// (initial copies shipped and imported).
func (e *env) setup(t *testing.T) {
	t.Helper()
	e.Src.Exec(t, tableDDL)
	e.Push.Exec(t, tableDDL)
	e.Files.Exec(t, tableDDL)
	e.Src.Exec(t, "INSERT INTO tbl SELECT g, 'seed ' || g FROM generate_series(1, 50) g")
	e.Src.Exec(t, "SELECT shadow_subscribe($1, 'tbl')", pushTarget)
	e.Src.Exec(t, "SELECT shadow_subscribe($1, 'tbl')", fileTarget)
	e.sync(t)
}

// pushExport ships what is pending to the push target and returns the keys shipped.
func (e *env) pushExport(t *testing.T) int64 {
	t.Helper()
	return e.Src.QueryInt(t, "SELECT coalesce(sum(keys), 0)::bigint FROM shadow_export($1)", pushTarget)
}

// fileExport exports the file target and imports the batch, if any.
func (e *env) fileExport(t *testing.T) *filemode.ExportResult {
	t.Helper()
	res, err := e.fileExportErr(t, filemode.ExportOptions{})
	if err != nil {
		t.Fatalf("pgshadow export: %s", pgtest.Describe(err))
	}
	if res.BatchDir != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := filemode.Import(ctx, connect(t, e.Files), filemode.ImportOptions{Dir: res.BatchDir}); err != nil {
			t.Fatalf("pgshadow import %s: %s", filepath.Base(res.BatchDir), pgtest.Describe(err))
		}
	}
	return res
}

func (e *env) fileExportErr(t *testing.T, o filemode.ExportOptions) (*filemode.ExportResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o.Target, o.Dir = fileTarget, e.Dir
	return filemode.Export(ctx, connect(t, e.Src), o)
}

func (e *env) sync(t *testing.T) {
	t.Helper()
	e.pushExport(t)
	e.fileExport(t)
}

// same fails unless both targets hold the source's rows of tbl.
func (e *env) same(t *testing.T) {
	t.Helper()
	pgtest.AssertSameRows(t, e.Src, "tbl", e.Push, "tbl")
	pgtest.AssertSameRows(t, e.Src, "tbl", e.Files, "tbl")
}

// nextXid is the server's next transaction id (xmax of a fresh snapshot).
func nextXid(t *testing.T, s *pgserver.Server) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := adminConn(t, ctx, s)
	defer c.Close(ctx)
	var x int64
	if err := c.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").Scan(&x); err != nil {
		t.Fatal(err)
	}
	return x
}

// adminConn connects to database postgres on s as its superuser, within
// ctx; the caller closes it.
func adminConn(t *testing.T, ctx context.Context, s *pgserver.Server) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, s.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// burn uses up n transaction ids on s, each in a short transaction of its own.
func burn(t *testing.T, s *pgserver.Server, n int64) {
	t.Helper()
	if n <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := adminConn(t, ctx, s)
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, fmt.Sprintf(
		"DO $$ BEGIN FOR i IN 1 .. %d LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$", n)); err != nil {
		t.Fatalf("burn %d xids on %s: %v", n, s.Name, err)
	}
}

// lead burns transaction ids on a until its counter is at least margin
// ahead of b's.
func lead(t *testing.T, a, b *pgserver.Server, margin int64) {
	t.Helper()
	burn(t, a, nextXid(t, b)+margin-nextXid(t, a))
}

// bin is the directory of the private installation's client programs.
func bin(t *testing.T, prog string) string {
	t.Helper()
	if os.Getenv("PGSHADOW_TEST_IMAGE") != "" {
		t.Skip("pg_dump/pg_restore of the local installation may not match the container's server version")
	}
	dir := os.Getenv("PGSHADOW_BINDIR")
	if dir == "" {
		out, err := exec.Command("pg_config", "--bindir").Output()
		if err != nil {
			t.Fatalf("set PGSHADOW_BINDIR (tests/pgroot) to find %s", prog)
		}
		dir = strings.TrimSpace(string(out))
	}
	return filepath.Join(dir, prog)
}

func run(t *testing.T, prog string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin(t, prog), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}

// moveTo dumps d with pg_dump and restores it with pg_restore into a new
// database on s, which it returns.
func moveTo(t *testing.T, d *pgtest.DB, s *pgserver.Server) *pgtest.DB {
	t.Helper()
	file := filepath.Join(t.TempDir(), "src.dump")
	run(t, "pg_dump", "-Fc", "-f", file, "-d", d.ConnString())
	n := pgtest.NewDB(t, s)
	run(t, "pg_restore", "--exit-on-error", "-d", n.ConnString(), file)
	return n
}

// adopt wraps database name on s, made outside pgtest.NewDB, and drops it
// at cleanup.
func adopt(t *testing.T, s *pgserver.Server, name string) *pgtest.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, s.ConnString(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c, err := pgx.Connect(ctx, s.ConnString("postgres")); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	return &pgtest.DB{Server: s, Name: name, Pool: pool}
}

// connect is a dedicated superuser connection to d.
func connect(t *testing.T, d *pgtest.DB) *pgx.Conn { return d.Conn(t) }

var mustExec = pgtest.Run
