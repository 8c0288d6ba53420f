package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/internal/pgsession"
)

// ScrapeTimeout bounds one scrape's read of shadow_status (a Prometheus
// scrape that announces a shorter timeout gets that).
const ScrapeTimeout = 10 * time.Second

// Metrics serves /metrics in the Prometheus text exposition format (0.0.4),
// read from shadow_status at each scrape, so no value is ever cached stale.
// It keeps one connection of its own (the daemon's is busy with LISTEN and
// its runs) and opens it again after a failure. Only the subscriptions the
// connecting role may see are reported, as shadow_status shows them.
type Metrics struct {
	cfg    *pgx.ConnConfig
	target string
	logf   func(format string, args ...any)

	mu     sync.Mutex
	conn   *pgx.Conn
	schema string
}

// NewMetrics returns the handler for the database of connString (empty: the
// PG* environment variables), restricted to target unless it is empty.
func NewMetrics(connString, target string, logf func(string, ...any)) (*Metrics, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "pgshadow run metrics"
	}
	pgsession.Configure(cfg)
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Metrics{cfg: cfg, target: target, logf: logf}, nil
}

// Close closes the connection, if one is open.
func (m *Metrics) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		closeSoon(m.conn)
		m.conn = nil
	}
}

// metricsSQL reads every value at scrape time; labels are the target and
// the schema-qualified table.
const metricsSQL = `SELECT target, "table"::text, coalesce(pending_keys, 0),
       coalesce(extract(epoch FROM oldest_pending_age), 0)::float8, batches, keys_shipped,
       last_error IS NOT NULL, failures, extract(epoch FROM last_export)::float8
  FROM %s.shadow_status WHERE $1 = '' OR target = $1 ORDER BY target, "table"::text`

type subMetrics struct {
	target, table string
	pending       int64
	lag           float64
	batches, keys int64
	failing       bool
	failures      int64
	lastSuccess   *float64
}

// family is one metric: its name, type, help and the value of a subscription.
type family struct {
	name, typ, help string
	value           func(s subMetrics) (float64, bool)
}

var families = []family{
	{"pgshadow_pending_keys", "gauge", "Distinct keys changed and not yet shipped.",
		func(s subMetrics) (float64, bool) { return float64(s.pending), true }},
	{"pgshadow_lag_seconds", "gauge", "Age of the oldest change not yet shipped (0: nothing pending).",
		func(s subMetrics) (float64, bool) { return s.lag, true }},
	{"pgshadow_batches_total", "counter", "Batches shipped.",
		func(s subMetrics) (float64, bool) { return float64(s.batches), true }},
	{"pgshadow_keys_shipped_total", "counter", "Keys shipped (as rows or deletes).",
		func(s subMetrics) (float64, bool) { return float64(s.keys), true }},
	{"pgshadow_error", "gauge", "1 while the last export failed (shadow_status.last_error), else 0.",
		func(s subMetrics) (float64, bool) { return b2f(s.failing), true }},
	{"pgshadow_failures_total", "counter", "Failures recorded (shadow_failures keeps the recent ones).",
		func(s subMetrics) (float64, bool) { return float64(s.failures), true }},
	{"pgshadow_last_success_timestamp_seconds", "gauge", "Unix time of the last export that succeeded (absent: none yet).",
		func(s subMetrics) (float64, bool) {
			if s.lastSuccess == nil {
				return 0, false
			}
			return *s.lastSuccess, true
		}},
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ServeHTTP answers a scrape. A failed read still answers 200, with
// pgshadow_up 0 (as exporters do), so the failure itself can alert.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	timeout := ScrapeTimeout
	if h := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); h != "" {
		if secs, err := strconv.ParseFloat(h, 64); err == nil && secs > 0 {
			timeout = min(timeout, time.Duration(secs*float64(time.Second)))
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	start := time.Now()
	subs, err := m.read(ctx)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# HELP pgshadow_up 1 if this scrape could read shadow_status, else 0.\n# TYPE pgshadow_up gauge\npgshadow_up %d\n",
		map[bool]int{true: 1, false: 0}[err == nil])
	if err != nil {
		m.logf("metrics: %v", err)
	} else {
		for _, f := range families {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
			for _, s := range subs {
				if v, ok := f.value(s); ok {
					fmt.Fprintf(&b, "%s{target=\"%s\",table=\"%s\"} %s\n", f.name, labelValue(s.target), labelValue(s.table),
						strconv.FormatFloat(v, 'g', -1, 64))
				}
			}
		}
	}
	fmt.Fprintf(&b, "# HELP pgshadow_scrape_duration_seconds How long reading shadow_status took.\n"+
		"# TYPE pgshadow_scrape_duration_seconds gauge\npgshadow_scrape_duration_seconds %s\n",
		strconv.FormatFloat(time.Since(start).Seconds(), 'g', -1, 64))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// read queries shadow_status, connecting first if needed; after a failure
// the connection is dropped, and the next scrape opens a new one.
func (m *Metrics) read(ctx context.Context) ([]subMetrics, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn == nil || m.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, m.cfg.Copy())
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		schema, err := pgsession.APISchema(ctx, conn)
		if err != nil {
			closeSoon(conn)
			return nil, err
		}
		m.conn, m.schema = conn, schema
	}
	wait, stop := pgsession.CancelOnDone(ctx, m.conn)
	defer stop()
	rows, err := m.conn.Query(wait, fmt.Sprintf(metricsSQL, m.schema), m.target)
	var subs []subMetrics
	if err == nil {
		subs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (subMetrics, error) {
			var s subMetrics
			err := row.Scan(&s.target, &s.table, &s.pending, &s.lag, &s.batches, &s.keys, &s.failing, &s.failures, &s.lastSuccess)
			return s, err
		})
	}
	if err != nil {
		closeSoon(m.conn)
		m.conn = nil
		return nil, fmt.Errorf("read shadow_status: %w", err)
	}
	return subs, nil
}

// labelValue escapes a label value as the text format requires.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// closeSoon closes conn without waiting long on a server that stopped answering.
func closeSoon(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
