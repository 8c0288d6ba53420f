// A target that hangs (a server stopped with SIGSTOP accepts TCP and data
// and never answers; a remote statement that never ends): every export ends
// within the bounds the user set, a cancel ends a waiting export at once,
// nothing moves, and the next export after the target is back ships
// everything.
package replication

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// hungPair starts a target server of the test's own that the test may
// pause (so no other test sees it hang; resumed before it is stopped), with
// table tbl subscribed to it and then filled on the source by fill. The test
// runs in parallel, and not at all with -short.
func hungPair(t *testing.T, name, fill string) (*pgserver.Server, *pair) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a server of its own")
	}
	t.Parallel()
	s := startServer(t, name)
	t.Cleanup(func() { _ = s.Resume() })
	p := subscribedOn(t, s, tblDDL, tblDDL, "")
	p.Src.Exec(t, fill)
	return s, p
}

// pause stops s with SIGSTOP: it accepts connections and data and answers nothing.
func pause(t *testing.T, s *pgserver.Server) {
	t.Helper()
	if err := s.Pause(); err != nil {
		t.Fatalf("%v", err)
	}
}

// resume lets a paused s go on (SIGCONT).
func resume(t *testing.T, s *pgserver.Server) {
	t.Helper()
	if err := s.Resume(); err != nil {
		t.Fatalf("%v", err)
	}
}

// tblAndOther is the start of the tests where one table fails and another
// must not suffer for it: tables tbl and other subscribed, trigger (SQL run
// on the target) set to break tbl's apply, then tblRows rows in tbl and 10
// in other on the source.
func tblAndOther(t *testing.T, trigger string, tblRows int) *pair {
	t.Helper()
	p := newPair(t)
	p.Both(t, tblDDL)
	p.Both(t, "CREATE TABLE other (id int PRIMARY KEY, v text)")
	p.Subscribe(t, "tbl")
	p.Subscribe(t, "other")
	p.Dst.Exec(t, trigger)
	p.Src.Exec(t, "INSERT INTO tbl SELECT g, 'v' FROM generate_series(1, $1) g", tblRows)
	p.Src.Exec(t, "INSERT INTO other SELECT g, 'v' FROM generate_series(1, 10) g")
	return p
}

// exportVia runs shadow_export('t1') on c (a session of its own, with the
// settings the test made there) and returns its error, a table's error row
// included, and how long it took.
func exportVia(c *pgx.Conn) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	rows, err := c.Query(ctx, exportSQL(0))
	if err != nil {
		return time.Since(start), err
	}
	res, err := pgx.CollectRows(rows, pgx.RowToStructByPos[exported])
	took := time.Since(start)
	if err != nil {
		return took, err
	}
	for _, r := range res {
		if r.Error != nil {
			return took, fmt.Errorf("%s: %s", r.Tbl, *r.Error)
		}
	}
	return took, nil
}

// exportResult is how an export run in the background ended.
type exportResult struct {
	took time.Duration
	err  error
}

// exportInBackground runs exportVia(c) in a goroutine, so that the test can
// stop, cancel or break the target while the export waits; the result
// arrives on the channel.
func exportInBackground(c *pgx.Conn) <-chan exportResult {
	done := make(chan exportResult, 1)
	go func() {
		took, err := exportVia(c)
		done <- exportResult{took, err}
	}()
	return done
}

// wantFailure checks that an export failed, naming the target, within limit.
func wantFailure(t *testing.T, what string, took time.Duration, err error, limit time.Duration, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: export succeeded, want an error", what)
	}
	msg := pgtest.Describe(err)
	t.Logf("%s: failed after %s: %s", what, took.Round(time.Millisecond), msg)
	if took > limit {
		t.Errorf("%s: export took %s to fail, want under %s", what, took.Round(time.Millisecond), limit)
	}
	for _, w := range append([]string{`target "` + targetName + `"`}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error does not contain %q: %s", what, w, msg)
		}
	}
}

