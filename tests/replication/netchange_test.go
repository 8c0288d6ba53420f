// Net change: what a target receives is the current state of each changed
// key, not the history of its changes; TRUNCATE is replayed where it happened
// in that history.
package replication

import (
	"testing"
)

// countInsertsSQL puts a trigger on the target table that counts the rows
// written (inserted or updated) per key: the apply runs with search_path =
// pg_catalog, so every name in it is qualified.
const countInsertsSQL = `
CREATE TABLE public.ins_count (id int PRIMARY KEY, n int NOT NULL);
CREATE FUNCTION public.count_ins() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.ins_count VALUES (NEW.id, 1)
    ON CONFLICT (id) DO UPDATE SET n = public.ins_count.n + 1;
    RETURN NULL;
END $f$;
CREATE TRIGGER count_ins AFTER INSERT OR UPDATE ON public.tbl FOR EACH ROW EXECUTE FUNCTION public.count_ins();`

// A key changed 100 times between two exports is written to the target
// once, and the export reports one key.
func TestKeyChangedManyTimesShipsOnce(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v int NOT NULL)", "INSERT INTO tbl VALUES (1, 0), (2, 0)")
	p.Dst.Exec(t, countInsertsSQL)

	// 100 separate transactions, and a delete + re-insert among them
	for i := 0; i < 100; i++ {
		switch i {
		case 50:
			p.Src.Exec(t, "DELETE FROM tbl WHERE id = 1")
		case 51:
			p.Src.Exec(t, "INSERT INTO tbl VALUES (1, 51)")
		default:
			p.Src.Exec(t, "UPDATE tbl SET v = v + 1 WHERE id = 1")
		}
	}
	shadowRows := p.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.public__tbl WHERE id = 1")
	if shadowRows < 100 {
		t.Fatalf("scenario broken: %d shadow rows for key 1, want at least 100", shadowRows)
	}

	res := p.Export(t)["tbl"]
	if res.Keys != 1 || res.Upserts != 1 || res.Deletes != 0 {
		t.Errorf("export result keys=%d upserts=%d deletes=%d, want keys=1 upserts=1 deletes=0",
			res.Keys, res.Upserts, res.Deletes)
	}
	if got := p.Dst.QueryStrings(t, "SELECT format('%s:%s', id, n) FROM ins_count ORDER BY id"); len(got) != 1 || got[0] != "1:1" {
		t.Errorf("inserts on the target per key: %v, want exactly [1:1] (key 1 written once, key 2 untouched)", got)
	}
	p.Same(t, "tbl", "tbl")
}

// A key that no longer exists ships as a delete, whatever happened to it
// before, and a key inserted and deleted between exports ships nothing.
func TestDeletedKeyShipsAsDelete(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v int NOT NULL)", "INSERT INTO tbl VALUES (1, 0), (2, 0)")
	p.Dst.Exec(t, countInsertsSQL)

	p.Src.Exec(t, "UPDATE tbl SET v = 5 WHERE id = 1")
	p.Src.Exec(t, "DELETE FROM tbl WHERE id = 1")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (3, 3)")
	p.Src.Exec(t, "DELETE FROM tbl WHERE id = 3")

	res := p.Export(t)["tbl"]
	if res.Keys != 2 || res.Upserts != 0 || res.Deletes != 2 {
		t.Errorf("export result keys=%d upserts=%d deletes=%d, want keys=2 upserts=0 deletes=2",
			res.Keys, res.Upserts, res.Deletes)
	}
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM ins_count"); n != 0 {
		t.Errorf("%d keys were inserted on the target, want none", n)
	}
	wantRows(t, p.Dst, "tbl", "(2,0)")
}

// TRUNCATE between inserts replays in order: the target ends with only the
// rows inserted after it.
func TestTruncateReplaysInOrder(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "")

	p.Src.Exec(t, "INSERT INTO tbl SELECT g, 'first' FROM generate_series(1, 5) g")
	p.Export(t)
	wantRows(t, p.Dst, "tbl", "(1,first)", "(2,first)", "(3,first)", "(4,first)", "(5,first)")

	p.Src.ExecEach(t,
		"INSERT INTO tbl SELECT g, 'before' FROM generate_series(6, 10) g",
		"UPDATE tbl SET v = 'updated' WHERE id = 1",
		"TRUNCATE tbl",
		"INSERT INTO tbl SELECT g, 'after' FROM generate_series(3, 4) g",
		"INSERT INTO tbl VALUES (11, 'after')")
	res := p.Export(t)["tbl"]
	if !res.Truncated {
		t.Errorf("export result truncated=false, want true")
	}
	wantRows(t, p.Dst, "tbl", "(11,after)", "(3,after)", "(4,after)")
	p.Same(t, "tbl", "tbl")

	// a later batch without a truncate is an ordinary one again
	p.Src.Exec(t, "INSERT INTO tbl VALUES (12, 'later')")
	if res := p.Export(t)["tbl"]; res.Truncated || res.Keys != 1 {
		t.Errorf("export after the truncate batch: truncated=%v keys=%d, want false and 1", res.Truncated, res.Keys)
	}
	p.Same(t, "tbl", "tbl")
}

// A TRUNCATE that nothing follows empties the target.
func TestTruncateAloneEmptiesTarget(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "INSERT INTO tbl SELECT g, 'x' FROM generate_series(1, 20) g")
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl"); n != 20 {
		t.Fatalf("initial copy left %d rows on the target, want 20", n)
	}

	p.Src.Exec(t, "TRUNCATE tbl")
	res := p.Export(t)["tbl"]
	if !res.Truncated {
		t.Errorf("export result truncated=false, want true")
	}
	wantRows(t, p.Dst, "tbl")
}

// A transaction that rolled back after writing ships nothing, even when it
// truncated.
func TestRolledBackChangesShipNothing(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "INSERT INTO tbl VALUES (1, 'kept')")

	c := openTx(t, p.Src, "INSERT INTO tbl VALUES (2, 'gone')", "TRUNCATE tbl")
	mustExec(t, c, "ROLLBACK")

	res := p.Export(t)["tbl"]
	if res.Keys != 0 || res.Truncated {
		t.Errorf("export result keys=%d truncated=%v, want 0 and false", res.Keys, res.Truncated)
	}
	wantRows(t, p.Dst, "tbl", "(1,kept)")
}
