// Package modes tests the replication modes beyond batch export: sync (the
// target is written inside the writing transaction), async (shadow_run, the
// error queue and the `pgshadow run` daemon) and bidirectional replication
// between peers with conflict policies, plus shadow_compare. Servers a, b and
// c hold sources, targets and peers; server d is killed and restarted by the
// tests that need a target that goes away, so those tests do not run in
// parallel.
package modes

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// a is the source of every one-way scenario; b, c and d are their targets
// and run PGSHADOW_TARGET_BINDIR's PostgreSQL when set (make test
// PG_TARGET=...). The peer tests mesh a with b (and c), so with two majors
// each ships both ways: old to new and new to old.
func TestMain(m *testing.M) {
	pgtest.MainRoles(m, []string{"a"}, []string{"b", "c", "d"})
}

// target is the name of the one-way target in source/target scenarios.
const target = "t1"

// link declares database to as foreign server "srv_<name>" in from, with a
// superuser user mapping, and as pgshadow target name.
func link(t *testing.T, from, to *pgtest.DB, name string) {
	t.Helper()
	from.AddPushTarget(t, name, "srv_"+name, to)
}

// pair is a source database with pgshadow and a plain target database,
// linked as target t1.
type pair struct {
	Src, Dst *pgtest.DB
}

func newPair(t *testing.T, src, dst *pgserver.Server) *pair {
	t.Helper()
	p := &pair{Src: pgtest.NewDBWithExtension(t, src), Dst: pgtest.NewDB(t, dst)}
	link(t, p.Src, p.Dst, target)
	return p
}

// Both runs sql on the source and on the target.
func (p *pair) Both(t *testing.T, sql string) {
	t.Helper()
	p.Src.Exec(t, sql)
	p.Dst.Exec(t, sql)
}

// Subscribe subscribes tbl (a SQL name) to t1, extra appended to the
// arguments verbatim (e.g. "mode => 'async'"). It tracks tbl first, in a
// transaction of its own, so that the subscribe makes the initial copy.
func (p *pair) Subscribe(t *testing.T, tbl string, extra ...string) {
	t.Helper()
	p.Src.Exec(t, "SELECT shadow_track("+lit(tbl)+")")
	p.Src.Exec(t, "SELECT shadow_subscribe("+strings.Join(append([]string{lit(target), lit(tbl)}, extra...), ", ")+")")
}

// Same fails unless table holds the same rows on both sides.
func (p *pair) Same(t *testing.T, table string) {
	t.Helper()
	pgtest.AssertSameRows(t, p.Src, table, p.Dst, table)
}

// watermark is the subscription's snapshot and batch counter.
func watermark(t *testing.T, d *pgtest.DB, tgt, tbl string) string {
	t.Helper()
	return d.QueryString(t, `SELECT snapshot::text || ' batch ' || batch_no FROM pgshadow.subscription
		WHERE target = $1 AND tbl = $2::regclass`, tgt, tbl)
}

// restartAtCleanup brings server s back after a test that kills it. Call
// it after creating the test's databases on s: cleanups run last-registered
// first, so the restart precedes their DROP DATABASE.
func restartAtCleanup(t *testing.T, s *pgserver.Server) {
	t.Helper()
	t.Cleanup(func() {
		if err := s.Restart(context.Background()); err != nil {
			t.Errorf("restart %s: %v", s.Name, err)
		}
	})
}

var commitTSOnce sync.Once

// withCommitTimestamps turns on track_commit_timestamp on server d (a
// restart), once per test binary.
func withCommitTimestamps(t *testing.T) *pgserver.Server {
	t.Helper()
	s := pgtest.Server("d")
	var err error
	commitTSOnce.Do(func() { err = s.Reload(map[string]string{"track_commit_timestamp": "on"}) })
	if err != nil {
		t.Fatalf("turn on track_commit_timestamp on %s: %v", s.Name, err)
	}
	return s
}

// execErr runs sql on a dedicated session and returns its error.
func execErr(c *pgx.Conn, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Exec(ctx, sql, args...)
	return err
}

// mustExec runs sql on a dedicated session, failing the test on error.
var mustExec = pgtest.Run

// wantError fails unless err is an error whose message contains every one
// of wants.
func wantError(t *testing.T, what string, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want an error mentioning %q", what, wants)
	}
	msg := pgtest.Describe(err)
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error does not mention %q: %s", what, w, msg)
		}
	}
}

// Short names for the pgtest helpers the scenarios use often.
var (
	lit      = pgtest.Lit
	ident    = pgtest.Ident
	wantRows = pgtest.WantRows
)
