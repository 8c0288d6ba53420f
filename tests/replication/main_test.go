// Package replication tests the guarantees of push mode (shadow_export): a
// source database with pgshadow ships to a target database on another server
// over postgres_fdw/dblink, and every test checks that both sides end equal
// after a scenario built to break one guarantee.
package replication

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// The target server runs PGSHADOW_TARGET_BINDIR's PostgreSQL when set
// (make test PG_TARGET=...).
func TestMain(m *testing.M) {
	pgtest.MainRoles(m, []string{"source"}, []string{"target"})
}

// targetName is the pgshadow target every scenario ships to.
const targetName = "t1"

// pair is a source database with pgshadow and a target database on another
// server, connected by foreign server "tgt" and target "t1".
type pair struct {
	Src, Dst *pgtest.DB
}

// newPair creates both databases on the package's two servers.
func newPair(t *testing.T) *pair {
	t.Helper()
	return newPairOn(t, pgtest.Server("target"))
}

// newPairOn creates the source on the package's source server and the target
// on dst, with the foreign server, a superuser user mapping and the target.
func newPairOn(t *testing.T, dst *pgserver.Server) *pair {
	t.Helper()
	p := &pair{
		Src: pgtest.NewDBWithExtension(t, pgtest.Server("source")),
		Dst: pgtest.NewDB(t, dst),
	}
	p.Src.AddPushTarget(t, targetName, "tgt", p.Dst)
	return p
}

// tblDDL creates the table most scenarios replicate.
const tblDDL = "CREATE TABLE tbl (id int PRIMARY KEY, v text)"

// subscribed is the common scenario start: table tbl created by ddl on both
// sides, filled on the source by seed (if not empty), subscribed to t1 with
// extra arguments (see Subscribe).
func subscribed(t *testing.T, ddl, seed string, extra ...string) *pair {
	t.Helper()
	return subscribedOn(t, pgtest.Server("target"), ddl, ddl, seed, extra...)
}

// subscribedAs is subscribed for a target table that differs from the
// source's: srcDDL creates tbl on the source, dstDDL on the target.
func subscribedAs(t *testing.T, srcDDL, dstDDL, seed string, extra ...string) *pair {
	t.Helper()
	return subscribedOn(t, pgtest.Server("target"), srcDDL, dstDDL, seed, extra...)
}

// subscribedOn is subscribedAs with the target database on dst.
func subscribedOn(t *testing.T, dst *pgserver.Server, srcDDL, dstDDL, seed string, extra ...string) *pair {
	t.Helper()
	p := preparedOn(t, dst, srcDDL, dstDDL, seed)
	p.Subscribe(t, "tbl", extra...)
	return p
}

// prepared is the start of the scenarios about subscribing itself: a pair
// with srcDDL run on the source and dstDDL on the target, and seed (if not
// empty) on the source; nothing is subscribed yet.
func prepared(t *testing.T, srcDDL, dstDDL, seed string) *pair {
	t.Helper()
	return preparedOn(t, pgtest.Server("target"), srcDDL, dstDDL, seed)
}

// preparedOn is prepared with the target database on dst.
func preparedOn(t *testing.T, dst *pgserver.Server, srcDDL, dstDDL, seed string) *pair {
	t.Helper()
	p := newPairOn(t, dst)
	p.Src.Exec(t, srcDDL)
	p.Dst.Exec(t, dstDDL)
	if seed != "" {
		p.Src.Exec(t, seed)
	}
	return p
}

// createServerSQL declares database d as foreign server "tgt".
func createServerSQL(d *pgtest.DB) string {
	return d.Server.ForeignServerSQL("tgt", d.Name)
}

// Both runs sql on the source and on the target (same DDL on both sides).
func (p *pair) Both(t *testing.T, sql string) {
	t.Helper()
	p.Src.Exec(t, sql)
	p.Dst.Exec(t, sql)
}

// Subscribe subscribes tbl (a SQL name) to t1; extra is appended to the
// argument list verbatim (e.g. "row_filter => 'v > 0'"). It returns the
// number of rows the initial copy shipped.
func (p *pair) Subscribe(t *testing.T, tbl string, extra ...string) int64 {
	t.Helper()
	// tracked in a transaction of its own first, as the README advises, so
	// the initial copy is made by the subscribe (see initial_copy_lock_test.go)
	p.Src.Exec(t, "SELECT shadow_track("+lit(tbl)+")")
	args := append([]string{lit(targetName), lit(tbl)}, extra...)
	return p.Src.QueryInt(t, "SELECT shadow_subscribe("+strings.Join(args, ", ")+")")
}

