package continuity

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// pendingWrites changes tbl without exporting: inserts, updates and deletes
// (keys from..from+9 are new).
func pendingWrites(t *testing.T, d *pgtest.DB, from int, tag string) {
	t.Helper()
	d.Exec(t, "INSERT INTO tbl SELECT g, $2 || g FROM generate_series($1::int, $1::int + 9) g", from, tag+" ")
	d.Exec(t, "UPDATE tbl SET v = v || ' / ' || $1 WHERE id % 7 = 1", tag)
	d.Exec(t, "DELETE FROM tbl WHERE id IN (SELECT id FROM tbl WHERE id % 11 = 2 LIMIT 2)")
}

// status is the rebaseline part of shadow_status for one target.
type status struct {
	Pending       int64
	Break         *string
	RebaselinedAt *time.Time
	Reason        *string
}

func readStatus(t *testing.T, d *pgtest.DB, target string) status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var s status
	err := d.Pool.QueryRow(ctx, `SELECT pending_keys, history_break, rebaselined_at, rebaseline_reason
	                              FROM shadow_status WHERE target = $1 AND "table" = 'tbl'::regclass`, target).
		Scan(&s.Pending, &s.Break, &s.RebaselinedAt, &s.Reason)
	if err != nil {
		t.Fatalf("read shadow_status: %s", pgtest.Describe(err))
	}
	return s
}

// heldKeys is the number of distinct keys in tbl's shadow table.
func heldKeys(t *testing.T, d *pgtest.DB) int64 {
	t.Helper()
	shadow := d.QueryString(t, "SELECT shadow FROM pgshadow.tracked WHERE tbl = 'tbl'::regclass")
	return d.QueryInt(t, "SELECT count(DISTINCT id) FROM pgshadow."+pgx.Identifier{shadow}.Sanitize()+" WHERE shadow_op <> 'T'")
}

// afterMove checks a moved source: the break shows before the first export,
// which re-baselines; every change (held before the move, written after it)
// reaches both targets; later exports go on normally.
func afterMove(t *testing.T, e *env, wantReason string) {
	t.Helper()
	before := readStatus(t, e.Src, pushTarget)
	if before.Break == nil || !strings.Contains(*before.Break, wantReason) {
		t.Errorf("before the first export: history_break = %v, want it to say %q", ptr(before.Break), wantReason)
	}
	if held := heldKeys(t, e.Src); before.Pending != held {
		t.Errorf("before the first export: pending_keys = %d, want every held key (%d)", before.Pending, held)
	}

	if keys := e.pushExport(t); keys == 0 {
		t.Errorf("the first push export after the move shipped no keys")
	}
	res := e.fileExport(t)
	if res.BatchDir == "" || !res.Manifest.Tables[0].FullCopy {
		t.Errorf("the first file export after the move is not a full copy (batch %q)", res.BatchDir)
	}
	e.same(t)

	after := readStatus(t, e.Src, pushTarget)
	if after.Break != nil {
		t.Errorf("after the re-baseline: history_break = %q", *after.Break)
	}
	if after.RebaselinedAt == nil || after.Reason == nil || !strings.Contains(*after.Reason, wantReason) {
		t.Errorf("shadow_status does not show the re-baseline: rebaselined_at %v, reason %v", after.RebaselinedAt, ptr(after.Reason))
	}

	// business as usual afterwards, with no second re-baseline
	pendingWrites(t, e.Src, 300, "later")
	if got := readStatus(t, e.Src, pushTarget).Pending; got == 0 {
		t.Errorf("writes after the re-baseline are not counted as pending")
	}
	e.sync(t)
	e.same(t)
	again := readStatus(t, e.Src, pushTarget)
	if again.RebaselinedAt == nil || !again.RebaselinedAt.Equal(*after.RebaselinedAt) {
		t.Errorf("a second re-baseline happened: %v, then %v", after.RebaselinedAt, again.RebaselinedAt)
	}
	if res := e.fileExport(t); res.BatchDir != "" {
		t.Errorf("nothing was pending, yet the file export wrote %s", res.BatchDir)
	}
}

