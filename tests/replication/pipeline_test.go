// Pipelined apply: a batch larger than one chunk goes as several statements
// sent without waiting (the target applies chunk i while the source renders
// chunk i+1). The batch must still land as one remote transaction, in order
// (all deletes before any row), and a chunk that fails on the target must
// fail the whole batch, named, with nothing of it left on the target.
package replication

import (
	"context"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// 50k changed keys with the default batch size: one batch, shipped in
// several chunks of deletes and of rows. Unique values that move between
// rows only come out right if every delete chunk ran before the first row
// chunk.
func TestBatchOfManyChunksShipsInOrder(t *testing.T) {
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v text, u int UNIQUE)",
		"INSERT INTO tbl SELECT g, 'v' || g, g FROM generate_series(1, 60000) g")
	p.Src.Exec(t, `
		UPDATE tbl SET v = 'changed' WHERE id % 2 = 0 AND id <= 50000;
		DELETE FROM tbl WHERE id % 7 = 0 AND id <= 50000;
		-- unique values rotate: row i takes the value row i+1 held, so any
		-- chunk of rows (20k each) applied before the delete that frees its
		-- values would break the target's constraint
		UPDATE tbl SET u = -u WHERE id <= 50000;
		UPDATE tbl SET u = CASE WHEN -u = 50000 THEN 1 ELSE -u + 1 END WHERE id <= 50000`)
	res := p.Export(t)["tbl"]
	if res.Batches != 1 || res.Keys != 50000 {
		t.Fatalf("export shipped %d batch(es) of %d keys; want one batch of the ~50k changed keys", res.Batches, res.Keys)
	}
	if res.Deletes != int64(50000/7) {
		t.Errorf("export reported %d deletes, want %d", res.Deletes, 50000/7)
	}
	p.Same(t, "tbl", "tbl")
}

// A row in the last chunk of a 50k-row batch breaks a constraint only the
// target has. The export fails naming table, target and the target's error;
// none of the chunks that had already been applied stays on the target, the
// watermark does not move, and once the target accepts the row the same
// batch ships whole.
func TestChunkFailingOnTargetFailsTheWholeBatch(t *testing.T) {
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v int)",
		"INSERT INTO tbl SELECT g, 0 FROM generate_series(1, 50000) g")
	p.Dst.Exec(t, "ALTER TABLE tbl ADD CONSTRAINT not_the_last CHECK (id <> 49990 OR v < 1)")
	before := p.watermark(t, "tbl")
	p.Src.Exec(t, "UPDATE tbl SET v = 1")

	_, err := p.ExportErr(0)
	if err == nil {
		t.Fatalf("export succeeded though the target refuses key 49990")
	}
	msg := pgtest.Describe(err)
	for _, want := range []string{"tbl", `target "` + targetName + `"`, "not_the_last"} {
		if !strings.Contains(msg, want) {
			t.Errorf("export error does not mention %q: %s", want, msg)
		}
	}
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl WHERE v = 1"); n != 0 {
		t.Errorf("the failed batch left %d of its rows on the target, want none", n)
	}
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl"); n != 50000 {
		t.Errorf("the failed batch left the target with %d rows, want the 50000 it had", n)
	}
	p.wantWatermark(t, "tbl", before, "a failed export")

	p.Dst.Exec(t, "ALTER TABLE tbl DROP CONSTRAINT not_the_last")
	res := p.Export(t)["tbl"]
	if res.Keys != 50000 || res.Upserts != 50000 {
		t.Errorf("export after the fix shipped %d keys / %d rows, want the whole batch of 50000", res.Keys, res.Upserts)
	}
	p.Same(t, "tbl", "tbl")
}

// A large batch reads its rows with nested loops off (one hash join beats a
// probe per key); the setting must not outlive that read, or every later
// query of the caller's transaction is planned without nested loops.
func TestExportLeavesPlannerSettingsAsTheyWere(t *testing.T) {
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v int)",
		"INSERT INTO tbl SELECT g, 0 FROM generate_series(1, 30000) g")
	p.Src.Exec(t, "ANALYZE tbl; UPDATE tbl SET v = 1")
	ctx := context.Background()
	tx, err := p.Src.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var keys int64
	var nestloop string
	if err := tx.QueryRow(ctx, "SELECT keys FROM shadow_export($1)", targetName).Scan(&keys); err != nil {
		t.Fatalf("export: %s", pgtest.Describe(err))
	}
	if err := tx.QueryRow(ctx, "SELECT current_setting('enable_nestloop')").Scan(&nestloop); err != nil {
		t.Fatal(err)
	}
	if keys != 30000 {
		t.Fatalf("scenario broken: export shipped %d keys, want a batch of all 30000", keys)
	}
	if nestloop != "on" {
		t.Errorf("after shadow_export in a transaction, enable_nestloop is %q there, want it left on", nestloop)
	}
}
