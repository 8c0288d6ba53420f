package replication

import (
	"strings"
	"testing"
)

// A table whose target refuses it does not hold the target's other tables
// back: they ship and their watermarks move; the failed one is reported in
// its row and in shadow_status, and its watermark stays. When every table
// fails, the call fails as a whole and nothing moves.
func TestOneFailingTableDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Both(t, "CREATE TABLE good (id int PRIMARY KEY, v text); CREATE TABLE bad (id int PRIMARY KEY, v text)")
	p.Subscribe(t, "bad")
	p.Subscribe(t, "good")
	p.Dst.Exec(t, "ALTER TABLE bad ADD CHECK (v <> 'poison')")
	p.Src.Exec(t, "INSERT INTO bad VALUES (1, 'poison'); INSERT INTO good VALUES (1, 'fine')")
	badBefore, goodBefore := p.watermark(t, "bad"), p.watermark(t, "good")

	res, err := p.ExportErr(0)
	if err == nil || !strings.Contains(err.Error(), "bad_v_check") {
		t.Fatalf("export: err %v, want the failure of table bad reported", err)
	}
	if r := res["good"]; r.Keys != 1 || r.Error != nil {
		t.Errorf("table good: %+v, want 1 key shipped and no error", r)
	}
	p.Same(t, "good", "good")
	if p.watermark(t, "good") == goodBefore {
		t.Errorf("the watermark of good did not move although it shipped")
	}
	if p.watermark(t, "bad") != badBefore {
		t.Errorf("the watermark of bad moved although the target refused it")
	}
	if got := p.Src.QueryString(t, `SELECT coalesce(last_error, '') FROM shadow_status WHERE "table" = 'bad'::regclass`); !strings.Contains(got, "bad_v_check") {
		t.Errorf("shadow_status.last_error of bad = %q, want the check violation", got)
	}

	// every table failing: the call fails and no watermark moves
	p.Src.Exec(t, "INSERT INTO good VALUES (2, 'x')")
	p.Dst.Exec(t, "ALTER TABLE good ADD CHECK (v <> 'x')")
	goodBefore = p.watermark(t, "good")
	if _, err := p.Src.Pool.Exec(t.Context(), "SELECT * FROM shadow_export('t1')"); err == nil {
		t.Fatalf("export with every table refused succeeded")
	}
	if p.watermark(t, "good") != goodBefore || p.watermark(t, "bad") != badBefore {
		t.Errorf("a watermark moved although every table failed")
	}

	p.Dst.Exec(t, "ALTER TABLE bad DROP CONSTRAINT bad_v_check; ALTER TABLE good DROP CONSTRAINT good_v_check")
	p.Export(t)
	p.Same(t, "bad", "bad")
	p.Same(t, "good", "good")
}

// A batch of nothing but deletes (no current row to append) ships too.
func TestBatchOfOnlyDeletesShips(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "INSERT INTO tbl SELECT g, 'v' FROM generate_series(1, 5) g")
	p.Src.Exec(t, "DELETE FROM tbl WHERE id <= 3")
	if r := p.Export(t)["tbl"]; r.Keys != 3 || r.Deletes != 3 || r.Upserts != 0 {
		t.Errorf("export result %+v, want 3 keys, 3 deletes, 0 upserts", r)
	}
	p.Same(t, "tbl", "tbl")
}

// A backlog of many changes to few keys stays one net batch even when its
// changes outnumber batch_size: cutting it would ship each key once per part.
func TestBacklogOfFewKeysIsNotCut(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v int)", "INSERT INTO tbl SELECT g, 0 FROM generate_series(1, 100) g")
	for i := 0; i < 10; i++ {
		p.Src.Exec(t, "UPDATE tbl SET v = v + 1") // 10 transactions x 100 keys = 1000 changes
	}
	if r := p.ExportBatch(t, 150)["tbl"]; r.Batches != 1 || r.Keys != 100 {
		t.Errorf("export of 1000 changes to 100 keys with batch_size 150: %d batches, %d keys; want 1 batch of 100 keys", r.Batches, r.Keys)
	}
	p.Same(t, "tbl", "tbl")
}
