// Lock cycles: an export never waits for a lock an application transaction
// holds while it holds locks of its own that transaction may need, and two
// exports never wait for each other in a circle.
package replication

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// exportOutcome is what a shadow_export run in the background returned.
type exportOutcome struct {
	out map[string]exported
	err error
}

// exportAlongside starts shadow_export('t1') on a connection of its own.
func exportAlongside(p *pair) <-chan exportOutcome {
	done := make(chan exportOutcome, 1)
	go func() {
		out, err := p.ExportErr(0)
		done <- exportOutcome{out, err}
	}()
	return done
}

// lockedSubscriptions: concurrentPair with a change to both tables pending.
func lockedSubscriptions(t *testing.T) *pair {
	t.Helper()
	p := concurrentPair(t)
	p.Src.ExecEach(t, "UPDATE kv SET v = 'changed' WHERE id < 50", "UPDATE ck SET v = -v WHERE a < 10")
	return p
}

// lockKV opens a transaction on the source that holds kv ACCESS EXCLUSIVE,
// as a TRUNCATE or ALTER TABLE would, and returns its connection.
func lockKV(t *testing.T, p *pair) *pgx.Conn {
	t.Helper()
	w := p.Src.Conn(t)
	pgtest.Begin(t, w, "LOCK TABLE kv IN ACCESS EXCLUSIVE MODE")
	return w
}

// tableError is the error an export reported for tbl ("" if none).
func tableError(r exportOutcome, tbl string) string {
	if e := r.out[tbl].Error; e != nil {
		return *e
	}
	return ""
}

// An application transaction TRUNCATEs ck, then kv. The export meanwhile
// shipped kv (its ACCESS SHARE lock on kv held until it commits) and came to
// ck: had it waited for ck, the TRUNCATE of kv would close a cycle, and with
// the writer's shorter deadlock_timeout PostgreSQL would abort the writer.
// The export skips ck instead (lock_not_available), so the writer waits at
// most for the export's commit and commits; the next export ships ck.
func TestExportNeverMakesWriterADeadlockVictim(t *testing.T) {
	t.Parallel()
	p := lockedSubscriptions(t)
	w := p.Src.Conn(t)
	pgtest.Begin(t, w, "SET LOCAL deadlock_timeout = '100ms'", "TRUNCATE ck")
	done := exportAlongside(p)
	// the export either finished or waits for ck
	var r exportOutcome
	finished := false
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		select {
		case r = <-done:
			finished = true
			return true, ""
		default:
		}
		waiting := p.Src.QueryInt(t, "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'ck'::regclass")
		return waiting > 0, "the export neither finished nor waits for ck"
	})
	if err := pgtest.RunErr(t, w, "TRUNCATE kv"); err != nil {
		t.Fatalf("the writer's TRUNCATE kv failed while an export ran: %s", pgtest.Describe(err))
	}
	pgtest.Run(t, w, "COMMIT")
	if !finished {
		r = <-done
	}
	if got := tableError(r, "ck"); !strings.Contains(got, "locked by another transaction") {
		t.Errorf("export while ck was truncated: error for ck %q, want it skipped as locked (all: %v)", got, r.err)
	}
	if got := tableError(r, "kv"); got != "" {
		t.Errorf("export while ck was truncated: kv failed: %s", got)
	}
	p.exportConverges(t)
}

// Exporter A fails kv (a transaction holds it) and goes on to ck, which it
// holds while the target is slow; exporter B then ships kv and waits for ck.
// A records kv's failure at its end: waiting for B's lock on kv's
// subscription would close a cycle between the two exports. It leaves the
// record to B, which ships kv now, and both exports succeed.
func TestTwoExportsRecordingAFailureDoNotDeadlock(t *testing.T) {
	t.Parallel()
	p := lockedSubscriptions(t)
	w := lockKV(t, p)
	target := p.Dst.Conn(t)
	pgtest.Begin(t, target, "LOCK TABLE ck IN ACCESS EXCLUSIVE MODE")
	a := exportAlongside(p)
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		waiting := p.Dst.QueryInt(t, "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'ck'::regclass")
		return waiting > 0, "export A does not wait for the target's ck"
	})
	pgtest.Run(t, w, "COMMIT")
	b := exportAlongside(p)
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		waiting := p.Src.QueryInt(t, "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')")
		return waiting > 0, "export B does not wait for ck's subscription"
	})
	pgtest.Run(t, target, "COMMIT")
	ra, rb := <-a, <-b
	if got := tableError(ra, "kv"); !strings.Contains(got, "locked by another transaction") {
		t.Errorf("export A: error for kv %q, want it skipped as locked", got)
	}
	for _, c := range []struct {
		name, tbl string
		r         exportOutcome
	}{{"A", "ck", ra}, {"B", "kv", rb}, {"B", "ck", rb}} {
		if c.r.out == nil {
			t.Errorf("export %s failed: %s", c.name, pgtest.Describe(c.r.err))
		} else if got := tableError(c.r, c.tbl); got != "" {
			t.Errorf("export %s: %s failed: %s", c.name, c.tbl, got)
		}
	}
	p.exportConverges(t)
}

// A table skipped as locked is only busy: however often that happens, its
// retry stays about 1 s away (a failure of the target backs off to 5
// minutes), and once the lock is gone the next export ships it.
func TestLockedTableIsRetriedSoon(t *testing.T) {
	t.Parallel()
	p := lockedSubscriptions(t)
	w := lockKV(t, p)
	for i := 0; i < 6; i++ {
		out, err := p.ExportErr(0)
		if out == nil {
			t.Fatalf("export %d with kv locked: %s", i, pgtest.Describe(err))
		}
		if got := tableError(exportOutcome{out, err}, "kv"); !strings.Contains(got, "locked by another transaction") {
			t.Fatalf("export %d with kv locked: error for kv %q, want it skipped as locked", i, got)
		}
	}
	var state string
	var attempts int
	var wait float64
	if err := p.Src.Conn(t).QueryRow(pgtest.Ctx(t), `SELECT e.sqlstate, e.attempts, extract(epoch FROM e.next_retry - e.last_seen)::float8
		  FROM pgshadow.error e JOIN pgshadow.subscription s ON s.id = e.sub_id WHERE s.tbl = 'kv'::regclass`).Scan(&state, &attempts, &wait); err != nil {
		t.Fatalf("reading kv's queued failure: %v", err)
	}
	if state != "55P03" || attempts != 6 {
		t.Errorf("kv's queued failure: sqlstate %s, %d attempts; want 55P03, 6", state, attempts)
	}
	if wait < 0.7 || wait > 1.3 {
		t.Errorf("kv's retry after 6 busy attempts is %.2f s after the last, want about 1 s", wait)
	}
	pgtest.Run(t, w, "COMMIT")
	p.exportConverges(t)
}
