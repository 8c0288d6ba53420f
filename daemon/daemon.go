package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/internal/pgsession"
)

// Channel is the NOTIFY channel capture signals async changes on.
const Channel = "pgshadow"

// Config says where and how often to run.
type Config struct {
	// ConnString is a libpq DSN or URL of the database holding the
	// subscriptions; empty means the PG* environment variables.
	ConnString string
	// Target restricts the runs to one target; empty means every target.
	Target string
	// Interval is the longest wait between runs when no notification
	// arrives (default 5 s). Notifications and due retries wake it sooner.
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting after
	// the connection failed: it starts at MinBackoff (default 1 s) and
	// doubles up to MaxBackoff (default 30 s), and is reset by a run that
	// succeeds.
	MinBackoff, MaxBackoff time.Duration
	// Logf receives one line per run that shipped something or failed,
	// every WARNING shadow_run raised, and connection trouble. Nil discards.
	Logf func(format string, args ...any)
	// RunTimeout is the longest one CALL shadow_run may take (default 30
	// min): a source server that stops answering is then cancelled, the
	// connection closed and opened again. The remote waits inside the call
	// are bounded by pgshadow.remote_timeout on the server.
	RunTimeout time.Duration
}

// queryTimeout bounds the daemon's own short statements (LISTEN, reading
// the subscription state).
const queryTimeout = time.Minute

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(30*time.Second, c.MinBackoff)
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.RunTimeout <= 0 {
		c.RunTimeout = 30 * time.Minute
	}
}

// minWait keeps a retry that is due right now from turning the loop into a
// busy loop while the same failure repeats.
const minWait = 10 * time.Millisecond

// Run ships until ctx is cancelled, then returns nil. A run in progress when
// ctx is cancelled is cancelled on the server (its transaction rolls back,
// so its batch ships again next time). Run returns an error only for a
// configuration it can never connect with (an unparsable ConnString).
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	pcfg, err := pgx.ParseConfig(cfg.ConnString)
	if err != nil {
		return fmt.Errorf("parse connection string: %w", err)
	}
	if _, ok := pcfg.RuntimeParams["application_name"]; !ok {
		pcfg.RuntimeParams["application_name"] = "pgshadow run"
	}
	// bounded connect, keepalives, search_path pinned: shadow_run is called
	// by its schema, so no object another role created is ever resolved
	pgsession.Configure(pcfg)
	backoff := cfg.MinBackoff
	for {
		s := &session{cfg: cfg}
		err := s.loop(ctx, pcfg.Copy())
		if ctx.Err() != nil {
			return nil
		}
		if s.succeeded {
			backoff = cfg.MinBackoff
		}
		cfg.Logf("%v; reconnecting in %s", err, backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, cfg.MaxBackoff)
	}
}

// session is one connection's life: LISTEN, then run and wait until the
// connection fails or ctx ends.
type session struct {
	cfg       Config
	conn      *pgx.Conn
	notices   []string // notices of the current run, "SEVERITY: message"
	failures  int      // WARNINGs of the current run: shadow_run raises one per failed subscription
	succeeded bool     // a run completed on this connection
	shipped   map[string]counts
	schema    string // of pgshadow's public API, quoted
	pcfg      *pgx.ConnConfig
}

// counts are a target's async totals from pgshadow.subscription.
type counts struct{ batches, keys int64 }

func (s *session) loop(ctx context.Context, pcfg *pgx.ConnConfig) error {
	pcfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		s.notices = append(s.notices, n.Severity+": "+n.Message)
		if n.Severity == "WARNING" {
			s.failures++
		}
	}
	s.pcfg = pcfg
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	s.conn = conn
	defer conn.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if s.schema, err = pgsession.APISchema(qctx, conn); err != nil {
		return err
	}
	if _, err := conn.Exec(qctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Totals before the first run, so that it is logged only if it ships.
	if s.shipped, _, err = s.state(ctx); err != nil {
		return err
	}
	for {
		wait, err := s.runOnce(ctx)
		if err != nil {
			return err
		}
		if err := s.wait(ctx, wait); err != nil {
			return err
		}
	}
}

