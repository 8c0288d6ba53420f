// `pgshadow run` (package daemon), run in-process: it ships async changes
// soon after commit (woken by NOTIFY, not by its interval), survives losing
// its connection, wakes for due retries, and stops cleanly when cancelled.
package modes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/daemon"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// daemonLog collects the daemon's lines and echoes them to the test log.
type daemonLog struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (l *daemonLog) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	l.t.Logf("daemon: %s", line)
}

// count returns how many lines contain sub.
func (l *daemonLog) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

// startDaemon runs daemon.Run on src until the returned stop is called (or
// the test ends); stop fails the test unless Run returns nil promptly.
func startDaemon(t *testing.T, src *pgtest.DB, cfg daemon.Config) (log *daemonLog, stop func()) {
	t.Helper()
	log = &daemonLog{t: t}
	cfg.ConnString = src.ConnString()
	cfg.Logf = log.logf
	stop = pgtest.RunInBackground(t, "daemon.Run", func(ctx context.Context) error { return daemon.Run(ctx, cfg) })
	return log, stop
}

// daemonListening waits until the daemon's session is connected and idle.
func daemonListening(t *testing.T, src *pgtest.DB) {
	t.Helper()
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := src.QueryInt(t, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'pgshadow run' AND state = 'idle'`)
		return n == 1, fmt.Sprintf("%d idle daemon sessions, want 1", n)
	})
}

// Under steady load the daemon makes each change visible on the target
// well within a second of its commit, measured with commit timestamps on
// both sides (source and target databases share a server, so one clock).
// The interval is 30 s, so only the NOTIFY can explain the speed. Then the
// daemon loses its connection and reconnects, wakes for a due retry of a
// failing batch, and returns nil when cancelled.
func TestDaemonShipsSoonAfterCommit(t *testing.T) {
	s := withCommitTimestamps(t)
	p := newPair(t, s, s)
	p.Both(t, "CREATE TABLE ev (k int PRIMARY KEY, v text)")
	p.Subscribe(t, "ev", "mode => 'async'")
	log, stop := startDaemon(t, p.Src, daemon.Config{
		Interval: 30 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
	})
	daemonListening(t, p.Src)

	// steady load: 2 writers, 25 single-insert transactions a second each, for 6 s
	const writers, perSecond, seconds = 2, 25, 6
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / perSecond)
			defer tick.Stop()
			for i := range perSecond * seconds {
				<-tick.C
				if err := p.Src.ExecErr("INSERT INTO ev VALUES ($1, 'x')", w*100000+i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %s", pgtest.Describe(err))
	}
	const total = writers * perSecond * seconds
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := p.Dst.QueryInt(t, "SELECT count(*) FROM ev")
		return n == total, fmt.Sprintf("%d of %d rows on the target", n, total)
	})

	lag := commitLag(t, p, "ev")
	t.Logf("async lag commit -> visible on target over %d rows (%d writers x %d tx/s): median %s, p90 %s, max %s",
		len(lag), writers, perSecond, lag[len(lag)/2], lag[len(lag)*9/10], lag[len(lag)-1])
	if med := lag[len(lag)/2]; med > time.Second {
		t.Errorf("median commit -> visible lag %s, want <= 1s", med)
	}

	// connection lost: the daemon reconnects and ships what came meanwhile
	p.Src.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'pgshadow run'`)
	p.Src.Exec(t, "INSERT INTO ev VALUES (-1, 'after reconnect')")
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := p.Dst.QueryInt(t, "SELECT count(*) FROM ev WHERE k = -1")
		return n == 1, "the row written after the daemon's connection was terminated is not on the target"
	})
	if log.count("reconnecting") == 0 {
		t.Errorf("the daemon did not log that it reconnects after its connection was terminated")
	}

	// a failing batch is retried at its next_retry (1 s, then 2 s), not at the 30 s interval
	p.Dst.Exec(t, "ALTER TABLE ev ADD CONSTRAINT no_poison CHECK (v <> 'poison')")
	p.Src.Exec(t, "INSERT INTO ev VALUES (-2, 'poison')")
	pgtest.Eventually(t, 8*time.Second, func() (bool, string) {
		q := errorQueue(t, p.Src, "ev")
		if q == nil {
			return false, "no failure queued"
		}
		return q.attempts >= 3, fmt.Sprintf("%d attempts so far, want 3 within 8 s (retries due after 1 s and 2 s more)", q.attempts)
	})
	if log.count(`WARNING: pgshadow: applying public.ev to public.ev on target "t1" failed`) < 3 {
		t.Errorf("the daemon did not log each failed attempt as a WARNING naming the target")
	}
	stop()
}

// commitLag returns, sorted, per key of table, the target commit time of
// its row minus the source commit time.
func commitLag(t *testing.T, p *pair, table string) []time.Duration {
	t.Helper()
	commits := func(d *pgtest.DB) map[string]time.Time {
		out := map[string]time.Time{}
		for _, r := range d.QueryStrings(t, fmt.Sprintf(
			"SELECT k || ' ' || extract(epoch FROM pg_xact_commit_timestamp(xmin))::numeric(20,6) FROM %s", table)) {
			k, ts, _ := strings.Cut(r, " ")
			var sec, usec int64
			fmt.Sscanf(ts, "%d.%d", &sec, &usec)
			out[k] = time.Unix(sec, usec*1000)
		}
		return out
	}
	src, dst := commits(p.Src), commits(p.Dst)
	var lag []time.Duration
	for k, at := range src {
		if vis, ok := dst[k]; ok {
			lag = append(lag, vis.Sub(at))
		}
	}
	if len(lag) == 0 {
		t.Fatalf("no commit timestamps to compare (is track_commit_timestamp on?)")
	}
	slices.Sort(lag)
	return lag
}