func ptr(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// A database moved by pg_dump/pg_restore to another server: whichever way
// the counters stand, every change held before the dump and every change
// made after the restore ships, to the push target and down the file chain.
func TestDumpRestoreToAnotherServer(t *testing.T) {
	old, nw := pgtest.Server("old"), pgtest.Server("new")
	for _, c := range []struct {
		name string
		// prepare sets the counters before the source is made on "old"
		prepare func(t *testing.T)
		// catchUp: after the first writes on the restored copy, burn its
		// counter past the old server's, so later writes pass the old
		// watermarks (and shadow rows from "old" stop being in the future)
		catchUp bool
	}{
		{"far_behind", func(t *testing.T) { lead(t, old, nw, 20000) }, false},
		{"slightly_behind", func(t *testing.T) {
			lead(t, old, nw, 3000)
			burn(t, nw, nextXid(t, old)-3000-nextXid(t, nw))
		}, true},
		{"ahead", func(t *testing.T) { lead(t, nw, old, 20000) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.prepare(t)
			e := newEnv(t, old)
			e.setup(t)
			pendingWrites(t, e.Src, 100, "before the dump")
			wm := e.Src.QueryInt(t, `SELECT min(pg_snapshot_xmin(snapshot))::text::bigint FROM pgshadow.subscription`)
			oldNext := nextXid(t, old)

			e.Src = moveTo(t, e.Src, nw)
			next := nextXid(t, nw)
			t.Logf("old watermark xmin %d, old next xid %d, restored copy's next xid %d", wm, oldNext, next)
			if c.name != "ahead" && next+50 > wm {
				t.Fatalf("scenario broken: the restored copy's counter (%d) must be behind the watermarks (%d)", next, wm)
			}
			pendingWrites(t, e.Src, 200, "after the restore")
			if c.catchUp {
				burn(t, nw, oldNext+100-nextXid(t, nw))
				pendingWrites(t, e.Src, 250, "after the counter passed")
			}
			afterMove(t, e, "another server")
		})
	}
}

// CREATE DATABASE ... TEMPLATE keeps the xid history but not the database's
// name, by which file targets know their source: the copy ships everything
// it holds and starts the file chain again with a full copy.
func TestTemplateCopy(t *testing.T) {
	old := pgtest.Server("old")
	e := newEnv(t, old)
	e.setup(t)
	pendingWrites(t, e.Src, 100, "before the copy")
	nodeID := e.Src.QueryString(t, "SELECT id::text FROM pgshadow.node")
	e.Src.Pool.Close()
	copyName := e.Src.Name + "_copy"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := adminConn(t, ctx, old)
	defer c.Close(ctx)
	// a template must have no sessions: end the test's own
	if _, err := c.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", e.Src.Name); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		_, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{copyName}.Sanitize()+" TEMPLATE "+pgx.Identifier{e.Src.Name}.Sanitize())
		if err == nil {
			break
		}
		if attempt == 20 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.Src = adopt(t, old, copyName)
	pendingWrites(t, e.Src, 200, "after the copy")
	afterMove(t, e, "copied or renamed")
	// the copy may run beside its original: as a mesh node it is another one
	if got := e.Src.QueryString(t, "SELECT id::text FROM pgshadow.node"); got == nodeID {
		t.Errorf("the copy kept its original's node id %s after its re-baseline, want a new one", got)
	}
}

// A physical standby promoted to primary keeps the xid history: nothing is
// re-baselined, and the push target and the file chain simply go on.
func TestPromotedStandby(t *testing.T) {
	if os.Getenv("PGSHADOW_TEST_IMAGE") != "" {
		t.Skip("standbys need the local server backend")
	}
	old := pgtest.Server("old")
	e := newEnv(t, old)
	e.setup(t)
	pendingWrites(t, e.Src, 100, "before the failover")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	standby, err := pgserver.Start(ctx, pgserver.Options{Name: "standby", StandbyOf: old})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Stop() })
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	e.Src.Pool.Close() // the old primary is done with
	e.Src = adopt(t, standby, e.Src.Name)
	pendingWrites(t, e.Src, 200, "after the promotion")

	e.pushExport(t)
	if res := e.fileExport(t); res.BatchDir == "" || res.Manifest.Tables[0].FullCopy {
		t.Errorf("the file export after the promotion is not an incremental batch (%q)", res.BatchDir)
	}
	e.same(t)
	if s := readStatus(t, e.Src, pushTarget); s.Break != nil || s.RebaselinedAt != nil {
		t.Errorf("a promotion keeps the history, yet history_break = %v, rebaselined_at = %v", ptr(s.Break), s.RebaselinedAt)
	}
}

// _check_history is SECURITY DEFINER and callable by anyone: on a continuous
// history it changes nothing, and no one but the definer may stamp a new
// history (which would hide a move).
func TestAnyoneMayCheckTheHistory(t *testing.T) {
	e := newEnv(t, pgtest.Server("old"))
	e.setup(t)
	pendingWrites(t, e.Src, 100, "pending")
	role := "plain_" + e.Src.Name
	e.Src.Exec(t, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD 'pw'")
	t.Cleanup(func() { e.Src.ExecErr("DROP ROLE IF EXISTS " + pgx.Identifier{role}.Sanitize()) })
	state := func() string {
		return e.Src.QueryString(t, `SELECT (SELECT string_agg(snapshot::text, ' ' ORDER BY id) FROM pgshadow.subscription)
		                               || ' ' || (SELECT h::text FROM pgshadow.history h)`)
	}
	before := state()
	c := e.Src.ConnAs(t, role, "pw")
	mustExec(t, c, "SELECT pgshadow._check_history()")
	if after := state(); after != before {
		t.Errorf("a plain role's _check_history changed watermarks or stamp:\n%s\n%s", before, after)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Exec(ctx, "SELECT pgshadow._stamp('hide a move')"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a plain role could call pgshadow._stamp: %v", err)
	}
	if held := heldKeys(t, e.Src); held == 0 {
		t.Errorf("pending keys vanished")
	}
}
