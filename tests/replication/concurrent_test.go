// Concurrent writers and exporters: whatever order transactions start,
// commit and roll back in, and however exports interleave with them, a final
// export leaves the target equal to the source.
package replication

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// concurrentDDL: a single-column key and a composite key with a text part,
// both of which the writers update.
const concurrentDDL = `
CREATE TABLE kv (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0);
CREATE TABLE ck (a int, b text, v int, PRIMARY KEY (a, b));`

// writeOps are the statements writers pick from at random; $1 and $2 are
// random small integers (a statement without $1 gets no parameters). Some fail on purpose (unique violations of key
// updates); a failed statement aborts its transaction like in an application.
var writeOps = []string{
	"INSERT INTO kv VALUES ($1, 'ins', $2) ON CONFLICT DO NOTHING",
	"INSERT INTO kv VALUES ($1, 'upsert', $2) ON CONFLICT (id) DO UPDATE SET v = 'upserted', n = kv.n + 1",
	"INSERT INTO kv SELECT g, 'multi', $2 FROM generate_series($1::int, $1::int + 5) g ON CONFLICT DO NOTHING",
	"UPDATE kv SET v = md5(random()::text), n = n + 1 WHERE id BETWEEN $1 AND $1::int + $2::int % 4",
	"UPDATE kv SET id = $2::int + 600 WHERE id = $1",
	"UPDATE kv SET id = id + 1 WHERE id = $1 AND $2::int >= 0",
	"DELETE FROM kv WHERE id = $1 AND $2::int >= 0",
	"DELETE FROM kv WHERE id BETWEEN $1 AND $1::int + $2::int % 3",
	"INSERT INTO ck VALUES ($1 % 50, 'k' || $2 % 20, $2) ON CONFLICT DO NOTHING",
	"UPDATE ck SET b = b || 'x' WHERE a = $1 % 50 AND length(b) < 8 AND $2::int >= 0",
	"UPDATE ck SET a = a + 50 WHERE a = $1 % 50 AND b = 'k' || $2 % 20",
	"UPDATE ck SET v = v + 1 WHERE a = $1 % 100 AND $2::int >= 0",
	"DELETE FROM ck WHERE a = $1 % 100 AND b LIKE 'k' || $2 % 5 || '%'",
}

// writer runs random statements on its own connection until stop, a third of
// the time inside a long transaction that mostly commits, sometimes rolls back.
func writer(ctx context.Context, dsn string, ops []string, rng *rand.Rand, stop <-chan struct{}, stmts *atomic.Int64) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("writer connect: %w", err)
	}
	defer conn.Close(context.Background())
	exec := func(sql string, args ...any) error {
		_, err := conn.Exec(ctx, sql, args...)
		stmts.Add(1)
		return err
	}
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		op := func() error {
			sql := ops[rng.IntN(len(ops))]
			if !strings.Contains(sql, "$1") {
				return exec(sql)
			}
			return exec(sql, rng.IntN(500), rng.IntN(500))
		}
		if rng.IntN(3) > 0 {
			if err := expected(op()); err != nil {
				return err
			}
			continue
		}
		if err := exec("BEGIN"); err != nil {
			return err
		}
		var failed error
		for i, n := 0, 3+rng.IntN(15); i < n && failed == nil; i++ {
			failed = op()
			time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		}
		end := "COMMIT"
		if failed != nil || rng.IntN(8) == 0 {
			end = "ROLLBACK"
		}
		if err := exec(end); err != nil {
			return err
		}
		if err := expected(failed); err != nil {
			return err
		}
	}
}

// expected filters the errors a random workload provokes on purpose (40001:
// a row another writer moved to another partition; 40P01: writers that
// TRUNCATE inside long transactions deadlock with each other). Whether an
// export was in a writer's cycle only the server log tells
// (exportInDeadlock).
func expected(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "40P01" || pgErr.Code == "40001") {
		return nil
	}
	return err
}

// exportInDeadlock returns the source server's reports of deadlocks in db
// whose cycle held a shadow_export call: the log's DETAIL names every
// process of the cycle with its statement (the client's only the first).
func exportInDeadlock(db *pgtest.DB) []string {
	var found []string
	report, inDB := "", false
	for _, l := range strings.Split(db.Server.LogTail(math.MaxInt32), "\n") {
		if strings.HasPrefix(l, "\t") && report != "" {
			report += "\n" + l
			continue
		}
		if inDB && strings.Contains(report, "shadow_export") {
			found = append(found, report)
		}
		report, inDB = "", false
		if strings.Contains(l, "DETAIL:  Process ") {
			report, inDB = l, strings.Contains(l, "@"+db.Name+" ")
		}
	}
	return found
}

// Several sessions insert, update, delete and change primary keys at random,
// some in long transactions, while exports run in a loop alongside; after a
// final export both tables are equal on both sides.
func TestConcurrentWritersAndExportsConverge(t *testing.T) {
	t.Parallel()
	p := concurrentPair(t)
	runWorkload(t, p, writeOps)
	p.exportConverges(t)
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM kv WHERE id > 600"); n == 0 {
		t.Errorf("scenario broken: no primary key update of kv committed")
	}
}

