package capture_test

// What each kind of write leaves in the shadow table: which keys, which op,
// which transaction id; and that aborted work leaves nothing.

import (
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// keyShape is a tracked table with some rows, and the writes to try on it.
type keyShape struct {
	name   string
	create string   // creates and fills table t
	keys   []string // t's primary key columns
	writes []write
}

type write struct {
	name string
	sql  string
	want []string // shadow rows as (key columns, shadow_op)
}

var keyShapes = []keyShape{
	{
		name:   "single_int_key",
		create: `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')`,
		keys:   []string{"id"},
		writes: []write{
			{"insert", `INSERT INTO t VALUES (4, 'd'), (5, 'e')`, []string{"(4,I)", "(5,I)"}},
			{"update", `UPDATE t SET v = v || '!' WHERE id IN (1, 2)`, []string{"(1,U)", "(2,U)"}},
			{"delete", `DELETE FROM t WHERE id = 3`, []string{"(3,D)"}},
			// the old key is gone: the target must delete it
			{"key_update", `UPDATE t SET id = id + 10 WHERE id IN (1, 2)`,
				[]string{"(1,D)", "(2,D)", "(11,U)", "(12,U)"}},
			{"truncate", `TRUNCATE t`, []string{"(,T)"}},
		},
	},
	{
		name: "composite_text_int_date_key",
		create: `CREATE TABLE t (a text, b int, d date, v text, PRIMARY KEY (a, b, d));
			INSERT INTO t VALUES ('x', 1, '2024-01-01', 'a'), ('x', 2, '2024-01-01', 'b'), ('y y', 1, '2024-02-29', 'c')`,
		keys: []string{"a", "b", "d"},
		writes: []write{
			{"insert", `INSERT INTO t VALUES ('z', 7, '2023-12-31', 'n')`, []string{"(z,7,2023-12-31,I)"}},
			{"update", `UPDATE t SET v = 'w' WHERE a = 'x'`, []string{"(x,1,2024-01-01,U)", "(x,2,2024-01-01,U)"}},
			{"delete", `DELETE FROM t WHERE d = '2024-02-29'`, []string{`("y y",1,2024-02-29,D)`}},
			{"key_update", `UPDATE t SET d = d + 1 WHERE a = 'x' AND b = 1`,
				[]string{"(x,1,2024-01-01,D)", "(x,1,2024-01-02,U)"}},
			{"key_update_of_one_column", `UPDATE t SET b = b + 10`,
				[]string{"(x,1,2024-01-01,D)", "(x,2,2024-01-01,D)", `("y y",1,2024-02-29,D)`,
					"(x,11,2024-01-01,U)", "(x,12,2024-01-01,U)", `("y y",11,2024-02-29,U)`}},
			{"truncate", `TRUNCATE t`, []string{"(,,,T)"}},
		},
	},
}

func TestCaptureRecordsKeyOpAndWritingXid(t *testing.T) {
	for _, shape := range keyShapes {
		t.Run(shape.name, func(t *testing.T) {
			db := newDB(t)
			for _, w := range shape.writes {
				t.Run(w.name, func(t *testing.T) {
					// each write gets its own table t, in a schema of its own
					c := session(t, db)
					run(t, c, "CREATE SCHEMA "+w.name)
					run(t, c, "SET search_path = "+w.name+", public")
					run(t, c, shape.create)
					run(t, c, "SELECT shadow_track('t')")
					xid := commitXid(t, c, w.sql)
					assertShadowRows(t, db, w.name+".t", shape.keys, w.want, xid)
				})
			}
		})
	}
}

func TestShadowTableHasTheKeyColumnsWithTheirTypes(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (a text COLLATE "C", b int, d date, v text, PRIMARY KEY (a, b, d))`)
	db.Exec(t, "SELECT shadow_track('t')")
	got := db.QueryStrings(t, `
		SELECT format('%s %s%s', attname, format_type(atttypid, atttypmod),
		              CASE WHEN attcollation <> 0 THEN ' collate ' || attcollation::regcollation ELSE '' END)
		  FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
		 ORDER BY attnum`, shadowOf(t, db, "t"))
	want := []string{`a text collate "C"`, "b integer", "d date", "shadow_op \"char\"", "shadow_xid xid8",
		"shadow_at timestamp with time zone", "shadow_gen smallint"}
	if diff := pgtest.DiffRows(want, got); diff != "" {
		t.Fatalf("shadow table columns: want (-), got (+):\n%s", diff)
	}
}

func TestEachTransactionsRowsCarryItsOwnXid(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); SELECT shadow_track('t')")
	c := session(t, db)
	x1 := commitXid(t, c, "INSERT INTO t VALUES (1, 'a')")
	x2 := commitXid(t, c, "INSERT INTO t VALUES (2, 'b')", "UPDATE t SET v = 'c' WHERE id = 1")
	got := db.TableRows(t, "pgshadow.public__t", "id", "shadow_op", "shadow_xid")
	want := []string{"(1,I," + x1 + ")", "(2,I," + x2 + ")", "(1,U," + x2 + ")"}
	if diff := pgtest.DiffRows(want, got); diff != "" {
		t.Fatalf("shadow rows (id, op, xid): want (-), got (+):\n%s", diff)
	}
}

func TestRolledBackWritesLeaveNoShadowRows(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');
		SELECT shadow_track('t')`)
	c := session(t, db)
	for _, s := range []string{"BEGIN", "INSERT INTO t VALUES (3, 'c')", "UPDATE t SET v = 'x'",
		"UPDATE t SET id = id + 10 WHERE id = 1", "DELETE FROM t WHERE id = 2", "TRUNCATE t", "ROLLBACK"} {
		run(t, c, s)
	}
	assertShadowRows(t, db, "t", []string{"id"}, nil, "")
}

func TestSubtransactionWritesCarryTheTopLevelXid(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');
		SELECT shadow_track('t')`)
	c := session(t, db)
	// the first write happens inside a savepoint, so the subtransaction is
	// what first needs an xid; the top-level one is read only at the end
	for _, s := range []string{"BEGIN",
		"SAVEPOINT a", "INSERT INTO t VALUES (3, 'c')",
		"SAVEPOINT b", "UPDATE t SET v = 'x' WHERE id = 1", "RELEASE b",
		"RELEASE a",
		"SAVEPOINT c", "DELETE FROM t WHERE id = 2", "RELEASE c"} {
		run(t, c, s)
	}
	sub := text(t, c, "SELECT count(DISTINCT shadow_xid)::text FROM pgshadow.public__t")
	top := text(t, c, "SELECT pg_current_xact_id()::text")
	run(t, c, "COMMIT")
	if sub != "1" {
		t.Errorf("shadow rows written in three subtransactions carry %s distinct xids, want 1", sub)
	}
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(1,U)", "(2,D)", "(3,I)"}, top)
}

func TestRolledBackSavepointLeavesNoShadowRows(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
		SELECT shadow_track('t')`)
	c := session(t, db)
	xid := commitXid(t, c, "INSERT INTO t VALUES (2, 'b')", "SAVEPOINT s",
		"INSERT INTO t VALUES (3, 'c')", "UPDATE t SET v = 'x' WHERE id = 1", "ROLLBACK TO SAVEPOINT s")
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(2,I)"}, xid)
}
