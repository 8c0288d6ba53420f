// A target nobody exports to any more must not fill the source's disk: past
// pgshadow.max_backlog_age its subscription stops holding shadow rows back
// and needs a full copy, which its next export makes; the other targets of
// the table are never affected, and nothing is lost.
package replication

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// backlog is a source table "tbl" (2000 rows) shipped to the healthy push
// target t1 and to a second target that stops being exported to.
type backlog struct {
	*pair
	Dead     *pgtest.DB // the database the second target writes
	session  *pgx.Conn  // the exporting session, whose warnings are kept
	mu       sync.Mutex
	warnings []string
}

func newBacklog(t *testing.T) *backlog {
	t.Helper()
	b := &backlog{pair: newPair(t), Dead: pgtest.NewDB(t, pgtest.Server("target"))}
	b.Both(t, tblDDL)
	b.Dead.Exec(t, tblDDL)
	b.Src.Exec(t, "INSERT INTO tbl SELECT g, 'v' || g FROM generate_series(1, 2000) g")
	b.Subscribe(t, "tbl")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(b.Src.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if n.Severity == "WARNING" {
			b.mu.Lock()
			b.warnings = append(b.warnings, n.Message+" ("+n.Detail+")")
			b.mu.Unlock()
		}
	}
	if b.session, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.session.Close(context.Background()) })
	return b
}

// setBound sets pgshadow.max_backlog_age in the exporting session.
func (b *backlog) setBound(t *testing.T, age string) {
	t.Helper()
	mustExec(t, b.session, "SELECT set_config('pgshadow.max_backlog_age', $1, false)", age)
}

// round changes 1000 keys and exports to the healthy target from the
// exporting session (whose purge applies the bound); t1 must then equal the
// source.
func (b *backlog) round(t *testing.T, i int) {
	t.Helper()
	b.Src.Exec(t, fmt.Sprintf("UPDATE tbl SET v = 'round %d' WHERE id <= 1000", i))
	b.exportHealthy(t)
}

func (b *backlog) exportHealthy(t *testing.T) {
	t.Helper()
	var failed *string
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.session.QueryRow(ctx, "SELECT error FROM shadow_export($1)", targetName).Scan(&failed); err != nil {
		t.Fatalf("shadow_export(%q): %s", targetName, pgtest.Describe(err))
	}
	if failed != nil {
		t.Fatalf("shadow_export(%q): %s", targetName, *failed)
	}
	b.Same(t, "tbl", "tbl")
}

// shadowRows counts the rows of tbl's shadow table (both partitions).
func (b *backlog) shadowRows(t *testing.T) int64 {
	t.Helper()
	return b.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.public__tbl")
}

// state is a subscription's marking as shadow_status shows it.
func (b *backlog) state(t *testing.T, target string) string {
	t.Helper()
	return b.Src.QueryString(t, `SELECT format('needs_copy=%s dropped=%s reason=%s', needs_copy::text,
		(backlog_dropped_at IS NOT NULL)::text, coalesce(backlog_dropped_reason, '-'))
		FROM shadow_status WHERE target = $1 AND "table" = 'tbl'::regclass`, target)
}

const unmarked = "needs_copy=false dropped=false reason=-"

func (b *backlog) takeWarnings() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.warnings
	b.warnings = nil
	return w
}

// drained waits until the shadow table is empty: the purge of the last
// export empties it, unless a busy partition (autovacuum) postponed that to
// the next export's purge. It returns the row counts seen.
func (b *backlog) drained(t *testing.T, what string) []int64 {
	t.Helper()
	var seen []int64
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := b.shadowRows(t)
		seen = append(seen, n)
		if n == 0 {
			return true, ""
		}
		b.exportHealthy(t)
		return false, fmt.Sprintf("%s: the shadow still holds %d rows", what, n)
	})
	return seen
}

