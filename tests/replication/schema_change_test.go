package replication

// Schema changes on a live subscription: each has one documented outcome
// (README, "Schema changes"), and none loses a change. A subscription made
// without a column list ships all columns, also those added later, once the
// target has them; an explicit list ships exactly its columns. Every test
// has a second table, "other", that must keep shipping while "tbl" stops.

import (
	"strings"
	"testing"
)

// schemaPair is tbl (id, v) and other (id, v), ten rows each, on both sides,
// subscribed to t1 with extra as shadow_subscribe's extra arguments for tbl.
func schemaPair(t *testing.T, extra ...string) *pair {
	t.Helper()
	return schemaPairOf(t, "v int", "g", extra...)
}

// schemaPairOf is schemaPair with tbl's columns after id and the values of
// its rows (over g, 1 to 10) given.
func schemaPairOf(t *testing.T, cols, values string, extra ...string) *pair {
	t.Helper()
	p := newPair(t)
	p.Both(t, "CREATE TABLE tbl (id int PRIMARY KEY, "+cols+"); CREATE TABLE other (id int PRIMARY KEY, v int)")
	p.Src.Exec(t, "INSERT INTO tbl SELECT g, "+values+" FROM generate_series(1, 10) g;"+
		" INSERT INTO other SELECT g, g FROM generate_series(1, 10) g")
	p.Subscribe(t, "tbl", extra...)
	p.Subscribe(t, "other")
	return p
}

// exportKeys exports and fails unless tbl shipped n keys, after which its
// id and v are the same on both sides.
func (p *pair) exportKeys(t *testing.T, n int64) {
	t.Helper()
	if r := p.Export(t)["tbl"]; r.Keys != n {
		t.Errorf("tbl: want %d keys shipped, got %+v", n, r)
	}
	p.Same(t, "tbl", "tbl", "id", "v")
}

// wantColumns fails unless tbl's subscription ships the columns want (as
// text, e.g. "{id,v}").
func (p *pair) wantColumns(t *testing.T, want string) {
	t.Helper()
	if got := p.Src.QueryString(t, "SELECT columns::text FROM pgshadow.subscription WHERE tbl = 'tbl'::regclass"); got != want {
		t.Errorf("tbl ships columns %s, want %s", got, want)
	}
}

// exportFailsFor exports, and fails the test unless tbl's row carries an
// error holding every one of wants while other shipped and tbl's watermark
// stayed where it was.
func (p *pair) exportFailsFor(t *testing.T, wants ...string) {
	t.Helper()
	mark := p.watermark(t, "tbl")
	p.Src.Exec(t, "UPDATE other SET v = v + 1 WHERE id = 1")
	res, _ := p.ExportErr(0)
	e := res["tbl"].Error
	if e == nil {
		t.Fatalf("tbl: export succeeded (%+v), want an error holding %q", res["tbl"], wants)
	}
	for _, w := range wants {
		if !strings.Contains(*e, w) {
			t.Errorf("tbl: error %q does not hold %q", *e, w)
		}
	}
	if res["other"].Error != nil || res["other"].Keys != 1 {
		t.Errorf("other: want its one key shipped despite tbl's failure, got %+v", res["other"])
	}
	p.Same(t, "other", "other")
	if got := p.watermark(t, "tbl"); got != mark {
		t.Errorf("tbl's watermark moved from %s to %s by a failed export", mark, got)
	}
	if got := p.Src.QueryString(t, `SELECT coalesce(last_error, '') FROM shadow_status WHERE "table" = 'tbl'::regclass`); got != *e {
		t.Errorf("shadow_status.last_error of tbl is %q, want the export's error", got)
	}
}

