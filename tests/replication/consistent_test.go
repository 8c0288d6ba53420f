// Consistent export (shadow_alter_target(t, consistent => true)): all of a
// target's tables ship at one source snapshot in one remote transaction, so
// a reader of the target only ever sees states the source had: here, no
// order line without its order.
package replication

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// ordersDDL is the source schema: lines reference their order.
const ordersDDL = `
CREATE TABLE orders (id int PRIMARY KEY, note text);
CREATE TABLE order_lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders (id), qty int);`

// ordersTargetDDL is the target's: the same foreign key, DEFERRABLE, which a
// consistent export defers to its commit. Without fk, no foreign key at all
// (so that per-table export, which breaks it, can be watched by a reader).
func ordersTargetDDL(fk string) string {
	return `CREATE TABLE orders (id int PRIMARY KEY, note text);
CREATE TABLE order_lines (id int PRIMARY KEY, order_id int NOT NULL ` + fk + `, qty int);`
}

const deferrableFK = "REFERENCES orders (id) DEFERRABLE"

// orphansSQL counts lines whose order is missing.
const orphansSQL = `SELECT count(*) FROM order_lines l WHERE NOT EXISTS (SELECT FROM orders o WHERE o.id = l.order_id)`

// newOrdersPair: orders and order_lines on both sides, subscribed to t1 in
// that order (so a per-table export reads orders first), the target made
// consistent first when consistent.
func newOrdersPair(t *testing.T, targetFK string, consistent bool) *pair {
	t.Helper()
	p := newPair(t)
	p.Src.Exec(t, ordersDDL)
	p.Dst.Exec(t, ordersTargetDDL(targetFK))
	p.Src.Exec(t, "INSERT INTO orders SELECT g, 'seed' FROM generate_series(1, 50) g")
	p.Src.Exec(t, "INSERT INTO order_lines SELECT g, 1 + g % 50, g FROM generate_series(1, 100) g")
	if consistent {
		p.Src.Exec(t, "SELECT shadow_alter_target('t1', consistent => true)")
	}
	p.Subscribe(t, "orders")
	p.Subscribe(t, "order_lines")
	return p
}

// exportRRSame is exportRR that must succeed, after which both tables are
// the same on both sides.
func exportRRSame(t *testing.T, p *pair) {
	t.Helper()
	if _, err := exportRR(p); err != nil {
		t.Fatal(pgtest.Describe(err))
	}
	sameOrders(t, p)
}

// sameOrders fails unless orders and order_lines hold the same rows on both
// sides.
func sameOrders(t *testing.T, p *pair) {
	t.Helper()
	p.Same(t, "orders", "orders")
	p.Same(t, "order_lines", "order_lines")
}

// exportRR runs shadow_export('t1') in a REPEATABLE READ transaction, as a
// consistent target needs, then purges after the commit as the CLI does.
func exportRR(p *pair) (map[string]exported, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tx, err := p.Src.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, exportSQL(0))
	if err != nil {
		return nil, err
	}
	res, err := pgx.CollectRows(rows, pgx.RowToStructByPos[exported])
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	if _, err := p.Src.Pool.Exec(ctx, "SELECT pgshadow.file_purge('t1')"); err != nil {
		return nil, err
	}
	out := map[string]exported{}
	for _, r := range res {
		out[r.Tbl] = r
		if r.Error != nil {
			return out, fmt.Errorf("%s: %s", r.Tbl, *r.Error)
		}
	}
	return out, nil
}

// orderWriter inserts orders with their lines, and deletes orders with
// their lines, each in one transaction, until stop.
func orderWriter(ctx context.Context, dsn string, seed uint64, next *atomic.Int64, stop <-chan struct{}) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(seed, 7))
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		var sql string
		if rng.IntN(3) > 0 {
			o := next.Add(1)
			var b strings.Builder
			fmt.Fprintf(&b, "BEGIN; INSERT INTO orders VALUES (%d, 'new');", o)
			for i := 0; i < 1+rng.IntN(3); i++ {
				fmt.Fprintf(&b, " INSERT INTO order_lines VALUES (%d, %d, %d);", o*10+int64(i), o, i)
			}
			b.WriteString(" COMMIT;")
			sql = b.String()
		} else {
			// one statement, one snapshot: a separate DELETE of the order
			// could see it committed after the lines' DELETE did not
			o := 1 + rng.Int64N(next.Load())
			sql = fmt.Sprintf("WITH l AS (DELETE FROM order_lines WHERE order_id = %d) DELETE FROM orders WHERE id = %d", o, o)
		}
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
}