// runOnce calls shadow_run, logs what it did and returns how long to wait
// before the next run at the latest.
func (s *session) runOnce(ctx context.Context) (time.Duration, error) {
	s.notices, s.failures = s.notices[:0], 0
	start := time.Now()
	if err := s.call(ctx); err != nil {
		if ctx.Err() == nil {
			s.record(ctx, err)
		}
		return 0, err
	}
	took := time.Since(start)
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	after, retryIn, err := s.state(qctx)
	cancel()
	if err != nil {
		return 0, err
	}
	s.succeeded = true
	var parts []string
	var keys, batches int64
	for target, c := range after {
		d := counts{c.batches - s.shipped[target].batches, c.keys - s.shipped[target].keys}
		if d.batches > 0 {
			keys += d.keys
			batches += d.batches
			parts = append(parts, fmt.Sprintf("%s: %d keys", target, d.keys))
		}
	}
	s.shipped = after
	for _, n := range s.notices {
		s.cfg.Logf("%s", n)
	}
	var what []string
	if batches > 0 {
		slices.Sort(parts)
		what = append(what, fmt.Sprintf("shipped %d keys in %d batches (%s)", keys, batches, strings.Join(parts, ", ")))
	}
	if s.failures > 0 {
		what = append(what, fmt.Sprintf("%d failed, queued in shadow_errors", s.failures))
	}
	if len(what) > 0 {
		s.cfg.Logf("%s (%s)", strings.Join(what, "; "), took.Round(time.Millisecond))
	}
	wait := s.cfg.Interval
	if retryIn != nil {
		wait = max(min(wait, *retryIn), minWait)
	}
	return wait, nil
}

// call runs shadow_run. On cancellation, or after RunTimeout, the server is
// asked to cancel it, so the connection stays usable and the server does not
// go on shipping for a client that has left; a server that does not end it
// within pgsession.CancelGrace (one that stopped answering) is given up, and
// the connection with it.
func (s *session) call(ctx context.Context) error {
	run, stopRun := context.WithTimeout(ctx, s.cfg.RunTimeout)
	defer stopRun()
	wait, stop := pgsession.CancelOnDone(run, s.conn)
	defer stop()
	var target any
	if s.cfg.Target != "" {
		target = s.cfg.Target
	}
	if _, err := s.conn.Exec(wait, "CALL "+s.schema+".shadow_run($1)", target); err != nil {
		if run.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return fmt.Errorf("CALL shadow_run: no answer within %s (RunTimeout): %w", s.cfg.RunTimeout, err)
		}
		return fmt.Errorf("CALL shadow_run: %w", err)
	}
	return nil
}

// record keeps a run that failed as a whole (it rolled back and kept
// nothing; shadow_run records the failure of each subscription itself) on
// this role's async subscriptions: in shadow_status.last_error,
// shadow_errors (whose backoff then spaces the retries) and shadow_failures.
func (s *session) record(ctx context.Context, err error) {
	n, rerr := pgsession.RecordFailure(ctx, s.conn, s.pcfg, s.cfg.Target, true, "pgshadow run", err)
	if rerr != nil {
		s.cfg.Logf("%v", rerr)
		return
	}
	s.cfg.Logf("failure recorded on %d subscriptions (shadow_failures)", n)
}

// stateSQL reads the async totals per target and how long until the
// earliest queued retry (NULL: none queued), over the subscriptions
// shadow_run ships for this role: a retry it would not run must not wake
// the loop (it would stay due, and the loop would spin).
const stateSQL = `
SELECT s.target, sum(s.batch_no)::bigint, sum(s.keys_shipped)::bigint,
       extract(epoch FROM min(e.next_retry) - clock_timestamp())::float8
  FROM pgshadow.subscription s LEFT JOIN pgshadow.error e ON e.sub_id = s.id
 WHERE s.mode = 'async' AND ($1::text IS NULL OR s.target = $1)
   AND pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = s.tbl), 'USAGE')
 GROUP BY s.target`

func (s *session) state(ctx context.Context) (map[string]counts, *time.Duration, error) {
	var target any
	if s.cfg.Target != "" {
		target = s.cfg.Target
	}
	rows, err := s.conn.Query(ctx, stateSQL, target)
	if err != nil {
		return nil, nil, fmt.Errorf("read subscription state: %w", err)
	}
	defer rows.Close()
	out := map[string]counts{}
	var retryIn *time.Duration
	for rows.Next() {
		var name string
		var c counts
		var secs *float64
		if err := rows.Scan(&name, &c.batches, &c.keys, &secs); err != nil {
			return nil, nil, fmt.Errorf("read subscription state: %w", err)
		}
		out[name] = c
		if secs != nil {
			d := time.Duration(*secs * float64(time.Second))
			if retryIn == nil || d < *retryIn {
				retryIn = &d
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read subscription state: %w", err)
	}
	return out, retryIn, nil
}

// wait returns when a notification arrives or d has passed; the
// notifications that arrived meanwhile are consumed, since one run ships
// everything they announce.
func (s *session) wait(ctx context.Context, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	_, err := s.conn.WaitForNotification(wctx)
	cancel()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		s.drain()
		return nil
	case wctx.Err() != nil && !s.conn.IsClosed():
		return nil // the interval or a retry is due
	default:
		return fmt.Errorf("wait for notification: %w", err)
	}
}

// drain consumes the notifications pgx has already buffered, without
// waiting for more (a done context makes WaitForNotification return at once
// when nothing is buffered).
func (s *session) drain() {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		if n, _ := s.conn.WaitForNotification(done); n == nil {
			return
		}
	}
}