// exported is one row of shadow_export's result.
type exported struct {
	Tbl, Dest              string
	Batches                int
	Keys, Upserts, Deletes int64
	Truncated              bool
	Error                  *string // a table that failed while others shipped
}

// exportSQL calls shadow_export for t1, with a batch size when batchSize > 0.
func exportSQL(batchSize int) string {
	if batchSize > 0 {
		return fmt.Sprintf("SELECT tbl::text, dest, batches, keys, upserts, deletes, truncated, error FROM shadow_export(%s, batch_size => %d)",
			lit(targetName), batchSize)
	}
	return fmt.Sprintf("SELECT tbl::text, dest, batches, keys, upserts, deletes, truncated, error FROM shadow_export(%s)", lit(targetName))
}

// ExportErr runs shadow_export('t1') on the source and returns its rows by
// source table name (as regclass prints it).
func (p *pair) ExportErr(batchSize int) (map[string]exported, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rows, err := p.Src.Pool.Query(ctx, exportSQL(batchSize))
	if err != nil {
		return nil, err
	}
	res, err := pgx.CollectRows(rows, pgx.RowToStructByPos[exported])
	if err != nil {
		return nil, err
	}
	out := map[string]exported{}
	var failed []string
	for _, r := range res {
		out[r.Tbl] = r
		if r.Error != nil {
			failed = append(failed, r.Tbl+": "+*r.Error)
		}
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("shadow_export shipped some tables but not: %s", strings.Join(failed, "; "))
	}
	return out, nil
}

// Export is ExportErr failing the test on error.
func (p *pair) Export(t *testing.T) map[string]exported {
	t.Helper()
	return p.ExportBatch(t, 0)
}

// ExportBatch is Export with a batch size.
func (p *pair) ExportBatch(t *testing.T, batchSize int) map[string]exported {
	t.Helper()
	res, err := p.ExportErr(batchSize)
	if err != nil {
		t.Fatalf("shadow_export(%q) failed: %s", targetName, pgtest.Describe(err))
	}
	return res
}

// Ship runs sql on the source, exports, and fails unless tbl then holds
// the same rows on both sides: one change shipped and checked.
func (p *pair) Ship(t *testing.T, tbl, sql string, args ...any) {
	t.Helper()
	p.Src.Exec(t, sql, args...)
	p.Export(t)
	p.Same(t, tbl, tbl)
}

// Same fails unless srcTable on the source and dstTable on the target hold
// the same rows (over cols, when given).
func (p *pair) Same(t *testing.T, srcTable, dstTable string, cols ...string) {
	t.Helper()
	pgtest.AssertSameRows(t, p.Src, srcTable, p.Dst, dstTable, cols...)
}

// watermark is the subscription's snapshot and batch counter, which must
// move only after the target committed.
func (p *pair) watermark(t *testing.T, tbl string) string {
	t.Helper()
	return p.Src.QueryString(t, `SELECT snapshot::text || ' batch ' || batch_no FROM pgshadow.subscription
		WHERE target = $1 AND tbl = $2::regclass`, targetName, tbl)
}

// wantWatermark fails unless tbl's watermark is still before: what (an
// export that failed) must not have acknowledged anything.
func (p *pair) wantWatermark(t *testing.T, tbl, before, what string) {
	t.Helper()
	if got := p.watermark(t, tbl); got != before {
		t.Errorf("watermark of %s moved by %s: before %s, after %s", tbl, what, before, got)
	}
}

// openTx opens a session of its own on d, begins a transaction there and
// runs stmts in it; the transaction stays open for the test to end.
func openTx(t *testing.T, d *pgtest.DB, stmts ...string) *pgx.Conn {
	t.Helper()
	c := d.Conn(t)
	pgtest.Begin(t, c, stmts...)
	return c
}

// mustExec runs sql on a dedicated connection, failing the test on error.
var mustExec = pgtest.Run

// mustQueryString returns the one text value of sql on a dedicated connection.
func mustQueryString(t *testing.T, c *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var s string
	if err := c.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s\nSQL: %s", pgtest.Describe(err), sql)
	}
	return s
}

// Short names for the pgtest helpers the scenarios use often.
var (
	lit      = pgtest.Lit
	ident    = pgtest.Ident
	wantRows = pgtest.WantRows
)
