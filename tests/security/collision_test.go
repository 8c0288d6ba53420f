package security

// Shadow tables are named <schema>__<table>, and each has objects named after
// it: partitions <shadow>_g0 and _g1, index <shadow>_xid, versions table
// <shadow>_ver. A table whose shadow name equals one of another table's
// derived names must not be tracked onto it: tracking grants the table's
// owner SELECT and INSERT on its "shadow", which would then be the other
// table's partition or versions table, holding that table's keys.

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// countErr runs a count query on c and returns its error.
func countErr(t *testing.T, c *pgx.Conn, sql string) (int64, error) {
	t.Helper()
	var n int64
	err := c.QueryRow(ctx(t), sql).Scan(&n)
	return n, err
}

func TestTrackingCannotTakeOverAnotherTablesPartition(t *testing.T) {
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	// a schema both may create in (public, as before PostgreSQL 15)
	s.Src.Exec(t, "GRANT CREATE ON SCHEMA public TO "+pgtest.Ident(s.olga))
	run(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders')")
	run(t, s.asAlice, "INSERT INTO orders VALUES (42, 'a')")
	for _, suffix := range []string{"_g0", "_g1", "_ver"} {
		if suffix == "_ver" {
			s.Src.Exec(t, "SET ROLE "+pgtest.Ident(s.alice)+"; SELECT pgshadow._versions('orders'); RESET ROLE")
		}
		tbl := "orders" + suffix
		run(t, s.asOlga, "CREATE TABLE "+tbl+" (id int PRIMARY KEY, v text)")
		err := runErr(t, s.asOlga, "SELECT shadow_track('"+tbl+"')")
		if err == nil {
			if n, rerr := countErr(t, s.asOlga, "SELECT count(*) FROM pgshadow.public__orders"+suffix+" WHERE id = 42"); rerr == nil {
				t.Fatalf("olga tracked %s and so reads alice's pgshadow.public__orders%s (%d of her keys)", tbl, suffix, n)
			}
		}
		assertError(t, err, "olga tracks "+tbl, "42P07", "public__orders"+suffix, "already exist")
		if err := runErr(t, s.asOlga, "SELECT count(*) FROM pgshadow.public__orders"+suffix); err == nil {
			t.Fatalf("olga reads alice's pgshadow.public__orders%s", suffix)
		}
	}
}

// The other order: a table tracked first must not squat a name another
// table's shadow will need and leave that table tracked without a partition
// (every write of it would fail). Tracking it is refused with a clear error.
func TestTrackingRefusesWhenAPartitionNameIsTaken(t *testing.T) {
	s := newScene(t)
	s.Src.Exec(t, "GRANT CREATE ON SCHEMA public TO "+pgtest.Ident(s.olga))
	run(t, s.asOlga, "CREATE TABLE orders_g0 (id int PRIMARY KEY, v text)")
	run(t, s.asOlga, "SELECT shadow_track('orders_g0')")
	err := runErr(t, s.asAlice, "SELECT shadow_track('orders')")
	assertError(t, err, "alice tracks orders", "42P07", "public__orders_g0", "already exist")
	// nothing half-made: alice's writes still work
	run(t, s.asAlice, "INSERT INTO orders VALUES (1, 'a')")
}