// runOrders runs writers and exports (consistent ones in REPEATABLE READ)
// for d, a reader on the target counting orphan lines the whole time and
// after every export commit. It returns the orphans seen and the exports that
// failed.
func runOrders(t *testing.T, p *pair, consistent bool, d time.Duration) (orphanChecks, orphanPolls, failed int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var next atomic.Int64
	next.Store(1000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := orderWriter(ctx, p.Src.ConnString(), uint64(i+1), &next, stop); err != nil {
				errs <- fmt.Errorf("writer: %w", err)
			}
		}(i)
	}
	var polls atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		rc := p.Dst.Conn(t)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int64
			if err := rc.QueryRow(ctx, orphansSQL).Scan(&n); err != nil {
				errs <- fmt.Errorf("reader: %w", err)
				return
			}
			if n > 0 {
				polls.Add(1)
			}
		}
	}()
	deadline := time.Now().Add(d)
	exports := 0
	for time.Now().Before(deadline) {
		var err error
		if consistent {
			_, err = exportRR(p)
		} else {
			_, err = p.ExportErr(0)
		}
		exports++
		if err != nil {
			failed++
			t.Logf("export failed: %s", pgtest.Describe(err))
		}
		if n := p.Dst.QueryInt(t, orphansSQL); n > 0 {
			orphanChecks++
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("consistent=%v: %d exports, %d orders written, orphans after %d export commits, seen by the reader %d times, %d exports failed",
		consistent, exports, next.Load()-1000, orphanChecks, polls.Load(), failed)
	return orphanChecks, int(polls.Load()), failed
}

// The guarantee: writers insert and delete orders with their lines while a
// consistent export runs in a loop; the target, whose foreign key is
// DEFERRABLE, never shows a line without its order (neither to a reader
// polling it nor after any export commit), no export fails, and the final
// export leaves both tables equal to the source.
func TestConsistentExportKeepsForeignKeys(t *testing.T) {
	t.Parallel()
	p := newOrdersPair(t, deferrableFK, true)
	checks, polls, failed := runOrders(t, p, true, 8*time.Second)
	if checks+polls+failed > 0 {
		t.Errorf("consistent export: orphan lines after %d export commits, seen %d times by the reader; %d exports failed", checks, polls, failed)
	}
	exportRRSame(t, p)
}

// Why it is needed: the same workload exported table by table (each at its
// own snapshot) leaves lines without their order on the target, here with no
// foreign key there to refuse it.
func TestPerTableExportBreaksForeignKeys(t *testing.T) {
	t.Parallel()
	p := newOrdersPair(t, "", false)
	checks, polls, _ := runOrders(t, p, false, 8*time.Second)
	if checks+polls == 0 {
		t.Errorf("per-table export never showed an orphan line: the scenario no longer shows why consistent export is needed")
	}
}

// One table the target refuses fails the whole consistent export: the
// other table's changes are not applied either, no watermark moves, the
// error names the table, and shadow_export_logged records it on both.
func TestConsistentExportFailureMovesNothing(t *testing.T) {
	t.Parallel()
	p := newOrdersPair(t, deferrableFK, true)
	if _, err := exportRR(p); err != nil {
		t.Fatal(pgtest.Describe(err))
	}
	p.Src.Exec(t, "INSERT INTO orders VALUES (100, 'x'); INSERT INTO order_lines VALUES (1000, 100, 1)")
	p.Dst.Exec(t, "ALTER TABLE order_lines ADD CHECK (qty < 0) NOT VALID")
	wo, wl := p.watermark(t, "orders"), p.watermark(t, "order_lines")
	_, err := exportRR(p)
	if err == nil || !strings.Contains(err.Error(), "failed at table public.order_lines, nothing shipped") {
		t.Fatalf("expected the whole export to fail naming order_lines, got %v", err)
	}
	if p.watermark(t, "orders") != wo || p.watermark(t, "order_lines") != wl {
		t.Errorf("a watermark moved although the consistent export failed")
	}
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM orders WHERE id = 100"); n != 0 {
		t.Errorf("order 100 reached the target although its line's table failed")
	}
	// under READ COMMITTED a consistent target is refused, with the fix
	if _, err := p.ExportErr(0); err == nil || !strings.Contains(err.Error(), "needs a REPEATABLE READ transaction") {
		t.Errorf("expected a consistent export under READ COMMITTED to be refused, got %v", err)
	}
	if err := p.Src.ExecErr("CALL shadow_export_logged('t1')"); err == nil {
		t.Fatalf("shadow_export_logged succeeded although order_lines is refused")
	}
	for _, tbl := range []string{"orders", "order_lines"} {
		msg := p.Src.QueryString(t, "SELECT coalesce(last_error, '') FROM pgshadow.subscription WHERE tbl = $1::regclass", tbl)
		if !strings.Contains(msg, "failed at table public.order_lines") {
			t.Errorf("%s: last_error %q does not record the failed consistent export", tbl, msg)
		}
	}
	// _export_consistent is callable: it ships only subscriptions to the
	// target it connects to, so no other target's watermark moves through it
	p.Src.Exec(t, "SELECT shadow_add_target('t2', 'tgt')")
	p.Src.Exec(t, "SELECT shadow_subscribe('t2', 'orders', dest => 'orders2', initial_copy => false)")
	other := p.Src.QueryString(t, "SELECT id::text FROM pgshadow.subscription WHERE target = 't2'")
	w2 := p.Src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription WHERE target = 't2'")
	err = p.Src.ExecErr("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM pgshadow._export_consistent('t1', ARRAY[" + other + "]::bigint[], 1000); COMMIT")
	if err == nil || !strings.Contains(err.Error(), `not a batch or async subscription to target "t1"`) {
		t.Errorf("expected _export_consistent to refuse another target's subscription, got %v", err)
	}
	if got := p.Src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription WHERE target = 't2'"); got != w2 {
		t.Errorf("the watermark of t2 moved through an export to t1")
	}
	p.Dst.Exec(t, "ALTER TABLE order_lines DROP CONSTRAINT order_lines_qty_check")
	p.Src.Exec(t, "CALL shadow_export_logged('t1')")
	sameOrders(t, p)
}