// The same workload with rare TRUNCATEs and a row filter: batches holding a
// truncate (shipped as truncate + copy) and rows moving in and out of the
// filter interleave with the other writers' transactions.
func TestConcurrentWritersWithTruncateAndFilterConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("a second randomized workload")
	}
	t.Parallel()
	p := newPair(t)
	p.Both(t, concurrentDDL)
	seedConcurrent(t, p)
	p.Subscribe(t, "kv", "row_filter => 'n % 3 <> 1'")
	p.Subscribe(t, "ck")
	p.Src.Exec(t, "CREATE TABLE truncs (at timestamptz DEFAULT clock_timestamp())")
	// one TRUNCATE among 5 copies of the other statements keeps it rare
	ops := []string{"TRUNCATE ck; INSERT INTO truncs DEFAULT VALUES"}
	for i := 0; i < 5; i++ {
		ops = append(ops, writeOps...)
	}
	runWorkload(t, p, ops)
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM truncs"); n == 0 {
		t.Errorf("scenario broken: no TRUNCATE committed")
	} else {
		t.Logf("%d truncates committed", n)
	}
	p.Export(t)
	p.Same(t, "(SELECT * FROM kv WHERE n % 3 <> 1)", "kv")
	p.Same(t, "ck", "ck")
}

// concurrentPair: kv and ck on both sides, seeded and subscribed (kv first,
// so an export ships kv, then ck).
func concurrentPair(t *testing.T) *pair {
	t.Helper()
	p := newPair(t)
	p.Both(t, concurrentDDL)
	seedConcurrent(t, p)
	p.Subscribe(t, "kv")
	p.Subscribe(t, "ck")
	return p
}

// exportConverges runs a final export and checks that kv and ck are equal on
// both sides.
func (p *pair) exportConverges(t *testing.T) {
	t.Helper()
	p.Export(t)
	p.Same(t, "kv", "kv")
	p.Same(t, "ck", "ck")
}

// seedConcurrent fills both tables before they are subscribed.
func seedConcurrent(t *testing.T, p *pair) {
	t.Helper()
	p.Src.Exec(t, "INSERT INTO kv SELECT g, 'seed', g FROM generate_series(1, 300, 2) g")
	p.Src.Exec(t, "INSERT INTO ck SELECT g % 50, 'k' || g % 20, g FROM generate_series(1, 200) g ON CONFLICT DO NOTHING")
}

// runWorkload runs random writers over ops for a few seconds with exports in
// a loop alongside, and returns once all of them have stopped.
func runWorkload(t *testing.T, p *pair, ops []string) {
	t.Helper()
	duration := 7 * time.Second
	if testing.Short() {
		duration = 3 * time.Second
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	ctx, cancel := context.WithTimeout(context.Background(), duration+time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stmts atomic.Int64
	errs := make(chan error, 16)
	const writers = 5
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := writer(ctx, p.Src.ConnString(), ops, rand.New(rand.NewPCG(seed, uint64(w))), stop, &stmts); err != nil {
				errs <- fmt.Errorf("writer %d: %s", w, pgtest.Describe(err))
			}
		}()
	}
	// two exporters: they must serialize on the watermark, never ship twice
	// or skip a batch between them
	var exports, skips atomic.Int64
	for e := uint64(0); e < 2; e++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, writers+e))
			for {
				select {
				case <-stop:
					return
				default:
				}
				// small batches too, so backlogs get cut while writers run
				out, err := p.ExportErr([]int{0, 7, 50}[rng.IntN(3)])
				if err != nil && !onlyLocked(out, err) {
					errs <- fmt.Errorf("exporter %d during the workload: %s", e, pgtest.Describe(err))
					return
				}
				if err != nil {
					// a writer's TRUNCATE held or awaited ck: the export did
					// not wait for it, nothing of ck moved, and the next
					// export ships it; the final comparison checks that
					skips.Add(1)
				} else {
					exports.Add(1)
				}
				time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
			}
		}()
	}
	time.Sleep(duration)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, r := range exportInDeadlock(p.Src) {
		t.Errorf("a deadlock's cycle held an export:\n%s", r)
	}
	t.Logf("%d statements, %d exports during the workload shipped all tables, %d skipped a locked table",
		stmts.Load(), exports.Load(), skips.Load())
	if exports.Load() < 3 {
		t.Errorf("only %d exports ran alongside the writers, want several", exports.Load())
	}

}

// onlyLocked: every table an export did not ship (out, or the error of a
// call that shipped none) was skipped because another transaction held or
// awaited a lock on it that an export does not wait for.
func onlyLocked(out map[string]exported, err error) bool {
	var msgs []string
	for _, r := range out {
		if r.Error != nil {
			msgs = append(msgs, *r.Error)
		}
	}
	var pgErr *pgconn.PgError
	if out == nil && errors.As(err, &pgErr) {
		msgs = strings.Split(pgErr.Message, "\n")
	}
	for _, m := range msgs {
		if !strings.Contains(m, "is locked by another transaction") {
			return false
		}
	}
	return len(msgs) > 0
}
