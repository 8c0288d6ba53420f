// Transactions commit in another order than they got their xids: the
// watermark must still ship each of them exactly once.
package replication

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// A transaction that took its xid before a later one, and commits after that
// later one was exported, is shipped by the next export (an xid or sequence
// watermark would skip it forever).
func TestLateCommitOfEarlierXidShipsNextExport(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "")

	a := openTx(t, p.Src, "INSERT INTO tbl VALUES (1, 'A')")
	xidA := mustQueryString(t, a, "SELECT pg_current_xact_id()::text")

	p.Src.Exec(t, "INSERT INTO tbl VALUES (2, 'B')")
	xidB := p.Src.QueryString(t, "SELECT shadow_xid::text FROM pgshadow.public__tbl WHERE id = 2")
	if p.Src.QueryInt(t, "SELECT ($1::xid8 < $2::xid8)::int", xidA, xidB) != 1 {
		t.Fatalf("scenario broken: xid of A (%s) is not below xid of B (%s)", xidA, xidB)
	}

	p.Export(t)
	wantRows(t, p.Dst, "tbl", "(2,B)")

	mustExec(t, a, "COMMIT")
	res := p.Export(t)
	if got := res["tbl"].Keys; got != 1 {
		t.Errorf("second export shipped %d keys, want 1 (only A's)", got)
	}
	wantRows(t, p.Dst, "tbl", "(1,A)", "(2,B)")
	p.Same(t, "tbl", "tbl")

	// nothing is shipped twice: a third export has nothing left
	if got := p.Export(t)["tbl"].Keys; got != 0 {
		t.Errorf("third export shipped %d keys, want 0", got)
	}
}

// Transactions left open while a backlog is cut into batches (one older than
// the whole backlog, one from its middle) stay pending in every cut snapshot
// and ship, once, with the next export after they commit.
func TestLateCommitAcrossBatchCutsShipsOnce(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "")

	a := openTx(t, p.Src, "INSERT INTO tbl VALUES (1000, 'A')")
	var b *pgx.Conn
	for i := 0; i < 30; i++ {
		p.Src.Exec(t, fmt.Sprintf("INSERT INTO tbl SELECT g, 'x' FROM generate_series(%d, %d) g", i*10+1, i*10+10))
		if i == 10 {
			b = openTx(t, p.Src, "UPDATE tbl SET v = 'B' WHERE id <= 5", "INSERT INTO tbl VALUES (2000, 'B')")
		}
	}
	res := p.ExportBatch(t, 25)["tbl"]
	if res.Batches < 3 {
		t.Fatalf("scenario broken: export used %d batches, want the backlog cut into several", res.Batches)
	}
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl WHERE id IN (1000, 2000) OR v <> 'x'"); n != 0 {
		t.Fatalf("%d rows of open transactions reached the target", n)
	}
	p.Same(t, "(SELECT * FROM tbl WHERE id < 1000)", "tbl")

	mustExec(t, b, "COMMIT")
	for i := 30; i < 40; i++ {
		p.Src.Exec(t, fmt.Sprintf("INSERT INTO tbl SELECT g, 'y' FROM generate_series(%d, %d) g", i*10+1, i*10+10))
	}
	mustExec(t, a, "COMMIT")
	p.ExportBatch(t, 25)
	p.Same(t, "tbl", "tbl")
	if got := p.ExportBatch(t, 25)["tbl"].Keys; got != 0 {
		t.Errorf("an export after everything shipped shipped %d keys, want 0", got)
	}
}

// Writes rolled back to a savepoint ship nothing; writes of released
// subtransactions ship with their top-level transaction.
func TestSavepointsShipOnlyWhatCommitted(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL, "INSERT INTO tbl VALUES (1, 'old')")

	c := p.Src.Conn(t)
	for _, sql := range []string{
		"BEGIN",
		"SAVEPOINT s1", "INSERT INTO tbl VALUES (2, 'first write in a subtransaction')", "RELEASE s1",
		"SAVEPOINT s2", "INSERT INTO tbl VALUES (3, 'rolled back')", "UPDATE tbl SET v = 'rolled back' WHERE id = 1",
		"ROLLBACK TO s2",
		"SAVEPOINT s3", "UPDATE tbl SET v = 'nested' WHERE id = 1", "SAVEPOINT s4", "DELETE FROM tbl WHERE id = 2",
		"ROLLBACK TO s4", "RELEASE s3",
		"COMMIT",
	} {
		mustExec(t, c, sql)
	}
	p.Export(t)
	wantRows(t, p.Dst, "tbl", "(1,nested)", `(2,"first write in a subtransaction")`)
}

// An export run inside a transaction that has itself written to the table
// must not treat that unfinished transaction as shipped: a snapshot never
// lists its own transaction as in progress. Whether the export refuses or
// ships, the target must end equal to the source after the transaction
// commits (a later change of the same key ships) or rolls back (no phantom
// row stays behind).
func TestExportInsideWritingTransactionNeitherLosesNorInvents(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"COMMIT", "ROLLBACK"} {
		t.Run(end, func(t *testing.T) {
			p := subscribed(t, tblDDL, "")
			s := openTx(t, p.Src, "INSERT INTO tbl VALUES (99, 'early')")
			// a later transaction commits, so the snapshot's xmax passes s's xid
			p.Src.Exec(t, "INSERT INTO tbl VALUES (1, 'other')")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := s.Exec(ctx, exportSQL(0)); err != nil {
				t.Logf("export inside the writing transaction refused: %s", pgtest.Describe(err))
				mustExec(t, s, "ROLLBACK")
			} else {
				mustExec(t, s, "UPDATE tbl SET v = 'late' WHERE id = 99")
				mustExec(t, s, end)
			}
			p.Export(t)
			p.Same(t, "tbl", "tbl")
		})
	}
}
