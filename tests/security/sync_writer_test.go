package security

// A writer's writes are always replicated. Sync mode applies each statement
// with the writer's own rights, and the subscription rows it reads are
// visible only to roles that may SELECT the table: a writer with INSERT or
// DELETE but no SELECT saw no sync subscription, so its writes committed on
// the source and never reached the target. It is refused instead.

import (
	"fmt"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestSyncWriterWithoutSelectIsRefusedNotSkipped(t *testing.T) {
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	ivan, asIvan := newLoginRole(t, s.Src, "ivan")
	s.letUseTarget(t, ivan)
	s.Src.Exec(t, fmt.Sprintf("GRANT INSERT, DELETE ON orders TO %s", pgtest.Ident(ivan)))
	run(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders', mode => 'sync')")
	run(t, s.asAlice, "INSERT INTO orders VALUES (1, 'a')")
	for _, sql := range []string{"INSERT INTO orders VALUES (9, 'hidden')", "DELETE FROM orders"} {
		err := runErr(t, asIvan, sql)
		if err == nil {
			t.Errorf("%s: committed without sync replication; source has %d rows, target %d", sql,
				s.Src.QueryInt(t, "SELECT count(*) FROM orders"), s.Dst.QueryInt(t, "SELECT count(*) FROM orders"))
			continue
		}
		assertError(t, err, sql, "42501", "orders", "sync")
	}
	pgtest.AssertSameRows(t, s.Src, "orders", s.Dst, "orders")
}
