// Async mode: shadow_run ships each async subscription in its own
// transaction; a failure goes to the error queue (shadow_errors) and is
// retried in order, and later changes of that table wait behind it.
package modes

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// queued is a subscription's row in shadow_errors.
type queued struct {
	sqlstate, message   string
	attempts            int
	firstSeen, lastSeen time.Time
}

// errorQueue returns the shadow_errors row of (t1, tbl), or nil if there is none.
func errorQueue(t *testing.T, d *pgtest.DB, tbl string) *queued {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := d.Pool.Query(ctx, `SELECT sqlstate, message, attempts, first_seen, last_seen FROM shadow_errors
		WHERE target = $1 AND "table" = $2::regclass`, target, tbl)
	if err != nil {
		t.Fatalf("read shadow_errors: %s", pgtest.Describe(err))
	}
	defer rows.Close()
	var q *queued
	for rows.Next() {
		q = &queued{}
		if err := rows.Scan(&q.sqlstate, &q.message, &q.attempts, &q.firstSeen, &q.lastSeen); err != nil {
			t.Fatalf("read shadow_errors: %v", err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read shadow_errors: %s", pgtest.Describe(err))
	}
	return q
}

// wantQueued fails unless tbl has a queued error whose SQLSTATE starts with
// sqlstatePrefix, with the given attempt count and a message naming the
// target and each of wants.
func wantQueued(t *testing.T, d *pgtest.DB, tbl, sqlstatePrefix string, attempts int, wants ...string) *queued {
	t.Helper()
	q := errorQueue(t, d, tbl)
	if q == nil {
		t.Fatalf("shadow_errors has no row for %s on target %s, want one (SQLSTATE %s*, %d attempts)",
			tbl, target, sqlstatePrefix, attempts)
	}
	if !strings.HasPrefix(q.sqlstate, sqlstatePrefix) || len(q.sqlstate) != 5 {
		t.Errorf("shadow_errors for %s: SQLSTATE %q, want %s*", tbl, q.sqlstate, sqlstatePrefix)
	}
	if q.attempts != attempts {
		t.Errorf("shadow_errors for %s: %d attempts, want %d", tbl, q.attempts, attempts)
	}
	for _, w := range append([]string{`target "` + target + `"`}, wants...) {
		if !strings.Contains(q.message, w) {
			t.Errorf("shadow_errors for %s: message does not mention %q: %s", tbl, w, q.message)
		}
	}
	return q
}

// wantNoQueued fails if tbl has a queued error.
func wantNoQueued(t *testing.T, d *pgtest.DB, tbl string) {
	t.Helper()
	if q := errorQueue(t, d, tbl); q != nil {
		t.Fatalf("shadow_errors still holds %s: SQLSTATE %s, %d attempts: %s", tbl, q.sqlstate, q.attempts, q.message)
	}
}

// appliedLogSQL logs, on the target, every value applied to a key in apply
// order (an untracked side table).
const appliedLogSQL = `
CREATE TABLE applied (seq bigserial PRIMARY KEY, k int, v int);
CREATE FUNCTION log_applied() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $f$
BEGIN INSERT INTO applied (k, v) VALUES (NEW.k, NEW.v); RETURN NULL; END $f$;
CREATE TRIGGER log_applied AFTER INSERT ON kv FOR EACH ROW EXECUTE FUNCTION log_applied();`

// A target that is down for 1,000 writing transactions (inserts, updates of
// the same keys, deletes): no writer fails or waits, shadow_run queues the
// failure with its SQLSTATE, attempts and times, the watermark does not move
// while it fails, and once the target is back shadow_retry converges, with
// the key every transaction updated at its last value.
func TestAsyncTargetDownQueuesThenConverges(t *testing.T) {
	d := pgtest.Server("d")
	p := newPair(t, pgtest.Server("a"), d)
	restartAtCleanup(t, d)
	p.Both(t, "CREATE TABLE kv (k int PRIMARY KEY, v int)")
	p.Dst.Exec(t, appliedLogSQL)
	p.Src.Exec(t, "INSERT INTO kv VALUES (0, 0)")
	p.Subscribe(t, "kv", "mode => 'async'")
	p.Same(t, "kv")

	if err := d.Kill(); err != nil {
		t.Fatalf("%v", err)
	}
	w := p.Src.Conn(t)
	var slowest time.Duration
	for i := 1; i <= 1000; i++ {
		k := 1 + i%50
		change := fmt.Sprintf("INSERT INTO kv VALUES (%d, %d) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v", k, i)
		if i%7 == 0 {
			change = fmt.Sprintf("DELETE FROM kv WHERE k = %d", k)
		}
		start := time.Now()
		if err := execErr(w, fmt.Sprintf("BEGIN; UPDATE kv SET v = %d WHERE k = 0; %s; COMMIT", i, change)); err != nil {
			t.Fatalf("writer transaction %d failed while the async target is down: %s", i, pgtest.Describe(err))
		}
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("1000 writer transactions with the target down: slowest took %s", slowest.Round(time.Microsecond))
	if slowest > time.Second {
		t.Errorf("a writer transaction took %s while the async target was down, want it not to wait on the target", slowest)
	}

	wm := watermark(t, p.Src, target, "kv")
	p.Src.Exec(t, "CALL shadow_run()")
	q1 := wantQueued(t, p.Src, "kv", "08", 1)
	if d := q1.lastSeen.Sub(q1.firstSeen); d < 0 || d > time.Millisecond {
		t.Errorf("first failure: first_seen %s, last_seen %s, want the same moment", q1.firstSeen, q1.lastSeen)
	}
	// not due yet (the first retry waits 1 s), unless this machine is that slow
	due := p.Src.QueryInt(t, "SELECT (next_retry <= clock_timestamp() + interval '200 ms')::int FROM shadow_errors")
	p.Src.Exec(t, "CALL shadow_run()")
	if due == 0 {
		wantQueued(t, p.Src, "kv", "08", 1)
	}
	p.Src.Exec(t, "CALL shadow_retry($1)", target)
	q2 := wantQueued(t, p.Src, "kv", "08", 2)
	if !q2.lastSeen.After(q1.lastSeen) || !q2.firstSeen.Equal(q1.firstSeen) {
		t.Errorf("after a retry: first_seen %s -> %s, last_seen %s -> %s; want first_seen kept and last_seen later",
			q1.firstSeen, q2.firstSeen, q1.lastSeen, q2.lastSeen)
	}
	if got := watermark(t, p.Src, target, "kv"); got != wm {
		t.Fatalf("the watermark moved while the target was down: %s -> %s", wm, got)
	}

	if err := d.Restart(context.Background()); err != nil {
		t.Fatalf("%v", err)
	}
	p.Src.Exec(t, "CALL shadow_retry($1)", target)
	wantNoQueued(t, p.Src, "kv")
	p.Same(t, "kv")
	if v := p.Dst.QueryInt(t, "SELECT v FROM kv WHERE k = 0"); v != 1000 {
		t.Errorf("key 0, updated by every transaction, is %d on the target, want 1000", v)
	}
	if got := watermark(t, p.Src, target, "kv"); got == wm {
		t.Errorf("the watermark did not move after the target came back and shipped: %s", got)
	}
	// Net change ships each key once, at its current value; no value of key 0
	// may be applied after a later one.
	var applied []int
	for _, v := range p.Dst.QueryStrings(t, "SELECT v FROM applied WHERE k = 0 ORDER BY seq") {
		n, _ := strconv.Atoi(v)
		applied = append(applied, n)
	}
	if !slices.IsSorted(applied) {
		t.Errorf("values of key 0 applied on the target out of order: %v", applied)
	}
}

// A batch the target refuses for good (a constraint only the target has)
// stays queued across retries; later changes of that table do not overtake
// it, while other tables of the same target still ship. shadow_skip records
// the skip and the table ships again afterwards.
func TestAsyncPoisonedBatchBlocksItsTableUntilSkipped(t *testing.T) {
	t.Parallel()
	p := newPair(t, pgtest.Server("a"), pgtest.Server("b"))
	p.Both(t, "CREATE TABLE kv (k int PRIMARY KEY, v int); CREATE TABLE other (k int PRIMARY KEY, v int)")
	p.Dst.Exec(t, "ALTER TABLE kv ADD CONSTRAINT no_negative CHECK (v >= 0)")
	p.Subscribe(t, "kv", "mode => 'async'")
	p.Subscribe(t, "other", "mode => 'async'")

	p.Src.Exec(t, "INSERT INTO kv VALUES (1, -1)")
	p.Src.Exec(t, "CALL shadow_run()")
	wantQueued(t, p.Src, "kv", "23514", 1, "no_negative")
	wm := watermark(t, p.Src, target, "kv")

	p.Src.Exec(t, "INSERT INTO kv VALUES (2, 2)")
	p.Src.Exec(t, "INSERT INTO other VALUES (1, 1)")
	p.Src.Exec(t, "CALL shadow_retry($1)", target)
	wantQueued(t, p.Src, "kv", "23514", 2, "no_negative")
	wantRows(t, p.Dst, "kv") // key 2 waits behind the poisoned batch
	wantRows(t, p.Dst, "other", "(1,1)")
	wantNoQueued(t, p.Src, "other")
	if got := watermark(t, p.Src, target, "kv"); got != wm {
		t.Fatalf("the watermark of kv moved past a failed batch: %s -> %s", wm, got)
	}

	if n := p.Src.QueryInt(t, "SELECT shadow_skip($1, 'kv', 'negative v refused by the target')", target); n != 2 {
		t.Errorf("shadow_skip returned %d keys, want 2 (keys 1 and 2)", n)
	}
	got := p.Src.QueryString(t, `SELECT format('%s|%s|%s|%s|%s', target, tbl, keys, reason, skipped_by = current_user)
		FROM pgshadow.skipped`)
	if want := "t1|kv|2|negative v refused by the target|t"; got != want {
		t.Errorf("pgshadow.skipped: %q, want %q", got, want)
	}
	if e := p.Src.QueryString(t, "SELECT coalesce(error, '<none>') FROM pgshadow.skipped"); !strings.Contains(e, "no_negative") {
		t.Errorf("pgshadow.skipped does not keep the error it cleared: %s", e)
	}
	wantNoQueued(t, p.Src, "kv")

	p.Src.Exec(t, "UPDATE kv SET v = 22 WHERE k = 2")
	p.Src.Exec(t, "INSERT INTO kv VALUES (3, 3)")
	p.Src.Exec(t, "CALL shadow_run()")
	wantNoQueued(t, p.Src, "kv")
	wantRows(t, p.Dst, "kv", "(2,22)", "(3,3)")
}

// Async mode and a column added on the source of a subscription to all
// columns: shadow_run queues the table's failure (SQLSTATE 42703, naming the
// column and the fix) and holds its watermark; once the target has the
// column, shadow_retry ships what was written meanwhile, with the column.
func TestAsyncAddedColumnQueuesUntilTheTargetHasIt(t *testing.T) {
	t.Parallel()
	p := newPair(t, pgtest.Server("a"), pgtest.Server("b"))
	p.Both(t, "CREATE TABLE kv (k int PRIMARY KEY, v int)")
	p.Src.Exec(t, "INSERT INTO kv SELECT g, g FROM generate_series(1, 5) g")
	p.Subscribe(t, "kv", "mode => 'async'")
	p.Src.Exec(t, "ALTER TABLE kv ADD COLUMN note text; UPDATE kv SET note = 'n' || k WHERE k <= 2")
	wm := watermark(t, p.Src, target, "kv")
	p.Src.Exec(t, "CALL shadow_run()")
	wantQueued(t, p.Src, "kv", "42703", 1, "ALTER TABLE public.kv ADD COLUMN note text")
	if got := watermark(t, p.Src, target, "kv"); got != wm {
		t.Errorf("the watermark moved from %s to %s while the target lacked the column", wm, got)
	}
	p.Src.Exec(t, "UPDATE kv SET note = 'later', v = 0 WHERE k = 3")
	p.Dst.Exec(t, "ALTER TABLE kv ADD COLUMN note text")
	p.Src.Exec(t, "CALL shadow_retry($1)", target)
	wantNoQueued(t, p.Src, "kv")
	p.Same(t, "kv")
}