// underThenOver runs the scenario both target kinds share: under a bound of
// an hour the dead subscription holds every change (the shadow grows by
// 1000 rows a round) and is never marked; past a bound of a second, the
// next purge marks it, warns, and the shadow empties; the healthy target
// is unaffected throughout.
func (b *backlog) underThenOver(t *testing.T, dead string) {
	t.Helper()
	b.setBound(t, "1h")
	var sizes []int64
	for i := 1; i <= 4; i++ {
		b.round(t, i)
		sizes = append(sizes, b.shadowRows(t))
		if got := b.state(t, dead); got != unmarked {
			t.Fatalf("round %d, under the bound: %q is marked: %s", i, dead, got)
		}
		if i > 1 && sizes[i-1] < sizes[i-2]+1000 {
			t.Errorf("round %d: shadow rows %v; want 1000 more each round while %q holds them", i, sizes, dead)
		}
	}
	if w := b.takeWarnings(); len(w) > 0 {
		t.Errorf("warnings under the bound: %q", w)
	}
	t.Logf("shadow rows under the bound, after each round: %v", sizes)

	time.Sleep(1500 * time.Millisecond) // the first round's changes are now over a second old
	b.setBound(t, "1s")
	b.round(t, 5)
	got := b.state(t, dead)
	if !strings.HasPrefix(got, "needs_copy=true dropped=true reason=oldest unshipped change") ||
		!strings.Contains(got, "pgshadow.max_backlog_age 00:00:01") {
		t.Fatalf("past the bound, %q: %s; want needs_copy, backlog_dropped_at and the reason", dead, got)
	}
	if got := b.state(t, targetName); got != unmarked {
		t.Errorf("the healthy target %q is marked: %s", targetName, got)
	}
	w := b.takeWarnings()
	if len(w) != 1 || !strings.Contains(w[0], `target "`+dead+`" has not taken the changes of public.tbl`) {
		t.Errorf("warnings when the backlog was dropped: %q; want one naming target %q and the table", w, dead)
	}
	t.Logf("shadow rows after the bound was passed: %v", b.drained(t, "after the backlog was dropped"))

	// the mark stays, and is not repeated, until the target takes its copy
	b.round(t, 6)
	time.Sleep(1500 * time.Millisecond)
	b.exportHealthy(t)
	if got := b.state(t, dead); !strings.HasPrefix(got, "needs_copy=true dropped=true") {
		t.Errorf("%q lost its mark before its copy: %s", dead, got)
	}
	b.drained(t, "a marked subscription past the bound again")
	if w := b.takeWarnings(); len(w) > 0 {
		t.Errorf("warned again for a subscription already marked: %q", w)
	}
}

// subscribeDead subscribes tbl to push target "dead" (b.Dead) in mode.
func (b *backlog) subscribeDead(t *testing.T, mode string) {
	t.Helper()
	b.Src.AddPushTarget(t, "dead", "tgt_dead", b.Dead)
	if n := b.Src.QueryInt(t, "SELECT shadow_subscribe('dead', 'tbl', mode => $1)", mode); n != 2000 {
		t.Fatalf("initial copy to dead: %d rows, want 2000", n)
	}
}

// A push target nobody exports to any more.
func TestDeadTargetBacklogIsDroppedAndCopiedBack(t *testing.T) {
	// not parallel: watermarks are transaction ids of the whole server, so
	// another test's open transaction would keep the drained rows
	// (pg_snapshot_xmin) and the shadow from emptying
	b := newBacklog(t)
	b.subscribeDead(t, "batch")

	b.underThenOver(t, "dead")

	// the target is back: its next export copies, and it equals the source
	b.Src.Exec(t, "UPDATE tbl SET v = 'while dead' WHERE id > 1900")
	var batches int
	var truncated bool
	var upserts int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.session.QueryRow(ctx, "SELECT batches, upserts, truncated FROM shadow_export('dead')").
		Scan(&batches, &upserts, &truncated); err != nil {
		t.Fatalf("shadow_export('dead'): %s", pgtest.Describe(err))
	}
	if !truncated || upserts < 2000 {
		t.Errorf("export to the target that came back: batches %d upserts %d truncated %t; want a full copy of 2000 rows",
			batches, upserts, truncated)
	}
	pgtest.AssertSameRows(t, b.Src, "tbl", b.Dead, "tbl")
	if got := b.state(t, "dead"); !strings.HasPrefix(got, "needs_copy=false dropped=true") {
		t.Errorf("after its copy, dead: %s; want needs_copy false (the last drop still shown)", got)
	}

	// and both go on by batches
	b.round(t, 7)
	if err := b.session.QueryRow(ctx, "SELECT batches, upserts, truncated FROM shadow_export('dead')").
		Scan(&batches, &upserts, &truncated); err != nil {
		t.Fatalf("shadow_export('dead'): %s", pgtest.Describe(err))
	}
	if truncated || upserts != 1000 {
		t.Errorf("export after the copy: upserts %d truncated %t; want a batch of 1000", upserts, truncated)
	}
	pgtest.AssertSameRows(t, b.Src, "tbl", b.Dead, "tbl")
	b.Same(t, "tbl", "tbl")
}

// An async subscription whose runs stopped: the next shadow_run copies.
func TestDeadAsyncTargetBacklogIsCopiedByTheNextRun(t *testing.T) {
	// not parallel (see TestDeadTargetBacklogIsDroppedAndCopiedBack)
	b := newBacklog(t)
	b.subscribeDead(t, "async")

	b.underThenOver(t, "dead")

	b.Src.Exec(t, "UPDATE tbl SET v = 'while dead' WHERE id > 1900")
	mustExec(t, b.session, "CALL shadow_run('dead')")
	pgtest.AssertSameRows(t, b.Src, "tbl", b.Dead, "tbl")
	if got := b.state(t, "dead"); !strings.HasPrefix(got, "needs_copy=false dropped=true") {
		t.Errorf("after the run, dead: %s; want needs_copy false", got)
	}
	if n := b.Src.QueryInt(t, "SELECT count(*) FROM shadow_errors"); n != 0 {
		t.Errorf("%d errors queued by the run", n)
	}
}

