// A copy or a batch being shipped shows how far it got in shadow_progress,
// to another session while the export runs, and only to roles that may
// SELECT the table.
package replication

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// progressSample is one reading of shadow_progress.
type progressSample struct {
	phase     string
	done      int64
	total     *int64
	estimated bool
}

// watchProgress runs export on the source and, from a second session, reads
// shadow_progress for tbl until the export returns; it returns the readings
// and what an unprivileged role saw there meanwhile.
func watchProgress(t *testing.T, p *pair, tbl string, export func() error) (seen []progressSample, strangerRows int64) {
	t.Helper()
	stranger := pgtest.NewRole(t, p.Src, "stranger", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	watcher := p.Src.Conn(t)
	other := p.Src.ConnAs(t, stranger, pgtest.RolePassword)

	var wg sync.WaitGroup
	var exportErr error
	finished := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		exportErr = export()
		close(finished)
	}()
	for {
		select {
		case <-finished:
			wg.Wait()
			if exportErr != nil {
				t.Fatalf("export: %s", pgtest.Describe(exportErr))
			}
			return seen, strangerRows
		default:
		}
		rows, err := watcher.Query(ctx, `SELECT phase, rows_done, rows_total, total_estimated FROM shadow_progress WHERE "table" = $1::regclass`, tbl)
		if err != nil {
			t.Fatalf("read shadow_progress: %s", pgtest.Describe(err))
		}
		s, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (progressSample, error) {
			var s progressSample
			return s, r.Scan(&s.phase, &s.done, &s.total, &s.estimated)
		})
		if err != nil {
			t.Fatalf("read shadow_progress: %s", pgtest.Describe(err))
		}
		seen = append(seen, s...)
		var n int64
		if err := other.QueryRow(ctx, "SELECT count(*) FROM shadow_progress").Scan(&n); err != nil {
			t.Fatalf("read shadow_progress as %s: %s", stranger, pgtest.Describe(err))
		}
		strangerRows += n
		time.Sleep(5 * time.Millisecond)
	}
}

// checkAdvances fails unless the readings show the phase, rows done growing
// through at least two values short of the total, and the total.
func checkAdvances(t *testing.T, what string, seen []progressSample, phase string, wantTotal int64, tolerance float64, estimated bool) {
	t.Helper()
	var partial []int64
	last := int64(-1)
	for _, s := range seen {
		if s.phase != phase || s.total == nil || s.estimated != estimated {
			t.Fatalf("%s: shadow_progress showed %+v, want phase %s with a total (estimated %v)", what, s, phase, estimated)
		}
		if d := float64(*s.total - wantTotal); d > tolerance*float64(wantTotal) || -d > tolerance*float64(wantTotal) {
			t.Fatalf("%s: rows_total %d, want %d", what, *s.total, wantTotal)
		}
		if s.done < last {
			t.Fatalf("%s: rows_done went back from %d to %d", what, last, s.done)
		}
		if s.done != last && s.done < *s.total {
			partial = append(partial, s.done)
		}
		last = s.done
	}
	t.Logf("%s: %d readings, rows_done went through %v", what, len(seen), partial)
	if len(partial) < 2 {
		t.Errorf("%s: shadow_progress showed rows_done %v, want it to advance through at least two values below the total", what, partial)
	}
}

func TestProgressOfCopyAndBatchIsWatchable(t *testing.T) {
	t.Parallel()
	const rows = 300000
	p := newPair(t)
	p.Both(t, "CREATE TABLE big (id int PRIMARY KEY, v text)")
	p.Src.Exec(t, "INSERT INTO big SELECT g, repeat('x', 50) || g FROM generate_series(1, $1) g", rows)
	p.Src.Exec(t, "ANALYZE big")
	// tracking and subscribing in one transaction leaves the copy to the export
	p.Src.Exec(t, "SELECT shadow_track('big'); SELECT shadow_subscribe('t1', 'big')")
	if !p.Src.QueryVal(t, "SELECT needs_copy FROM pgshadow.subscription").(bool) {
		t.Fatal("the subscribe copied the table, want the copy left to the export")
	}

	seen, stranger := watchProgress(t, p, "big", func() error { _, err := p.ExportErr(0); return err })
	checkAdvances(t, "initial copy", seen, "copy", rows, 0.1, true)
	if stranger != 0 {
		t.Errorf("a role without SELECT on big saw %d rows of shadow_progress", stranger)
	}
	p.Same(t, "big", "big")

	p.Src.Exec(t, "UPDATE big SET v = 'changed' WHERE id <= 80000")
	seen, _ = watchProgress(t, p, "big", func() error { _, err := p.ExportErr(0); return err })
	checkAdvances(t, "batch", seen, "batch", 80000, 0, false)
	p.Same(t, "big", "big")
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM shadow_progress"); n != 0 {
		t.Errorf("shadow_progress shows %d rows after the exports", n)
	}
}