// A column added on the source of an all-columns subscription stops the
// table, naming the column and the fix, until the target has it; then every
// change made meanwhile ships with the column's values. Rows not changed
// since keep the target's default, until shadow_resync copies them.
func TestAddedColumnShipsOnceTheTargetHasIt(t *testing.T) {
	p := schemaPair(t)
	p.Src.ExecEach(t,
		"ALTER TABLE tbl ADD COLUMN w text DEFAULT 'src'",
		"UPDATE tbl SET w = 'x' || id WHERE id <= 3",
		"INSERT INTO tbl VALUES (11, 11, 'new')",
		"UPDATE tbl SET v = 40 WHERE id = 4") // w keeps the source default
	p.exportFailsFor(t, "public.tbl", `target "t1"`, "add them there", "ALTER TABLE public.tbl ADD COLUMN w text")

	// writers go on while the table waits
	p.Src.ExecEach(t,
		"UPDATE tbl SET w = 'y' WHERE id = 2",
		"DELETE FROM tbl WHERE id = 5",
		"INSERT INTO tbl (id, v) VALUES (12, 12)")
	p.exportFailsFor(t, "ALTER TABLE public.tbl ADD COLUMN w text")

	// a target default other than the source's shows which rows were not shipped
	p.Dst.Exec(t, "ALTER TABLE tbl ADD COLUMN w text DEFAULT 'dst'")
	res := p.Export(t)
	if r := res["tbl"]; r.Keys != 7 || r.Deletes != 1 {
		t.Errorf("tbl: want the 7 keys changed meanwhile shipped (1 delete), got %+v", r)
	}
	changed := "(SELECT * FROM tbl WHERE id IN (1, 2, 3, 4, 5, 11, 12))"
	p.Same(t, changed, changed)
	p.Same(t, "tbl", "tbl", "id", "v")
	unchanged := "(SELECT * FROM tbl WHERE id NOT IN (1, 2, 3, 4, 5, 11, 12))"
	wantRows(t, p.Dst, unchanged, "(6,6,dst)", "(7,7,dst)", "(8,8,dst)", "(9,9,dst)", "(10,10,dst)")
	p.wantColumns(t, "{id,v,w}")

	// later changes ship with the column as any other
	p.Src.Exec(t, "UPDATE tbl SET w = 'z' WHERE id IN (6, 7)")
	p.Export(t)
	p.Same(t, changed, changed)
	wantRows(t, p.Dst, unchanged, "(6,6,z)", "(7,7,z)", "(8,8,dst)", "(9,9,dst)", "(10,10,dst)")

	// the documented back-fill
	p.Src.Exec(t, "SELECT shadow_resync('t1', 'tbl')")
	p.Same(t, "tbl", "tbl")

	// subscribing again as before is still the same subscription
	if n := p.Src.QueryInt(t, "SELECT shadow_subscribe('t1', 'tbl')"); n != 0 {
		t.Errorf("subscribing tbl again without a column list copied %d rows, want 0 (the same subscription)", n)
	}
	if err := p.Src.ExecErr("SELECT shadow_subscribe('t1', 'tbl', columns => ARRAY['id', 'v', 'w'])"); err == nil ||
		!strings.Contains(err.Error(), "other settings") {
		t.Errorf("subscribing tbl again with a column list: want it refused as other settings, got %v", err)
	}
}

// Columns added by one ALTER TABLE and a target that has only some of them:
// the error names those missing, and nothing ships until all are there.
func TestAddedColumnsNamedUntilAllAreOnTheTarget(t *testing.T) {
	p := schemaPair(t)
	p.Src.Exec(t, "ALTER TABLE tbl ADD COLUMN a numeric(10,2), ADD COLUMN b timestamptz")
	p.Dst.Exec(t, "ALTER TABLE tbl ADD COLUMN a numeric(10,2)")
	p.Src.Exec(t, "UPDATE tbl SET a = id / 3.0, b = '2024-01-01 00:00+00' WHERE id <= 5")
	p.exportFailsFor(t, "ADD COLUMN b timestamp with time zone")
	if got := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl WHERE a IS NOT NULL"); got != 0 {
		t.Errorf("%d rows of tbl shipped before the target had every new column", got)
	}
	p.Dst.Exec(t, "ALTER TABLE tbl ADD COLUMN b timestamptz")
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}

// An explicit column list ships exactly its columns: a column added on the
// source later is not shipped, and the table does not stop for it.
func TestExplicitColumnListIgnoresAddedColumn(t *testing.T) {
	p := schemaPair(t, "columns => ARRAY['id', 'v']")
	p.Src.Exec(t, "ALTER TABLE tbl ADD COLUMN w text")
	p.Src.Exec(t, "UPDATE tbl SET w = 'x', v = v * 10 WHERE id <= 3; INSERT INTO tbl VALUES (11, 11, 'new')")
	p.exportKeys(t, 4)
	p.wantColumns(t, "{id,v}")
}

// A column dropped on the source of an all-columns subscription is no longer
// shipped: the target keeps it and its values (a changed row is updated
// there), and rows inserted from then on get its default.
func TestDroppedColumnNoLongerShips(t *testing.T) {
	p := schemaPairOf(t, "v int, w text DEFAULT 'def'", "g, 'w' || g")
	p.Src.Exec(t, "UPDATE tbl SET v = 0 WHERE id = 1")
	p.Src.Exec(t, "ALTER TABLE tbl DROP COLUMN w")
	p.Src.Exec(t, "UPDATE tbl SET v = 20 WHERE id = 2; INSERT INTO tbl VALUES (11, 11)")
	p.exportKeys(t, 3)
	wantRows(t, p.Dst, "(SELECT id, w FROM tbl WHERE id IN (1, 2, 3, 11))", "(1,w1)", "(2,w2)", "(3,w3)", "(11,def)")
	p.wantColumns(t, "{id,v}")
}

// A column an explicit list names, dropped on the source, stops the table
// with an error naming the column and the fix.
func TestDroppedListedColumnIsNamed(t *testing.T) {
	p := schemaPairOf(t, "v int, w text", "g, 'w' || g", "columns => ARRAY['id', 'w']")
	p.Src.Exec(t, "ALTER TABLE tbl DROP COLUMN w")
	p.Src.Exec(t, "UPDATE tbl SET v = 0 WHERE id = 1")
	p.exportFailsFor(t, "column w of public.tbl is gone", "shadow_unsubscribe()", "subscribe public.tbl again without it")
}

