// Bounded work and safe resends: a backlog drains in several batches of at
// most batch_size keys, and shipping a batch again changes nothing.
package replication

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// A backlog of 1000 changes in many transactions drains in several batches
// when batch_size is 100, and the target ends equal.
func TestBacklogDrainsInSeveralBatches(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v int NOT NULL)", "")

	// 200 transactions of 5 changes each: inserts, then updates and deletes
	// of earlier keys, so keys repeat across transactions
	for i := 0; i < 200; i++ {
		p.Src.Exec(t, fmt.Sprintf(`INSERT INTO tbl SELECT g, %[1]d FROM generate_series(%[1]d * 4 + 1, %[1]d * 4 + 4) g;
			UPDATE tbl SET v = v + 1000 WHERE id = %[2]d;`, i, i*2+1))
		if i%10 == 9 {
			p.Src.Exec(t, fmt.Sprintf("DELETE FROM tbl WHERE id = %d", i*3))
		}
	}
	before := p.watermark(t, "tbl")
	res := p.ExportBatch(t, 100)["tbl"]
	if res.Batches <= 1 {
		t.Errorf("export used %d batch(es) for a backlog of 800 keys with batch_size 100, want several", res.Batches)
	}
	if res.Keys < 800 {
		t.Errorf("export shipped %d keys, want at least the 800 inserted", res.Keys)
	}
	after := p.watermark(t, "tbl")
	if before == after {
		t.Errorf("watermark did not move: %s", after)
	}
	p.Same(t, "tbl", "tbl")
	if got := p.ExportBatch(t, 100)["tbl"].Keys; got != 0 {
		t.Errorf("an export after the drain shipped %d keys, want 0", got)
	}
}

// One transaction larger than batch_size cannot be split across snapshots;
// it still ships, in chunks of one remote transaction.
func TestTransactionLargerThanBatchSizeShips(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v text NOT NULL)", "")

	p.Src.Exec(t, "INSERT INTO tbl SELECT g, 'big' FROM generate_series(1, 1000) g")
	res := p.ExportBatch(t, 100)["tbl"]
	if res.Keys != 1000 || res.Batches != 1 {
		t.Errorf("export shipped keys=%d in %d batches, want 1000 keys in 1 batch (one transaction is never split)",
			res.Keys, res.Batches)
	}
	p.Same(t, "tbl", "tbl")

	// between smaller transactions: the backlog is cut around the big one
	p.Src.Exec(t, "INSERT INTO tbl VALUES (0, 'before')")
	p.Src.Exec(t, "UPDATE tbl SET v = 'big again' WHERE id > 0")
	p.Src.Exec(t, "UPDATE tbl SET v = 'after' WHERE id % 7 = 0")
	res = p.ExportBatch(t, 100)["tbl"]
	if res.Batches < 2 {
		t.Errorf("export used %d batch(es), want the small transactions in batches of their own", res.Batches)
	}
	p.Same(t, "tbl", "tbl")
}

// Resending batches that the target already has (the watermark set back, as
// after a crash between the remote commit and the local one) leaves the
// target as it was.
func TestResentBatchIsHarmless(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "INSERT INTO tbl SELECT g, 'old' FROM generate_series(1, 50) g")
	// the resend needs the shadow rows of the batch
	subscribeIdleFileTarget(t, p.Src)
	old := p.Src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription WHERE target = $1 AND tbl = 'tbl'::regclass",
		targetName)

	p.Src.ExecEach(t,
		"INSERT INTO tbl SELECT g, 'new' FROM generate_series(51, 60) g",
		"UPDATE tbl SET v = 'changed' WHERE id <= 10",
		"DELETE FROM tbl WHERE id BETWEEN 20 AND 24",
		"TRUNCATE tbl; INSERT INTO tbl SELECT g, 'again' FROM generate_series(1, 30) g",
		"UPDATE tbl SET v = 'last' WHERE id = 30")
	first := p.Export(t)["tbl"]
	p.Same(t, "tbl", "tbl")
	shipped := p.Dst.TableRows(t, "tbl")

	p.Src.Exec(t, "UPDATE pgshadow.subscription SET snapshot = $1::pg_snapshot WHERE target = $2 AND tbl = 'tbl'::regclass",
		old, targetName)
	again := p.Export(t)["tbl"]
	if again.Keys != first.Keys || again.Truncated != first.Truncated {
		t.Errorf("resend shipped keys=%d truncated=%v, want the same batch as before (keys=%d truncated=%v)",
			again.Keys, again.Truncated, first.Keys, first.Truncated)
	}
	if got := p.Dst.TableRows(t, "tbl"); !slices.Equal(got, shipped) {
		t.Errorf("target changed by the resend:\n%s", pgtest.DiffRows(shipped, got))
	}
	p.Same(t, "tbl", "tbl")
}

