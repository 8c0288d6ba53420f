// Row filters and column lists: the target holds exactly the source rows that
// pass the filter now, in the shipped columns, mapped by name.
package replication

import (
	"testing"
)

// Rows moving into a filter on a non-key column appear on the target, rows
// moving out of it are deleted there, and rows that never pass never ship.
func TestRowFilterTransitions(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Both(t, "CREATE TABLE tbl (id int PRIMARY KEY, status text NOT NULL, v int)")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (1, 'active', 1), (2, 'inactive', 2), (3, 'active', 3), (4, 'inactive', 4)")
	p.Subscribe(t, "tbl", "row_filter => $f$status = 'active'$f$")
	active := "(SELECT * FROM tbl WHERE status = 'active')"
	wantRows(t, p.Dst, "tbl", "(1,active,1)", "(3,active,3)")

	p.Src.Exec(t, "UPDATE tbl SET status = 'active' WHERE id = 2")   // moves in
	p.Src.Exec(t, "UPDATE tbl SET status = 'inactive' WHERE id = 1") // moves out
	p.Src.Exec(t, "UPDATE tbl SET v = 40 WHERE id = 4")              // stays out
	p.Src.Exec(t, "INSERT INTO tbl VALUES (5, 'inactive', 5), (6, 'active', 6)")
	p.Src.Exec(t, "UPDATE tbl SET id = 30 WHERE id = 3") // key change inside the filter
	res := p.Export(t)["tbl"]
	wantRows(t, p.Dst, "tbl", "(2,active,2)", "(30,active,3)", "(6,active,6)")
	if res.Upserts != 3 {
		t.Errorf("export upserts=%d, want 3 (keys 2, 30, 6)", res.Upserts)
	}
	p.Same(t, active, "tbl")

	// out and back in between two exports: the current row ships
	p.Src.Exec(t, "UPDATE tbl SET status = 'inactive', v = 20 WHERE id = 2")
	p.Src.Exec(t, "UPDATE tbl SET status = 'active' WHERE id = 2")
	// in and back out between two exports: it ships as a delete
	p.Src.Exec(t, "UPDATE tbl SET status = 'active' WHERE id = 5")
	p.Src.Exec(t, "UPDATE tbl SET status = 'gone' WHERE id = 5")
	p.Src.Exec(t, "DELETE FROM tbl WHERE id = 6")
	p.Export(t)
	wantRows(t, p.Dst, "tbl", "(2,active,20)", "(30,active,3)")
	p.Same(t, active, "tbl")
}

// The target maps shipped columns by name: it may order them differently,
// have extra columns (which get their defaults) and lack columns that are not
// shipped.
func TestTargetColumnsMapByName(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Src.Exec(t, "CREATE TABLE tbl (id int PRIMARY KEY, a text, secret text, b int)")
	p.Dst.Exec(t, `CREATE TABLE tbl (
		b int, extra text NOT NULL DEFAULT 'dflt', a text,
		id int PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY)`)
	p.Src.Exec(t, "INSERT INTO tbl VALUES (1, 'one', 's1', 10), (2, 'two', 's2', 20)")
	p.Subscribe(t, "tbl", "columns => ARRAY['id', 'a', 'b']")

	p.Src.Exec(t, "UPDATE tbl SET a = 'uno', secret = 'x' WHERE id = 1")
	p.Src.Exec(t, "UPDATE tbl SET secret = 'only the secret' WHERE id = 2")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (3, NULL, 's3', NULL)")
	p.Export(t)
	p.Same(t, "tbl", "tbl", "id", "a", "b")
	if got := p.Dst.QueryStrings(t, "SELECT DISTINCT extra FROM tbl"); len(got) != 1 || got[0] != "dflt" {
		t.Errorf("extra target column holds %v, want only its default 'dflt'", got)
	}
	if n := p.Dst.QueryInt(t, "SELECT count(DISTINCT n) FROM tbl"); n != 3 {
		t.Errorf("identity column on the target has %d distinct values for 3 rows, want 3", n)
	}
}

// A table created on the target with the source's own DDL, identity column
// (GENERATED ALWAYS) and stored generated column included, receives the
// source's key values and computes its generated column itself.
func TestIdentityAndGeneratedColumnsReplicate(t *testing.T) {
	t.Parallel()
	p := subscribed(t, `CREATE TABLE tbl (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		a int, b int,
		total int GENERATED ALWAYS AS (a + b) STORED)`,
		"INSERT INTO tbl (a, b) SELECT g, g FROM generate_series(1, 5) g")
	p.Same(t, "tbl", "tbl")
	p.Src.Exec(t, "INSERT INTO tbl (a, b) VALUES (100, 1)")
	p.Src.Exec(t, "UPDATE tbl SET b = 0 WHERE id = 2")
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}
