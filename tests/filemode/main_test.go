// Package filemode_test tests file mode end to end on real servers: a source
// database with pgshadow ships the same tables to a push target (database on
// server "target", over postgres_fdw) and to a file target whose batches are
// exported to a directory and imported into a database on server "third".
// Every scenario ends with all three holding the same rows, or checks that a
// broken batch is refused without touching the target.
package filemode_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestMain(m *testing.M) {
	// the push and the file target run PGSHADOW_TARGET_BINDIR's PostgreSQL
	// when set (make test PG_TARGET=...)
	pgtest.MainRoles(m, []string{"source"}, []string{"target", "third"})
}

// Target names on the source.
const (
	pushTarget = pgtest.PushTarget
	fileTarget = pgtest.FileTarget
)

// env is a source with a push target and a file target, and the file
// target's export directory: Src on server "source", Push on "target",
// Files (fed by filemode.Import) on "third".
type env struct {
	*pgtest.PushAndFiles
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{pgtest.NewPushAndFiles(t, pgtest.Server("source"), pgtest.Server("target"), pgtest.Server("third"))}
}

// newEnvWithT is newEnv with table t (id int PRIMARY KEY, v text) on the
// source and the file target, rows rows ('v' || id) on the source, and t
// subscribed to the file target; nothing is exported yet.
func newEnvWithT(t *testing.T, rows int) *env {
	t.Helper()
	e := newEnv(t)
	e.SrcAndFiles(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	e.Src.Exec(t, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, $1) g", rows)
	e.SubscribeFiles(t, "t")
	return e
}

// fillLarge fills the source's table tbl (id int, v text) with rows rows of
// about 50 bytes, and analyzes it (a copy's progress total is its estimate).
func (e *env) fillLarge(t *testing.T, tbl string, rows int) {
	t.Helper()
	e.Src.Exec(t, fmt.Sprintf("INSERT INTO %s SELECT g, repeat('v', 40) || g FROM generate_series(1, $1) g", pgx.Identifier{tbl}.Sanitize()), rows)
	e.Src.Exec(t, "ANALYZE "+pgx.Identifier{tbl}.Sanitize())
}

// All runs sql on the source and both targets (same DDL everywhere).
func (e *env) All(t *testing.T, sql string) {
	t.Helper()
	e.Src.Exec(t, sql)
	e.Push.Exec(t, sql)
	e.Files.Exec(t, sql)
}

// SrcAndFiles runs sql on the source and the file target only.
func (e *env) SrcAndFiles(t *testing.T, sql string) {
	t.Helper()
	e.Src.Exec(t, sql)
	e.Files.Exec(t, sql)
}

// Subscribe subscribes tbl to both targets; extra is appended to the
// argument list verbatim.
func (e *env) Subscribe(t *testing.T, tbl string, extra ...string) {
	t.Helper()
	e.subscribe(t, pushTarget, tbl, extra...)
	e.subscribe(t, fileTarget, tbl, extra...)
}

// SubscribeFiles subscribes tbl to the file target only.
func (e *env) SubscribeFiles(t *testing.T, tbl string, extra ...string) {
	t.Helper()
	e.subscribe(t, fileTarget, tbl, extra...)
}

func (e *env) subscribe(t *testing.T, target, tbl string, extra ...string) {
	t.Helper()
	args := append([]string{pgtest.Lit(target), pgtest.Lit(tbl)}, extra...)
	e.Src.Exec(t, "SELECT shadow_subscribe("+strings.Join(args, ", ")+")")
}

// PushExport ships pending changes to the push target.
func (e *env) PushExport(t *testing.T) {
	t.Helper()
	e.Src.Exec(t, "SELECT count(*) FROM shadow_export($1)", pushTarget)
}

// connect is a dedicated superuser connection to d.
func connect(t *testing.T, d *pgtest.DB) *pgx.Conn { return d.Conn(t) }

// ExportErr exports the file target with opts' hook, into e.Dir.
func (e *env) ExportErr(t *testing.T, o filemode.ExportOptions) (*filemode.ExportResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if o.Target == "" {
		o.Target = fileTarget
	}
	if o.Dir == "" {
		o.Dir = e.Dir
	}
	return filemode.Export(ctx, connect(t, e.Src), o)
}

// Export exports the file target and returns the batch directory ("" when
// nothing was pending).
func (e *env) Export(t *testing.T) string {
	t.Helper()
	res, err := e.ExportErr(t, filemode.ExportOptions{})
	if err != nil {
		t.Fatalf("export: %s", pgtest.Describe(err))
	}
	return res.BatchDir
}

// ImportErr applies a batch directory to db (e.Files when nil).
func (e *env) ImportErr(t *testing.T, dir string, db ...*pgtest.DB) (*filemode.ImportResult, error) {
	t.Helper()
	d := e.Files
	if len(db) > 0 {
		d = db[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return filemode.Import(ctx, connect(t, d), filemode.ImportOptions{Dir: dir})
}

// Import applies a batch directory to e.Files, failing the test on error.
func (e *env) Import(t *testing.T, dir string) *filemode.ImportResult {
	t.Helper()
	if dir == "" {
		t.Fatalf("import: the export wrote no batch directory")
	}
	res, err := e.ImportErr(t, dir)
	if err != nil {
		t.Fatalf("import %s: %s", filepath.Base(dir), pgtest.Describe(err))
	}
	return res
}

// Sync ships everything pending both ways: push export, file export and
// import. It returns the batch directory written.
func (e *env) Sync(t *testing.T) string {
	t.Helper()
	e.PushExport(t)
	dir := e.Export(t)
	if dir != "" {
		e.Import(t, dir)
	}
	return dir
}

// Same fails unless the source, the push target and the file target hold
// the same rows in table (over cols, when given).
func (e *env) Same(t *testing.T, table string, cols ...string) {
	t.Helper()
	pgtest.AssertSameRows(t, e.Src, table, e.Push, table, cols...)
	pgtest.AssertSameRows(t, e.Src, table, e.Files, table, cols...)
}

// watermark is the file subscription's snapshot and batch counter.
func (e *env) watermark(t *testing.T, tbl string) string {
	t.Helper()
	return e.Src.QueryString(t, `SELECT snapshot::text || ' batch ' || batch_no FROM pgshadow.subscription
		WHERE target = $1 AND tbl = $2::regclass`, fileTarget, tbl)
}

// rowVersions identifies the physical row versions of a table: any write
// (even of equal values) changes them.
func rowVersions(t *testing.T, d *pgtest.DB, table string) []string {
	t.Helper()
	return d.QueryStrings(t, fmt.Sprintf("SELECT ctid::text || '/' || xmin::text FROM %s ORDER BY ctid", table))
}

// corrupt flips one byte of a file, keeping its size.
func corrupt(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		t.Fatalf("%s is empty, nothing to corrupt", path)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
