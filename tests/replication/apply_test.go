// How a batch is applied on the target: a changed row is an UPDATE where the
// destination's key index makes that exact (so a non-deferrable foreign key
// to it holds and the target's triggers see an update), delete + insert
// elsewhere; and row values stay out of the statements the target logs.
package replication

import (
	"os"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// parentChildSQL makes the target's tbl a parent that child rows reference
// through a foreign key that is checked at once (not deferrable).
const parentChildSQL = `
CREATE TABLE public.child (id int PRIMARY KEY, parent int NOT NULL REFERENCES public.tbl (id));
INSERT INTO public.child VALUES (1, 1), (2, 2)`

// An update of a row that a non-deferrable foreign key on the target
// references ships (delete + insert would fail at the delete), and so do a
// delete of an unreferenced row and a row leaving the row filter.
func TestUpdateOfReferencedParentShips(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)",
		"INSERT INTO tbl SELECT g, 'v' || g, g FROM generate_series(1, 5) g", "row_filter => 'n > 0'")
	p.Dst.Exec(t, parentChildSQL)

	p.Src.Exec(t, "UPDATE tbl SET v = 'changed' WHERE id IN (1, 2)")
	p.Src.Exec(t, "DELETE FROM tbl WHERE id = 3")
	p.Src.Exec(t, "UPDATE tbl SET n = -4 WHERE id = 4") // leaves the filter
	p.Src.Exec(t, "INSERT INTO tbl VALUES (6, 'v6', 6)")
	res := p.Export(t)["tbl"]
	if res.Keys != 5 || res.Upserts != 3 || res.Deletes != 2 {
		t.Errorf("export result keys=%d upserts=%d deletes=%d, want keys=5 upserts=3 deletes=2",
			res.Keys, res.Upserts, res.Deletes)
	}
	wantRows(t, p.Dst, "tbl", "(1,changed,1)", "(2,changed,2)", "(5,v5,5)", "(6,v6,6)")

	// a referenced row deleted on the source fails on the target, naming
	// the constraint, and stays pending
	p.Src.Exec(t, "DELETE FROM tbl WHERE id = 2")
	_, err := p.ExportErr(0)
	if err == nil || !strings.Contains(err.Error(), "child_parent_fkey") {
		t.Fatalf("export of a delete of a referenced row: %v, want a failure naming child_parent_fkey", err)
	}
	p.Dst.Exec(t, "DELETE FROM child WHERE parent = 2")
	p.Export(t)
	wantRows(t, p.Dst, "tbl", "(1,changed,1)", "(5,v5,5)", "(6,v6,6)")
}

// A resync of a table that a non-deferrable foreign key on the target
// references replaces its rows without deleting the referenced ones, and
// deletes what the source no longer has.
func TestResyncOfReferencedTable(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v text NOT NULL)",
		"INSERT INTO tbl SELECT g, 'v' || g FROM generate_series(1, 5) g")
	p.Dst.Exec(t, parentChildSQL)
	// the target drifted: a row edited, one gone, one the source lacks
	p.Dst.Exec(t, "UPDATE tbl SET v = 'edited' WHERE id = 1; DELETE FROM tbl WHERE id = 5; INSERT INTO tbl VALUES (99, 'stray')")
	if n := p.Src.QueryInt(t, "SELECT shadow_resync('t1', 'tbl')"); n != 5 {
		t.Errorf("shadow_resync copied %d rows, want 5", n)
	}
	p.Same(t, "tbl", "tbl")
}

// The target's triggers see a changed row as an UPDATE, and its columns that
// are not shipped keep their values.
func TestTargetTriggersSeeUpdate(t *testing.T) {
	t.Parallel()
	p := subscribedAs(t, "CREATE TABLE tbl (id int PRIMARY KEY, v text NOT NULL)",
		"CREATE TABLE tbl (id int PRIMARY KEY, v text NOT NULL, note text)",
		"INSERT INTO tbl VALUES (1, 'a'), (2, 'b')")
	p.Dst.Exec(t, `UPDATE tbl SET note = 'kept';
CREATE TABLE public.seen (op text, id int);
CREATE FUNCTION public.seen() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.seen VALUES (TG_OP, coalesce(NEW.id, OLD.id));
    RETURN NULL;
END $f$;
CREATE TRIGGER seen AFTER INSERT OR UPDATE OR DELETE ON public.tbl FOR EACH ROW EXECUTE FUNCTION public.seen();`)

	p.Src.Exec(t, "UPDATE tbl SET v = 'changed' WHERE id = 1")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (3, 'c')")
	p.Export(t)
	if got := strings.Join(p.Dst.QueryStrings(t, "SELECT op || ' ' || id FROM seen ORDER BY id, op"), ", "); got != "UPDATE 1, INSERT 3" {
		t.Errorf("target triggers saw %q, want \"UPDATE 1, INSERT 3\"", got)
	}
	wantRows(t, p.Dst, "tbl", "(1,changed,kept)", "(2,b,kept)", "(3,c,)")
}