// A column dropped on the target: the apply fails for that table, naming
// the table, the destination and the column; its changes wait, and ship
// once the column is back.
func TestColumnDroppedOnTargetIsNamed(t *testing.T) {
	p := schemaPairOf(t, "v int, w text", "g, 'w' || g")
	p.Dst.Exec(t, "ALTER TABLE tbl DROP COLUMN w")
	p.Src.Exec(t, "UPDATE tbl SET w = 'changed' WHERE id <= 2")
	p.exportFailsFor(t, "applying public.tbl to public.tbl", `target "t1"`, `column "w"`)
	p.Src.Exec(t, "UPDATE tbl SET w = 'again' WHERE id = 3")
	p.Dst.Exec(t, "ALTER TABLE tbl ADD COLUMN w text")
	p.Export(t)
	changed := "(SELECT * FROM tbl WHERE id <= 3)"
	p.Same(t, changed, changed)
}

// A type widened on the target first ships as before; widened on the source
// only, a value the target's type cannot hold stops the table, naming the
// cause, until the target is widened too.
func TestTypeWidenedOnEitherSide(t *testing.T) {
	p := schemaPair(t)
	p.Dst.Exec(t, "ALTER TABLE other ALTER COLUMN v TYPE bigint")
	p.Ship(t, "other", "UPDATE other SET v = -v")
	p.Src.Exec(t, "ALTER TABLE other ALTER COLUMN v TYPE bigint")
	p.Ship(t, "other", "UPDATE other SET v = 5000000000 + id WHERE id <= 4")

	p.Src.Exec(t, "ALTER TABLE tbl ALTER COLUMN v TYPE bigint")
	p.Src.Exec(t, "UPDATE tbl SET v = v + 1 WHERE id = 1") // still fits the target's int
	p.Export(t)
	p.Same(t, "tbl", "tbl")
	p.Src.Exec(t, "UPDATE tbl SET v = 5000000000 WHERE id = 2")
	p.exportFailsFor(t, "applying public.tbl to public.tbl", "out of range")
	p.Src.Exec(t, "UPDATE tbl SET v = 6000000000 WHERE id = 3")
	p.Dst.Exec(t, "ALTER TABLE tbl ALTER COLUMN v TYPE bigint")
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}

// A table renamed on the source keeps its subscription (the catalog holds
// its regclass, capture its oid) and ships to the same destination.
func TestTableRenamedOnSourceKeepsShipping(t *testing.T) {
	p := schemaPair(t)
	p.Src.Exec(t, "UPDATE tbl SET v = 0 WHERE id = 1")
	p.Src.Exec(t, "ALTER TABLE tbl RENAME TO tbl_renamed")
	p.Src.Exec(t, "UPDATE tbl_renamed SET v = 20 WHERE id = 2; DELETE FROM tbl_renamed WHERE id = 3; INSERT INTO tbl_renamed VALUES (11, 11)")
	res := p.Export(t)
	if r := res["tbl_renamed"]; r.Keys != 4 || r.Dest != "public.tbl" {
		t.Errorf("tbl_renamed: want 4 keys shipped to public.tbl, got %+v", r)
	}
	p.Same(t, "tbl_renamed", "tbl")
	p.Src.Exec(t, "ALTER TABLE tbl_renamed ADD COLUMN w text; UPDATE tbl_renamed SET w = 'x' WHERE id = 4")
	p.Dst.Exec(t, "ALTER TABLE tbl ADD COLUMN w text")
	p.Export(t)
	changed := "(SELECT * FROM %s WHERE id IN (1, 2, 3, 4, 11))"
	p.Same(t, strings.Replace(changed, "%s", "tbl_renamed", 1), strings.Replace(changed, "%s", "tbl", 1))
}

// A destination renamed on the target: a per-table error naming it; the
// changes wait and ship once it is back.
func TestTableRenamedOnTargetIsNamed(t *testing.T) {
	p := schemaPair(t)
	p.Dst.Exec(t, "ALTER TABLE tbl RENAME TO tbl_old")
	p.Src.Exec(t, "UPDATE tbl SET v = 0 WHERE id <= 2")
	p.exportFailsFor(t, "applying public.tbl to public.tbl", `target "t1"`, `"public.tbl" does not exist`)
	// a new column asks the target first: the same destination named
	p.Src.Exec(t, "ALTER TABLE tbl ADD COLUMN w text")
	p.exportFailsFor(t, `public.tbl ships to public.tbl, which does not exist on target "t1"`)
	p.Dst.Exec(t, "ALTER TABLE tbl_old RENAME TO tbl; ALTER TABLE tbl ADD COLUMN w text")
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}
