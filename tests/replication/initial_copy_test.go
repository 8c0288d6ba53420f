// The initial copy: rows that exist before the subscription reach the target,
// and changes racing with it are neither lost nor applied twice.
package replication

import (
	"context"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// Rows that exist before shadow_subscribe are copied by it, and the next
// export has nothing left to do for them.
func TestInitialCopyCopiesExistingRows(t *testing.T) {
	t.Parallel()
	p := prepared(t, tblDDL, tblDDL, "INSERT INTO tbl SELECT g, 'v' || g FROM generate_series(1, 250) g")
	if n := p.Subscribe(t, "tbl"); n != 250 {
		t.Errorf("shadow_subscribe reported %d rows copied, want 250", n)
	}
	p.Same(t, "tbl", "tbl")
	if got := p.Export(t)["tbl"].Keys; got != 0 {
		t.Errorf("first export after the copy shipped %d keys, want 0", got)
	}
	p.Same(t, "tbl", "tbl")
}

// With initial_copy => false nothing is copied; later changes still ship.
func TestNoInitialCopyCopiesNothing(t *testing.T) {
	t.Parallel()
	p := prepared(t, tblDDL, tblDDL, "INSERT INTO tbl SELECT g, 'old' FROM generate_series(1, 10) g")
	if n := p.Subscribe(t, "tbl", "initial_copy => false"); n != 0 {
		t.Errorf("shadow_subscribe reported %d rows copied, want 0", n)
	}
	wantRows(t, p.Dst, "tbl")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (11, 'new')")
	p.Src.Exec(t, "UPDATE tbl SET v = 'changed' WHERE id = 1")
	p.Export(t)
	wantRows(t, p.Dst, "tbl", "(1,changed)", "(11,new)")
}

// Transactions open around shadow_subscribe on an already tracked table
// (started before it, committed after the copy) are shipped by the next
// export, and rows both copied and exported are not doubled. The target
// table has no primary key, so a doubled row would show.
func TestChangesConcurrentWithInitialCopyShipOnce(t *testing.T) {
	t.Parallel()
	p := prepared(t, tblDDL, "CREATE TABLE tbl (id int, v text)", "INSERT INTO tbl SELECT g, 'old' FROM generate_series(1, 100) g")
	p.Src.Exec(t, "SELECT shadow_track('tbl')")

	a := openTx(t, p.Src, "INSERT INTO tbl VALUES (101, 'A')", "UPDATE tbl SET v = 'A' WHERE id = 5", "DELETE FROM tbl WHERE id = 6")

	subscribeNotBlocked(t, p, "tbl", func() { mustExec(t, a, "ROLLBACK") })
	// A is invisible to the copy: the target has the committed state only
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl WHERE v = 'A' OR id = 101"); n != 0 {
		t.Fatalf("the initial copy saw %d rows of an uncommitted transaction", n)
	}
	mustExec(t, a, "UPDATE tbl SET v = 'A2' WHERE id = 7")
	mustExec(t, a, "COMMIT")
	p.Src.Exec(t, "UPDATE tbl SET v = 'after' WHERE id IN (1, 5)")

	p.Export(t)
	p.Same(t, "tbl", "tbl")
	if n := p.Dst.QueryInt(t, "SELECT count(*) - count(DISTINCT id) FROM tbl"); n != 0 {
		t.Errorf("%d rows are doubled on the target", n)
	}
}

// On a table not yet tracked, a writer holding an open transaction makes
// shadow_subscribe wait (its triggers need the table's lock), so that
// writer's rows cannot slip between the copy and the capture.
func TestSubscribeWaitsForOpenWriterOnUntrackedTable(t *testing.T) {
	t.Parallel()
	p := prepared(t, tblDDL, tblDDL, "INSERT INTO tbl SELECT g, 'old' FROM generate_series(1, 10) g")

	a := openTx(t, p.Src, "INSERT INTO tbl VALUES (11, 'A')", "UPDATE tbl SET v = 'A' WHERE id = 1")

	done := subscribeInBackground(p, "tbl")
	select {
	case err := <-done:
		// it did not wait: then A's rows must still arrive by some path
		if err != nil {
			t.Fatalf("shadow_subscribe failed: %s", pgtest.Describe(err))
		}
	case <-time.After(300 * time.Millisecond):
	}
	mustExec(t, a, "INSERT INTO tbl VALUES (12, 'A')")
	mustExec(t, a, "COMMIT")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shadow_subscribe failed: %s", pgtest.Describe(err))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("shadow_subscribe still waiting 30s after the writer committed")
	}
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}

// subscribeInBackground runs shadow_subscribe(t1, tbl) in a goroutine, so
// that the test can watch it wait and end what it waits for; its error
// arrives on the channel.
func subscribeInBackground(p *pair, tbl string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := p.Src.Pool.Exec(ctx, "SELECT shadow_subscribe($1, $2)", targetName, tbl)
		done <- err
	}()
	return done
}

// subscribeNotBlocked runs shadow_subscribe(t1, tbl) and fails the test if it
// waits on a lock for more than a few seconds, naming the statement and the
// relation it waits for; release then ends the blocker so the test can stop.
func subscribeNotBlocked(t *testing.T, p *pair, tbl string, release func()) {
	t.Helper()
	done := subscribeInBackground(p, tbl)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shadow_subscribe failed: %s", pgtest.Describe(err))
		}
	case <-time.After(5 * time.Second):
		waits := p.Src.QueryStrings(t, `SELECT format('%s waits for %s lock on %s', a.query, l.mode, l.relation::regclass)
			FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
			WHERE a.datname = current_database()`)
		release()
		<-done
		t.Fatalf("shadow_subscribe on tracked table %s blocked behind an open writer for 5s: %v", tbl, waits)
	}
}

// shadow_subscribe called in a transaction that has written to the (already
// tracked) table: changes that transaction makes after the copy still ship.
func TestSubscribeInsideWritingTransactionLosesNothing(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Both(t, tblDDL)
	p.Src.Exec(t, "SELECT shadow_track('tbl')")
	s := openTx(t, p.Src, "INSERT INTO tbl VALUES (99, 'early')")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (1, 'other')")
	mustExec(t, s, "SELECT shadow_subscribe($1, 'tbl')", targetName)
	mustExec(t, s, "UPDATE tbl SET v = 'late' WHERE id = 99")
	mustExec(t, s, "COMMIT")
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}
