// Transactions commit in another order than they got their xids: the
// watermark must still ship each of them exactly once.
package replication

import (
	"testing"
)

// A transaction that took its xid before a later one, and commits after that
// later one was exported, is shipped by the next export (an xid or sequence
// watermark would skip it forever).
func TestLateCommitOfEarlierXidShipsNextExport(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v text)", "")

	a := conn(t, p.Src)
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "INSERT INTO tbl VALUES (1, 'A')")
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