// A table other tables reference is copied by DELETE + INSERT: with a
// DEFERRABLE foreign key on the target, the initial copy (made by the first
// consistent export) and shadow_resync (marked, copied by the next one) work;
// a per-table resync defers constraints too; a NOT DEFERRABLE foreign key
// fails the copy naming the constraint and the fix.
func TestConsistentCopyAndResyncOfReferencedTable(t *testing.T) {
	t.Parallel()
	p := newOrdersPair(t, deferrableFK, true)
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.subscription WHERE needs_copy"); n != 2 {
		t.Fatalf("subscribing to a consistent target should leave both copies to the export, %d are marked", n)
	}
	exportRRSame(t, p)

	p.Dst.Exec(t, "UPDATE orders SET note = 'edited on the target'")
	p.Src.Exec(t, "DELETE FROM order_lines WHERE order_id = 7; DELETE FROM orders WHERE id = 7")
	if n := p.Src.QueryInt(t, "SELECT shadow_resync('t1', 'orders')"); n != 0 {
		t.Fatalf("resync of a consistent target should copy with the next export, copied %d now", n)
	}
	exportRRSame(t, p)

	// per-table: the copy defers the DEFERRABLE key itself
	p.Src.Exec(t, "SELECT shadow_alter_target('t1', consistent => false)")
	p.Dst.Exec(t, "UPDATE orders SET note = 'edited again'")
	p.Src.Exec(t, "SELECT shadow_resync('t1', 'orders')")
	p.Same(t, "orders", "orders")

	// NOT DEFERRABLE: the target's key index lets the copy upsert every
	// row and delete only those the source no longer has, so referenced
	// rows are never deleted and the copy succeeds
	p.Dst.Exec(t, "ALTER TABLE order_lines ALTER CONSTRAINT order_lines_order_id_fkey NOT DEFERRABLE")
	p.Dst.Exec(t, "UPDATE orders SET note = 'edited a third time'")
	if err := p.Src.ExecErr("SELECT shadow_resync('t1', 'orders')"); err != nil {
		t.Fatalf("resync of orders referenced by a NOT DEFERRABLE key: %s", pgtest.Describe(err))
	}
	p.Same(t, "orders", "orders")
	var err error

	// and a consistent export that deletes an order with its lines: the
	// order's delete is checked before the lines' (table by table), so it
	// fails naming the constraint and the fix, and nothing moves
	p.Src.Exec(t, "SELECT shadow_alter_target('t1', consistent => true)")
	p.Src.Exec(t, "DELETE FROM order_lines WHERE order_id = 8; DELETE FROM orders WHERE id = 8")
	wo := p.watermark(t, "orders")
	_, err = exportRR(p)
	if err == nil || !strings.Contains(pgtest.Describe(err), "order_lines_order_id_fkey") || !strings.Contains(pgtest.Describe(err), "declare it DEFERRABLE") {
		t.Fatalf("expected the consistent export to fail naming the constraint and DEFERRABLE, got %v", err)
	}
	if p.watermark(t, "orders") != wo {
		t.Errorf("the failed consistent export moved the watermark of orders")
	}
}

// shadow_run ships a consistent target as a whole in a REPEATABLE READ
// transaction of its own, and purges after it.
func TestConsistentShadowRun(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Src.Exec(t, ordersDDL)
	p.Dst.Exec(t, ordersTargetDDL(deferrableFK))
	p.Src.Exec(t, "SELECT shadow_alter_target('t1', consistent => true)")
	p.Subscribe(t, "orders", "mode => 'async'")
	p.Subscribe(t, "order_lines", "mode => 'async'")
	p.Src.Exec(t, "INSERT INTO orders VALUES (1, 'a'), (2, 'b'); INSERT INTO order_lines VALUES (10, 1, 1), (20, 2, 2)")
	p.Src.Exec(t, "CALL shadow_run()")
	sameOrders(t, p)
	p.Src.Exec(t, "DELETE FROM order_lines WHERE order_id = 1; DELETE FROM orders WHERE id = 1")
	p.Src.Exec(t, "CALL shadow_run()")
	sameOrders(t, p)
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM shadow_errors"); n != 0 {
		t.Errorf("%d errors recorded by shadow_run", n)
	}
}
