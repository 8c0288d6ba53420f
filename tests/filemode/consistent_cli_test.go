package filemode_test

import (
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// pgshadow export of a consistent push target ships its tables in one
// REPEATABLE READ transaction (a plain shadow_export under READ COMMITTED is
// refused) and purges the shipped shadow rows after its commit.
func TestCLIExportOfAConsistentTarget(t *testing.T) {
	bin := pgshadowBinary(t)
	e := newEnv(t)
	for _, d := range []string{"CREATE TABLE orders (id int PRIMARY KEY, note text)",
		"CREATE TABLE order_lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders (id) DEFERRABLE, qty int)"} {
		e.Src.Exec(t, d)
		e.Push.Exec(t, d)
	}
	e.Src.Exec(t, "SELECT shadow_alter_target($1, consistent => true)", pushTarget)
	e.Src.Exec(t, "SELECT shadow_track('orders'), shadow_track('order_lines')")
	e.Src.Exec(t, "SELECT shadow_subscribe($1, 'orders'), shadow_subscribe($1, 'order_lines')", pushTarget)
	e.Src.Exec(t, "INSERT INTO orders VALUES (1, 'a'), (2, 'b'); INSERT INTO order_lines VALUES (10, 1, 1), (20, 2, 2)")
	if err := e.Src.ExecErr("SELECT count(*) FROM shadow_export($1)", pushTarget); err == nil {
		t.Fatalf("shadow_export of a consistent target under READ COMMITTED succeeded")
	}
	cli(t, bin, nil, "export", "-d", e.Src.ConnString(), "-target", pushTarget).wantOK(t, "consistent export", "public.orders", "public.order_lines")
	e.Src.Exec(t, "DELETE FROM order_lines WHERE order_id = 1; DELETE FROM orders WHERE id = 1")
	cli(t, bin, nil, "export", "-d", e.Src.ConnString(), "-target", pushTarget).wantOK(t, "second consistent export")
	for _, tbl := range []string{"orders", "order_lines"} {
		pgtest.AssertSameRows(t, e.Src, tbl, e.Push, tbl)
	}
	// purged after the commit: nothing shipped is left in the shadow tables
	if n := e.Src.QueryInt(t, `SELECT (SELECT count(*) FROM pgshadow.public__orders) + (SELECT count(*) FROM pgshadow.public__order_lines)`); n != 0 {
		t.Errorf("%d shipped shadow rows left after pgshadow export of a consistent target", n)
	}
}
