package replication

// A first subscribe and a resync keep the application running: writers of the
// source table never wait for a copy, and readers of the target keep seeing
// the old rows until the new ones commit. Each target table here sleeps a
// second per INSERT statement, so a copy of several chunks takes seconds.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

const slowTargetDDL = `
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
CREATE TRIGGER slow AFTER INSERT ON tbl FOR EACH STATEMENT EXECUTE FUNCTION slow();`

// writeWaits inserts one row every 100 ms until stop closes and returns the
// longest time one INSERT took.
func writeWaits(t *testing.T, p *pair, first int, stop <-chan struct{}) (longest time.Duration, next int) {
	t.Helper()
	c := p.Src.Conn(t)
	next = first
	for {
		select {
		case <-stop:
			return longest, next
		case <-time.After(100 * time.Millisecond):
		}
		start := time.Now()
		mustExec(t, c, fmt.Sprintf("INSERT INTO tbl VALUES (%d, 'during')", next))
		if d := time.Since(start); d > longest {
			longest = d
		}
		next++
	}
}

// On 0.1.1 the first subscribe of an untracked table copied it in the
// transaction that created the capture triggers, whose lock kept every
// writer waiting for the whole copy (5 s for 1M rows).
func TestFirstSubscribeDoesNotKeepWritersWaitingForTheCopy(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Both(t, tblDDL)
	p.Dst.Exec(t, slowTargetDDL)
	p.Src.Exec(t, "INSERT INTO tbl SELECT g, 'old' FROM generate_series(1, 70000) g")

	stop := make(chan struct{})
	var longest time.Duration
	var next int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); longest, next = writeWaits(t, p, 1000001, stop) }()
	time.Sleep(300 * time.Millisecond)
	copied := p.Src.QueryInt(t, "SELECT shadow_subscribe($1, 'tbl')", targetName)
	// the copy, made by the first export; writers go on meanwhile
	exported := p.Export(t)["tbl"]
	close(stop)
	wg.Wait()
	if copied != 0 {
		t.Errorf("shadow_subscribe of an untracked table copied %d rows in the tracking transaction", copied)
	}
	if exported.Upserts < 70000 {
		t.Errorf("the first export copied %d rows, want at least 70000", exported.Upserts)
	}
	if longest > 2*time.Second {
		t.Errorf("a writer waited %v during subscribe and the copy (3 chunks of a second each)", longest)
	}
	if next == 1000001 {
		t.Fatalf("no write happened during the copy")
	}
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}

// On 0.1.1 the initial copy and shadow_resync emptied the target table with
// TRUNCATE, so its readers waited for the whole reload (4.1 s for 1M rows).
func TestResyncKeepsTheTargetReadable(t *testing.T) {
	t.Parallel()
	p := subscribed(t, tblDDL,
		"INSERT INTO tbl SELECT g, 'old' FROM generate_series(1, 45000) g")
	p.Dst.Exec(t, slowTargetDDL)
	p.Src.Exec(t, "UPDATE tbl SET v = 'new'")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := p.Src.Pool.Exec(ctx, "SELECT shadow_resync($1, 'tbl')", targetName)
		done <- err
	}()
	// watch the copy's progress from another session while it runs
	var progress string
	for i := 0; i < 40 && progress == ""; i++ {
		time.Sleep(100 * time.Millisecond)
		progress = p.Src.QueryString(t, `SELECT coalesce(max(application_name), '') FROM pg_stat_activity
			WHERE datname = current_database() AND application_name LIKE 'pgshadow copy%'`)
	}
	start := time.Now()
	n := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl WHERE v = 'old'")
	waited := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("shadow_resync: %s", pgtest.Describe(err))
	}
	if waited > 1500*time.Millisecond || n != 45000 {
		t.Errorf("a reader of the target waited %v and saw %d old rows during the resync, want no wait and 45000", waited, n)
	}
	if progress == "" {
		t.Errorf("no session showed the copy's progress in pg_stat_activity")
	}
	p.Same(t, "tbl", "tbl")
}