// Shadow rows every subscription has shipped are purged by the export, and
// rows a lagging subscription still needs are kept.
func TestShippedShadowRowsArePurged(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "")
	p.Src.Exec(t, "INSERT INTO tbl SELECT g, 'x' FROM generate_series(1, 100) g")
	p.Src.Exec(t, "UPDATE tbl SET v = 'y' WHERE id <= 50")
	// a snapshot's xmin is cluster-wide: other tests' open transactions may
	// hold the purge back for a moment, never for good
	pgtest.Eventually(t, 60*time.Second, func() (bool, string) {
		p.Export(t)
		n := p.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.public__tbl")
		return n == 0, fmt.Sprintf("%d shadow rows left after every subscription shipped them, want 0", n)
	})

	subscribeIdleFileTarget(t, p.Src)
	p.Src.Exec(t, "UPDATE tbl SET v = 'z' WHERE id <= 10")
	p.Export(t)
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.public__tbl"); n != 10 {
		t.Errorf("%d shadow rows kept for a subscription that has not shipped them, want 10", n)
	}
	p.Same(t, "tbl", "tbl")
}

// Chunks of one batch are cut by keyset pagination over the whole key: with a
// composite key of an integer and an awkward text, every key lands in exactly
// one chunk, for ordinary batches and for a truncate batch's full copy.
func TestChunkedBatchesWithCompositeKeyShipEveryKey(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (a int, b text, v int, PRIMARY KEY (a, b))", "")
	fill := `INSERT INTO tbl SELECT g % 7, w || g, g
		FROM generate_series(1, 500) g,
		     unnest(ARRAY['', ' ', 'B', 'b', 'ä', '"', '''', '\', E'\n', '{x,y}']) w`
	p.Src.Exec(t, fill)
	if res := p.ExportBatch(t, 37)["tbl"]; res.Keys != 5000 {
		t.Errorf("export shipped %d keys, want 5000", res.Keys)
	}
	p.Same(t, "tbl", "tbl")

	p.Src.Exec(t, "TRUNCATE tbl; "+fill+" WHERE g % 3 = 0")
	p.Src.Exec(t, "UPDATE tbl SET v = -v WHERE a = 3")
	res := p.ExportBatch(t, 37)["tbl"]
	if !res.Truncated {
		t.Errorf("export result truncated=false, want true")
	}
	p.Same(t, "tbl", "tbl")
}

// A target with the source's secondary UNIQUE constraint: values swapped
// between keys over several transactions must not make a batch cut between
// those transactions fail on the target (each batch ships current rows, so a
// cut batch can hold a state the source never had).
func TestBatchCutsKeepTargetUniqueConstraintsSatisfiable(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, email text NOT NULL UNIQUE)",
		"INSERT INTO tbl VALUES (1, 'x'), (2, 'y')")
	p.Src.Exec(t, "UPDATE tbl SET email = 'tmp' WHERE id = 1")
	p.Src.Exec(t, "UPDATE tbl SET email = 'x' WHERE id = 2")
	p.Src.Exec(t, "UPDATE tbl SET email = 'y' WHERE id = 1")
	if _, err := p.ExportErr(1); err != nil {
		t.Errorf("export with batch_size 1 failed: %s", pgtest.Describe(err))
	}
	// whatever the cut did, a plain export must converge
	p.Export(t)
	p.Same(t, "tbl", "tbl")

	// one transaction swapping values between keys in different chunks
	p.Src.Exec(t, "INSERT INTO tbl SELECT g, 'e' || g FROM generate_series(3, 300) g")
	p.Export(t)
	p.Src.Exec(t, `UPDATE tbl SET email = 'swap' WHERE id = 250;
		UPDATE tbl SET email = 'e250' WHERE id = 10;
		UPDATE tbl SET email = 'e10' WHERE id = 250;
		UPDATE tbl SET email = email || '.' WHERE id BETWEEN 100 AND 200`)
	if _, err := p.ExportErr(50); err != nil {
		t.Errorf("export of one transaction in chunks of 50 failed: %s", pgtest.Describe(err))
	}
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}

// subscribeIdleFileTarget subscribes tbl, without a copy, to a file target
// "files" that never exports: its subscription keeps every shadow row from
// being purged.
func subscribeIdleFileTarget(t *testing.T, d *pgtest.DB) {
	t.Helper()
	d.Exec(t, "SELECT shadow_add_target('files', NULL)")
	d.Exec(t, "SELECT shadow_subscribe('files', 'tbl', initial_copy => false)")
}