// Rows swapping values of a unique column other than the key ship in one
// batch, whether that constraint is checked at once (delete + insert: every
// changed key is deleted before any row is inserted) or at commit (upsert,
// and a foreign key to the table holds).
func TestUniqueValueSwapShips(t *testing.T) {
	t.Parallel()
	for _, unique := range []string{"UNIQUE", "UNIQUE DEFERRABLE INITIALLY DEFERRED"} {
		p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, email text NOT NULL "+unique+")",
			"INSERT INTO tbl SELECT g, 'e' || g FROM generate_series(1, 5) g")
		p.Src.Exec(t, `UPDATE tbl SET email = 'tmp' WHERE id = 1;
			UPDATE tbl SET email = 'e1' WHERE id = 2;
			UPDATE tbl SET email = 'e2' WHERE id = 1;
			DELETE FROM tbl WHERE id = 3;
			UPDATE tbl SET email = 'e3' WHERE id = 4`)
		if _, err := p.ExportErr(0); err != nil {
			t.Errorf("%s: export of swapped unique values failed: %s", unique, pgtest.Describe(err))
		}
		p.Same(t, "tbl", "tbl")
	}
	// the deferred one with a referencing child: the swap is an update
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, email text NOT NULL UNIQUE DEFERRABLE INITIALLY DEFERRED)",
		"INSERT INTO tbl SELECT g, 'e' || g FROM generate_series(1, 5) g")
	p.Dst.Exec(t, parentChildSQL)
	p.Ship(t, "tbl", "UPDATE tbl SET email = CASE id WHEN 1 THEN 'e2' ELSE 'e1' END WHERE id IN (1, 2)")
}

// A batch that fails on the target leaves no row value in the target's log:
// the error names the table and the constraint, and the statement logged
// with it holds no value (only PostgreSQL's DETAIL quotes the failing row).
func TestFailedApplyLogsNoRowData(t *testing.T) {
	t.Parallel()
	p, logFile := loggedPair(t, "CREATE TABLE tbl (id int PRIMARY KEY, v text NOT NULL CONSTRAINT tbl_v_allowed_4f2a CHECK (v <> 'forbidden'))")
	for _, batch := range []struct{ name, sql string }{
		// one chunk, one round trip of statements
		{"small", "INSERT INTO tbl SELECT g, 'private-4f2a-' || g FROM generate_series(1, 50) g; INSERT INTO tbl VALUES (51, 'forbidden')"},
		// several chunks of rows and a chunk of deleted keys
		{"large", "DELETE FROM tbl WHERE id <= 50; INSERT INTO tbl SELECT g, 'private-4f2a-' || g FROM generate_series(100, 45000) g; INSERT INTO tbl VALUES (45001, 'forbidden')"},
	} {
		p.Src.Exec(t, batch.sql)
		exportFailsUnlogged(t, p, logFile, batch.name+" batch", "private-4f2a", "tbl_v_allowed_4f2a", "public.tbl")
		if batch.name == "small" {
			p.Ship(t, "tbl", "UPDATE tbl SET v = 'allowed' WHERE id = 51")
		}
	}
}

// A value the target's column type cannot hold (a shorter varchar there)
// fails in the applying statement, which names no value either.
func TestFailedCastLogsNoRowData(t *testing.T) {
	t.Parallel()
	p, logFile := loggedPair(t, "CREATE TABLE tbl (id int PRIMARY KEY, v varchar(20) NOT NULL)")
	p.Src.Exec(t, "INSERT INTO tbl SELECT g, 'private-9c1e-' || g FROM generate_series(1, 50) g; INSERT INTO tbl VALUES (51, repeat('private-9c1e-', 3))")
	exportFailsUnlogged(t, p, logFile, "cast", "private-9c1e", "character varying(20)")
}

// loggedPair is the start of the tests that read the target's log: table tbl
// (id, v text) on the source, created by dstDDL on the target, subscribed;
// it returns the target's log file and skips the test where that cannot be
// read.
func loggedPair(t *testing.T, dstDDL string) (*pair, string) {
	t.Helper()
	p := subscribedAs(t, "CREATE TABLE tbl (id int PRIMARY KEY, v text NOT NULL)", dstDDL, "")
	return p, targetLog(t, p)
}

// exportFailsUnlogged runs an export that must fail with an error naming
// every one of want; the target's log must name want[0] too, and hold
// nothing of secret (the prefix of every row value in the batch).
func exportFailsUnlogged(t *testing.T, p *pair, logFile, what, secret string, want ...string) {
	t.Helper()
	before := logSize(t, logFile)
	_, err := p.ExportErr(0)
	if err == nil {
		t.Fatalf("%s: export succeeded, want a failure naming %q", what, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%s: export gave %v, want a failure naming %q", what, err, want)
		}
	}
	logged := logSince(t, logFile, before)
	if !strings.Contains(logged, want[0]) {
		t.Fatalf("%s: the target's log does not name %s:\n%s", what, want[0], logged)
	}
	if strings.Contains(logged, secret) {
		t.Errorf("%s: the target's log holds row values:\n%.3000s", what, logged)
	}
}

// targetLog is the target server's log file; the test is skipped where it
// cannot be read.
func targetLog(t *testing.T, p *pair) string {
	t.Helper()
	if p.Dst.Server.LogFile == "" {
		t.Skip("the target's log is not readable here (container backend)")
	}
	return p.Dst.Server.LogFile
}

// logSince is what the log at path got after offset (a logSize).
func logSince(t *testing.T, path string, offset int64) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data[offset:])
}

func logSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
