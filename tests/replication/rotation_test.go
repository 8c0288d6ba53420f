package replication

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// A shadow table that writers never leave idle is still emptied without row
// deletes: it has two partitions, and each export's purge truncates the one
// writers left once everything in it is shipped. Its size stays bounded over
// many cycles (logged), no dead rows are left, it empties once writes stop,
// and nothing written meanwhile is lost.
func TestBusyShadowTableIsRotatedNotBloated(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, v int)", "INSERT INTO tbl SELECT g, 0 FROM generate_series(1, 5000) g")

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a writer that never stops during the cycles
		defer wg.Done()
		for i := 10000; ctx.Err() == nil; i++ {
			if _, err := p.Src.Pool.Exec(ctx, "INSERT INTO tbl VALUES ($1, 1)", i); err != nil && ctx.Err() == nil {
				t.Errorf("busy writer: %v", err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	rows := func() int64 { return p.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.public__tbl") }
	size := func() int64 {
		return p.Src.QueryInt(t, "SELECT pg_total_relation_size('pgshadow.public__tbl_g0') + pg_total_relation_size('pgshadow.public__tbl_g1')")
	}
	// Writers append to the partition the catalog calls current: its
	// generation is written into the table's capture function, which every
	// switch replaces. A function left behind would keep writers in the
	// partition the purge waits to see drained, and the shadow would grow.
	landsInCurrent := func(id int) {
		t.Helper()
		p.Src.Exec(t, fmt.Sprintf("INSERT INTO tbl VALUES (%d, 2)", id))
		gen := p.Src.QueryInt(t, "SELECT gen FROM pgshadow.tracked WHERE tbl = 'tbl'::regclass")
		if got := p.Src.QueryInt(t, fmt.Sprintf("SELECT shadow_gen FROM pgshadow.public__tbl WHERE id = %d", id)); got != gen {
			t.Errorf("key %d was captured into generation %d, the catalog's current generation is %d", id, got, gen)
		}
	}
	gens := map[int64]bool{}
	var firstRows, mostRows, firstSize, lastSize int64
	for cycle := 1; cycle <= 30; cycle++ {
		gens[p.Src.QueryInt(t, "SELECT gen FROM pgshadow.tracked WHERE tbl = 'tbl'::regclass")] = true
		landsInCurrent(-cycle)
		p.Src.Exec(t, fmt.Sprintf("UPDATE tbl SET v = v + 1 WHERE id %% 30 = %d", cycle%30))
		n := rows()
		if cycle == 1 {
			firstRows, firstSize = n, size()
		}
		mostRows = max(mostRows, n)
		lastSize = size()
		p.Export(t)
	}
	stop()
	wg.Wait()

	// Before an export the shadow holds this cycle's changes and at most the
	// previous cycle's; only logged, because other tests' transactions on the
	// same server can hold the cluster-wide xmin, and so the purge, back.
	t.Logf("shadow rows before an export: %d at the first cycle, at most %d; size %d bytes first, %d last",
		firstRows, mostRows, firstSize, lastSize)
	if len(gens) != 2 {
		t.Errorf("writers appended to generations %v over 30 export cycles, want both (the purge never switched)", gens)
	}
	pgtest.Eventually(t, 60*time.Second, func() (bool, string) {
		p.Export(t)
		n := rows()
		return n == 0, fmt.Sprintf("%d shadow rows left after the writer stopped and everything shipped, want 0", n)
	})
	// counted in the heap itself, not from (lagging) statistics
	p.Src.Exec(t, "CREATE EXTENSION IF NOT EXISTS pgstattuple")
	if dead := p.Src.QueryInt(t, `SELECT (SELECT dead_tuple_count FROM pgstattuple('pgshadow.public__tbl_g0'))
		+ (SELECT dead_tuple_count FROM pgstattuple('pgshadow.public__tbl_g1'))`); dead != 0 {
		t.Errorf("the shadow partitions hold %d dead rows: rows were deleted instead of truncated", dead)
	}
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}