// A target stopped before the export connects. Up to PostgreSQL 15 the
// connect gives up after connect_timeout (10 s by default,
// pgshadow.connect_timeout, or the foreign server's own option) and nothing
// else can end it; from 16 on dblink's connect ignores connect_timeout but is
// interruptible, so statement_timeout and pg_cancel_backend end it, naming
// the target. Either way nothing moves, and after SIGCONT the next export
// ships everything.
func TestHungTargetBeforeConnect(t *testing.T) {
	s, p := hungPair(t, "hung-connect", "INSERT INTO tbl SELECT g, 'v' || g FROM generate_series(1, 1000) g")
	before := p.watermark(t, "tbl")
	c := p.Src.Conn(t)
	interruptible := p.Src.QueryInt(t, "SELECT current_setting('server_version_num')::int") >= 160000

	pause(t, s)
	if interruptible {
		mustExec(t, c, "SET statement_timeout = '3s'")
		took, err := exportVia(c)
		wantFailure(t, "statement_timeout 3s", took, err, 6*time.Second, "connecting to target", "statement timeout")
		mustExec(t, c, "RESET statement_timeout")

		pid := mustQueryString(t, c, "SELECT pg_backend_pid()::text")
		done := exportInBackground(c)
		pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
			n := p.Src.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND query LIKE '%shadow_export%'", pid)
			return n > 0, "the export never started"
		})
		time.Sleep(time.Second)
		cancelled := time.Now()
		p.Src.Exec(t, "SELECT pg_cancel_backend($1::int)", pid)
		select {
		case r := <-done:
			wantFailure(t, "pg_cancel_backend", time.Since(cancelled), r.err, 2*time.Second, "connecting to target", "canceling statement")
		case <-time.After(30 * time.Second):
			t.Fatalf("export still connecting 30s after pg_cancel_backend")
		}
	} else {
		// Before PostgreSQL 17 libpq counts connect_timeout in whole
		// seconds of time(): a timeout of n seconds fires after n-1 to n.
		took, err := exportVia(c)
		wantFailure(t, "default connect_timeout", took, err, 14*time.Second, "cannot connect", "timeout")
		if took < 8500*time.Millisecond {
			t.Errorf("default connect_timeout: gave up after %s, want about 10s", took)
		}

		mustExec(t, c, "SET pgshadow.connect_timeout = '2s'")
		took, err = exportVia(c)
		wantFailure(t, "pgshadow.connect_timeout = 2s", took, err, 5*time.Second, "cannot connect")

		// the server's own option wins over the default
		mustExec(t, c, "RESET pgshadow.connect_timeout")
		p.Src.Exec(t, "ALTER SERVER tgt OPTIONS (ADD connect_timeout '5')")
		took, err = exportVia(c)
		wantFailure(t, "server option connect_timeout 5", took, err, 8*time.Second, "cannot connect")
		if took < 3500*time.Millisecond {
			t.Errorf("server option connect_timeout 5: gave up after %s, want 4 to 5s", took)
		}
	}
	p.wantWatermark(t, "tbl", before, "an export to a hung target")

	resume(t, s)
	if _, err := exportVia(c); err != nil {
		t.Fatalf("export after SIGCONT: %s", pgtest.Describe(err))
	}
	p.Same(t, "tbl", "tbl")
}