// A file target nobody ships to any more: the same, and its next ship is a
// full copy.
func TestDeadFileTargetBacklogIsDroppedAndCopiedBack(t *testing.T) {
	// not parallel (see TestDeadTargetBacklogIsDroppedAndCopiedBack)
	b := newBacklog(t)
	b.Src.Exec(t, "SELECT shadow_add_target('files', NULL)")
	b.Src.Exec(t, "SELECT shadow_subscribe('files', 'tbl')")
	ship := func(what string) *filemode.ShipResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := filemode.Ship(ctx, b.Src.Conn(t), b.Dead.Conn(t), filemode.ShipOptions{Target: "files"})
		if err != nil {
			t.Fatalf("%s: ship: %s", what, pgtest.Describe(err))
		}
		pgtest.AssertSameRows(t, b.Src, "tbl", b.Dead, "tbl")
		return res
	}
	if res := ship("first ship"); len(res.Manifest.Tables) != 1 || !res.Manifest.Tables[0].FullCopy {
		t.Fatalf("first ship: %+v; want the initial full copy", res.Manifest.Tables)
	}

	b.underThenOver(t, "files")

	b.Src.Exec(t, "UPDATE tbl SET v = 'while dead' WHERE id > 1900")
	res := ship("ship after the drop")
	if len(res.Manifest.Tables) != 1 || !res.Manifest.Tables[0].FullCopy {
		t.Errorf("ship after the drop: %+v; want a full copy", res.Manifest.Tables)
	}
	if got := b.state(t, "files"); !strings.HasPrefix(got, "needs_copy=false dropped=true") {
		t.Errorf("after its copy, files: %s; want needs_copy false", got)
	}
	b.round(t, 7)
	res = ship("ship after the copy")
	if len(res.Manifest.Tables) != 1 || res.Manifest.Tables[0].FullCopy || res.Manifest.Tables[0].Keys != 1000 {
		t.Errorf("ship after the copy: %+v; want a batch of 1000 keys", res.Manifest.Tables)
	}
}

// A subscription an export holds (its copy may be running) is left to that
// export: a purge past the bound neither waits for it nor marks it, and the
// first purge after it is released does.
func TestBacklogDropLeavesASubscriptionBeingExported(t *testing.T) {
	// not parallel (see TestDeadTargetBacklogIsDroppedAndCopiedBack)
	b := newBacklog(t)
	subscribeIdleFileTarget(t, b.Src)
	b.setBound(t, "1s")
	b.round(t, 1)
	time.Sleep(1500 * time.Millisecond)

	holder := b.Src.Conn(t)
	mustExec(t, holder, "BEGIN")
	mustExec(t, holder, "SELECT FROM pgshadow.subscription WHERE target = 'files' FOR UPDATE")
	start := time.Now()
	b.round(t, 2)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the healthy export took %s: it waited for the held subscription", took)
	}
	if got := b.state(t, "files"); got != unmarked {
		t.Errorf("a subscription held by an export was marked: %s", got)
	}
	if n := b.shadowRows(t); n < 2000 {
		t.Errorf("shadow rows %d while the held subscription still needs both rounds (2000)", n)
	}
	if w := b.takeWarnings(); len(w) > 0 {
		t.Errorf("warnings for a held subscription: %q", w)
	}

	mustExec(t, holder, "ROLLBACK")
	b.exportHealthy(t)
	if got := b.state(t, "files"); !strings.HasPrefix(got, "needs_copy=true dropped=true") {
		t.Errorf("released, past the bound: %s; want it marked", got)
	}
	b.drained(t, "after the released subscription was marked")
}

// Only a purge marks a subscription: another role cannot call the helper
// to drop the backlog of a table it does not own.
func TestDropBacklogsIsNotCallable(t *testing.T) {
	// not parallel (see TestDeadTargetBacklogIsDroppedAndCopiedBack)
	b := newBacklog(t)
	mallory := pgtest.NewRole(t, b.Src, "mallory", "")
	c := b.Src.ConnAs(t, mallory, pgtest.RolePassword)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Exec(ctx, "SELECT pgshadow._drop_backlogs(t, '1 microsecond') FROM pgshadow.tracked t")
	if err == nil || !strings.Contains(pgtest.Describe(err), "42501") {
		t.Errorf("%s calling pgshadow._drop_backlogs: %v; want permission denied (42501)", mallory, pgtest.Describe(err))
	}
	if got := b.state(t, targetName); got != unmarked {
		t.Errorf("after %s's call: %s", mallory, got)
	}
}