// A remote statement that never ends (a trigger on the target sleeps): the
// export ends after pgshadow.remote_timeout naming the target; with a long
// timeout, pg_cancel_backend ends the waiting export at once. Nothing moves,
// and the connection left behind does not disturb the next export.
func TestHungRemoteStatement(t *testing.T) {
	p := subscribed(t, tblDDL, "")
	p.Src.Exec(t, "INSERT INTO tbl SELECT g, 'v' FROM generate_series(1, 1000) g")
	p.Dst.Exec(t, stallSQL)
	before := p.watermark(t, "tbl")
	c := p.Src.Conn(t)

	mustExec(t, c, "SET pgshadow.remote_timeout = '2s'")
	took, err := exportVia(c)
	wantFailure(t, "remote_timeout 2s", took, err, 6*time.Second)
	if took < 1900*time.Millisecond {
		t.Errorf("remote_timeout 2s: gave up after %s", took)
	}
	p.wantWatermark(t, "tbl", before, "a timed-out export")

	mustExec(t, c, "SET pgshadow.remote_timeout = '5min'")
	pid := mustQueryString(t, c, "SELECT pg_backend_pid()::text")
	done := exportInBackground(c)
	waitForStall(t, p.Dst)
	time.Sleep(500 * time.Millisecond)
	cancelled := time.Now()
	p.Src.Exec(t, "SELECT pg_cancel_backend($1::int)", pid)
	select {
	case r := <-done:
		if r.err == nil || !strings.Contains(pgtest.Describe(r.err), "canceling statement") {
			t.Errorf("cancelled export: want a cancel error, got %v", r.err)
		}
		if d := time.Since(cancelled); d > 2*time.Second {
			t.Errorf("cancelled export ended %s after pg_cancel_backend, want at once", d.Round(time.Millisecond))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("export still running 30s after pg_cancel_backend")
	}
	p.wantWatermark(t, "tbl", before, "a cancelled export")

	// the target's session would sleep on for minutes holding its locks
	endStall(t, p.Dst)
	p.Dst.Exec(t, "DROP TRIGGER stall ON tbl")
	if _, err := exportVia(c); err != nil {
		t.Fatalf("export after the stall: %s", pgtest.Describe(err))
	}
	p.Same(t, "tbl", "tbl")
}

// A target stopped while a large batch is being applied (statements in
// flight, sends filling the socket buffers): the export ends within
// pgshadow.remote_timeout (the wait, or tcp_user_timeout on a blocked send)
// plus connect_timeout for the reconnect, nothing moves, and after SIGCONT
// the next export ships everything.
func TestHungTargetMidApply(t *testing.T) {
	s, p := hungPair(t, "hung-apply", "INSERT INTO tbl SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 200000) g")
	before := p.watermark(t, "tbl")
	c := p.Src.Conn(t)
	mustExec(t, c, "SET pgshadow.remote_timeout = '3s'")
	mustExec(t, c, "SET pgshadow.connect_timeout = '2s'")

	done := exportInBackground(c)
	// stop it once rows are in flight and the source waits for the target
	// (not while it reads the batch, local work no remote timeout bounds)
	pgtest.Eventually(t, 90*time.Second, func() (bool, string) {
		rows := p.Dst.QueryInt(t, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE '%INSERT INTO%' AND pid <> pg_backend_pid()`)
		waits := p.Src.QueryInt(t, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE '%shadow_export%' AND wait_event = 'PgSleep'`)
		return rows > 0 && waits > 0, "the export never waited for the target while applying rows"
	})
	paused := time.Now()
	pause(t, s)
	select {
	case r := <-done:
		wantFailure(t, "target stopped mid-apply", time.Since(paused), r.err, 14*time.Second)
	case <-time.After(60 * time.Second):
		t.Fatalf("export still running 60s after its target was stopped")
	}
	p.wantWatermark(t, "tbl", before, "an export to a hung target")

	resume(t, s)
	// the source's next export may take its time on this busy a table
	mustExec(t, c, "RESET pgshadow.remote_timeout")
	p.Src.Exec(t, "UPDATE tbl SET v = 'after' WHERE id % 1000 = 0")
	if _, err := exportVia(c); err != nil {
		t.Fatalf("export after SIGCONT: %s", pgtest.Describe(err))
	}
	p.Same(t, "tbl", "tbl")
}

// One table fails (its remote statement hangs) and the target refuses the
// export's reconnect for the next table: the result keeps the first table's
// own error, and the next table fails as unreachable. (A reconnect to a
// target that hangs is bounded as the first connect is, see
// TestHungTargetBeforeConnect.)
func TestFirstErrorKeptWhenReconnectFails(t *testing.T) {
	p := tblAndOther(t, stallSQL, 1000)
	before := p.watermark(t, "other")
	c := p.Src.Conn(t)
	mustExec(t, c, "SET pgshadow.remote_timeout = '3s'")

	done := exportInBackground(c)
	waitForStall(t, p.Dst)
	p.Src.Exec(t, "ALTER USER MAPPING FOR CURRENT_USER SERVER tgt OPTIONS (SET password 'wrong')")
	select {
	case r := <-done:
		wantFailure(t, "first table hung, then reconnect refused", r.took, r.err, 12*time.Second,
			"cannot connect", "password authentication failed", "public.tbl", "other not shipped")
		// tbl's own error: the wait gave up, or the target's statement_timeout
		// (both pgshadow.remote_timeout) cancelled the apply first
		if msg := pgtest.Describe(r.err); !strings.Contains(msg, "did not answer within") && !strings.Contains(msg, "statement timeout") {
			t.Errorf("the first table's own error is lost: %s", msg)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("export still running 60s after the stall began")
	}
	p.wantWatermark(t, "other", before, "an export that did not ship it")
	endStall(t, p.Dst)
}

// A statement the target cancels (its statement_timeout, which pgshadow sets
// to pgshadow.remote_timeout; here a trigger raising the same error) fails
// only its table, with SQLSTATE PS002 and the target named: the export goes
// on with the other tables, and nothing of the failed table moves.
func TestTargetCancelFailsOnlyItsTable(t *testing.T) {
	p := tblAndOther(t, `CREATE FUNCTION public.cancel() RETURNS trigger LANGUAGE plpgsql AS $f$
		BEGIN RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = 'query_canceled'; END $f$;
		CREATE TRIGGER cancel AFTER INSERT ON public.tbl FOR EACH ROW WHEN (NEW.id = 7) EXECUTE FUNCTION public.cancel()`, 10)
	before := p.watermark(t, "tbl")

	res, err := p.ExportErr(0)
	if err == nil {
		t.Fatalf("export succeeded although the target cancelled tbl's apply")
	}
	if e := res["tbl"].Error; e == nil || !strings.Contains(*e, `target "t1"`) || !strings.Contains(*e, "statement timeout") {
		t.Errorf("tbl: want its error naming the target and the timeout, got %v", res["tbl"].Error)
	}
	if res["other"].Error != nil || res["other"].Upserts != 10 {
		t.Errorf("other: want 10 rows shipped despite tbl's failure, got %+v", res["other"])
	}
	p.Same(t, "other", "other")
	p.wantWatermark(t, "tbl", before, "the export the target cancelled")
	if got := p.Src.QueryString(t, `SELECT sqlstate FROM shadow_errors WHERE "table" = 'tbl'::regclass`); got != "PS002" {
		t.Errorf("shadow_errors: SQLSTATE %q, want PS002", got)
	}

	p.Dst.Exec(t, "DROP TRIGGER cancel ON tbl")
	p.Export(t)
	p.Same(t, "tbl", "tbl")
}

// A refused connection names the server's reason (dblink's DETAIL), in the
// error and in shadow_status.
func TestConnectErrorKeepsReason(t *testing.T) {
	p := subscribed(t, tblDDL, "")
	p.Src.Exec(t, "ALTER USER MAPPING FOR CURRENT_USER SERVER tgt OPTIONS (SET password 'wrong')")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (1, 'a')")
	_, err := p.ExportErr(0)
	if err == nil {
		t.Fatalf("export with a wrong password succeeded")
	}
	if msg := pgtest.Describe(err); !strings.Contains(msg, "cannot connect") || !strings.Contains(msg, "password authentication failed") {
		t.Errorf("connect error lost the server's reason: %s", msg)
	}
}
