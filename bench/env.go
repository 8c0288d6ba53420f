// The benchmark environment: three throwaway servers (a source, a source
// with wal_level=logical for the logical replication comparison, and a
// target), connections, timing and the interleaving runner.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/internal/pgserver"
)

// sizes are the workload sizes of one run; quick mode divides most by 10.
type sizes struct {
	oltpRows, oltpSecs     int
	bulkRows               int
	shipRows               int
	lrRows                 int
	netKeys, netTimes      int
	scaleBig, scaleSmall   int
	scaleChanges           []int
	bloatRows, bloatCycles int
	bloatChanges           int
	lagSecs, lagRate       int // figure 8: seconds of steady load per repetition, commits per second
}

func sizesFor(quick bool) sizes {
	// n picks a size: the full run's, or the quick run's beside it.
	n := func(full, quickSize int) int {
		if quick {
			return quickSize
		}
		return full
	}
	return sizes{
		oltpRows: n(1_000_000, 100_000), oltpSecs: n(8, 3),
		bulkRows: n(1_000_000, 100_000),
		shipRows: n(1_000_000, 50_000),
		lrRows:   n(1_000_000, 50_000),
		netKeys:  n(100_000, 10_000), netTimes: 10,
		scaleBig: n(10_000_000, 500_000), scaleSmall: n(1_000_000, 50_000),
		scaleChanges: []int{n(10_000, 500), n(100_000, 5_000), n(1_000_000, 50_000)},
		bloatRows:    n(100_000, 50_000), bloatCycles: n(100, 10), bloatChanges: n(10_000, 5_000),
		lagSecs: n(15, 4), lagRate: n(200, 100),
	}
}

// serverSettings apply to every server: durability is traded for speed as in
// the test harness (fsync off), the same for pgshadow and every baseline;
// checkpoints are taken explicitly between measurements and autovacuum is off
// so that neither lands inside someone's timing at random (VACUUM runs in the
// untimed preparation instead).
var serverSettings = map[string]string{
	"shared_buffers":       "1GB",
	"max_wal_size":         "8GB",
	"checkpoint_timeout":   "1h",
	"autovacuum":           "off",
	"maintenance_work_mem": "256MB",
}

// logicalSettings are added on the logical replication source.
var logicalSettings = map[string]string{
	"wal_level":             "logical",
	"max_wal_senders":       "10",
	"max_replication_slots": "10",
}

// genRows is the size of the staging table gen on the source.
func (b *bench) genRows() int {
	return max(b.sz.oltpRows, b.sz.bulkRows, b.sz.shipRows, b.sz.bloatRows)
}

// targetSettings are added on the target. PostgreSQL 15's logical
// replication launcher starts apply workers at most once per
// wal_retrieve_retry_interval (5 s by default), so without this the
// catch-up figure would time the launcher's pause after ALTER SUBSCRIPTION
// ... ENABLE rather than replication.
var targetSettings = map[string]string{
	"wal_retrieve_retry_interval": "100ms",
}

const benchDB = "bench"

type bench struct {
	ctx  context.Context
	cfg  config
	sz   sizes
	rep  *report
	log  io.Writer
	t0   time.Time
	bin  string // PostgreSQL client programs (pgbench)
	src  *pgserver.Server
	lsrc *pgserver.Server
	dst  *pgserver.Server

	// s and d are connections to the benchmark databases on the source and
	// the target server, used by every figure but 4 (which has its own servers' pair)
	s, d *pgx.Conn

	conns  []*pgx.Conn
	tmpDir string

	mimeoErr error // why mimeo could not be set up, if it could not
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%7.1fs] %s\n", time.Since(b.t0).Seconds(), fmt.Sprintf(format, args...))
}

func setup(ctx context.Context, cfg config) (*bench, error) {
	b := &bench{ctx: ctx, cfg: cfg, sz: sizesFor(cfg.quick), log: os.Stderr, t0: time.Now()}
	b.rep = &report{quick: cfg.quick, date: time.Now(), figures: map[int]*figure{}, log: os.Stdout}
	var err error
	if b.tmpDir, err = os.MkdirTemp("", "pgshadow-bench-"); err != nil {
		return b, err
	}
	if b.bin, err = pgBinDir(); err != nil {
		return b, err
	}

	b.logf("starting servers (source, logical source, target)")
	type spec struct {
		dst   **pgserver.Server
		name  string
		extra map[string]string
	}
	specs := []spec{{&b.src, "bench-src", nil}, {&b.lsrc, "bench-lsrc", logicalSettings}, {&b.dst, "bench-dst", targetSettings}}
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i, s := range specs {
		settings := map[string]string{}
		for k, v := range serverSettings {
			settings[k] = v
		}
		for k, v := range s.extra {
			settings[k] = v
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			*s.dst, errs[i] = pgserver.Start(ctx, pgserver.Options{Name: s.name, Settings: settings})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return b, err
	}
	b.raisePriority()
	for _, s := range []*pgserver.Server{b.src, b.lsrc, b.dst} {
		if err := b.createDB(s, benchDB); err != nil {
			return b, err
		}
	}
	if err := b.describeMachine(); err != nil {
		return b, err
	}
	if b.s, err = b.connect(b.src, benchDB); err != nil {
		return b, err
	}
	if b.d, err = b.connect(b.dst, benchDB); err != nil {
		return b, err
	}
	genRows := b.genRows()
	b.logf("creating staging table gen (%d rows), pgshadow and mimeo", genRows)
	if err := b.createGen(b.s, genRows); err != nil {
		return b, err
	}
	if err := b.installPgshadow(b.s, benchDB); err != nil {
		return b, err
	}
	b.mimeoSetup(b.s, b.d)
	return b, nil
}

func (b *bench) close() {
	for _, c := range b.conns {
		c.Close(context.Background())
	}
	for _, s := range []*pgserver.Server{b.src, b.lsrc, b.dst} {
		if s != nil {
			if err := s.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: stop %s: %v\n", s.Name, err)
			}
		}
	}
	if b.tmpDir != "" {
		os.RemoveAll(b.tmpDir)
	}
}

func pgBinDir() (string, error) {
	// the private installation `make bench` prepares (tests/pgroot)
	if dir := os.Getenv("PGSHADOW_BINDIR"); dir != "" {
		if _, err := os.Stat(dir + "/pgbench"); err == nil {
			return dir, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(dir + "/pgbench"); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(dirs) == 0 {
		return "", errors.New("pgbench not found (pg_config --bindir, /usr/lib/postgresql/*/bin)")
	}
	sort.Strings(dirs)
	return strings.TrimSuffix(dirs[len(dirs)-1], "/pgbench"), nil
}

// connect opens a connection that lives until the benchmark ends.
func (b *bench) connect(s *pgserver.Server, db string) (*pgx.Conn, error) {
	c, err := pgx.Connect(b.ctx, s.ConnString(db))
	if err != nil {
		return nil, fmt.Errorf("connect to %s/%s: %w", s.Name, db, err)
	}
	b.conns = append(b.conns, c)
	return c, nil
}

func (b *bench) createDB(s *pgserver.Server, db string) error {
	c, err := pgx.Connect(b.ctx, s.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.Name, err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(b.ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("%s: create database %s: %w", s.Name, db, err)
	}
	return nil
}

// exec runs statements (simple protocol, so several may be given at once),
// naming the SQL on failure.
func (b *bench) exec(c *pgx.Conn, sql string, args ...any) error {
	if _, err := c.Exec(b.ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", oneLine(sql), err)
	}
	return nil
}

// timed runs sql and returns its wall-clock time in seconds.
func (b *bench) timed(c *pgx.Conn, sql string, args ...any) (float64, error) {
	t := time.Now()
	err := b.exec(c, sql, args...)
	return time.Since(t).Seconds(), err
}

func (b *bench) queryInt(c *pgx.Conn, sql string, args ...any) (int64, error) {
	var n int64
	if err := c.QueryRow(b.ctx, sql, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", oneLine(sql), err)
	}
	return n, nil
}

func (b *bench) queryText(c *pgx.Conn, sql string, args ...any) (string, error) {
	var s string
	if err := c.QueryRow(b.ctx, sql, args...).Scan(&s); err != nil {
		return "", fmt.Errorf("%s: %w", oneLine(sql), err)
	}
	return s, nil
}

func oneLine(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// waitFor polls cond every interval until it is true; the time it became
// true is when the poll saw it, so the interval bounds the error.
func (b *bench) waitFor(what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: still not true after %s", what, timeout)
		}
		select {
		case <-b.ctx.Done():
			return b.ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

const pollInterval = 5 * time.Millisecond

// variant is one contender of an interleaved measurement. run does its own
// untimed preparation and reports one or more measurements with rec.
type variant struct {
	name string
	run  func(rep int, rec func(metric string, v float64)) error
}

// results maps "variant/metric" to one value per repetition.
type results map[string][]float64

func (r results) get(variant, metric string) []float64 { return r[variant+"/"+metric] }

// cpu is the CPU seconds recorded alongside a metric (see recTimed).
func (r results) cpu(variant, metric string) []float64 { return r[variant+"/"+metric+".cpu"] }

// recTimed runs f and records its wall-clock seconds as metric and its CPU
// seconds as metric.cpu.
func (b *bench) recTimed(rec func(string, float64), metric string, f func() error) error {
	wall, cpu, err := b.measure(f)
	if err != nil {
		return err
	}
	rec(metric, wall)
	rec(metric+".cpu", cpu)
	return nil
}

// servers are the servers that were started.
func (b *bench) servers() []*pgserver.Server {
	var out []*pgserver.Server
	for _, s := range []*pgserver.Server{b.src, b.lsrc, b.dst} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// interleave runs every variant reps times, rotating the order each
// repetition so no contender always runs first (or right after a heavy one).
func (b *bench) interleave(label string, reps int, vs []variant) (results, error) {
	res := results{}
	for r := 0; r < reps; r++ {
		for i := range vs {
			v := vs[(i+r)%len(vs)]
			err := v.run(r, func(metric string, x float64) {
				res[v.name+"/"+metric] = append(res[v.name+"/"+metric], x)
				b.logf("%s rep %d/%d: %s %s = %.4g", label, r+1, reps, v.name, metric, x)
			})
			if err != nil {
				return res, fmt.Errorf("%s, %s (repetition %d): %w", label, v.name, r+1, err)
			}
			if err := b.ctx.Err(); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// checkpoint flushes both servers so no checkpoint starts inside a timing.
func (b *bench) checkpoint(cs ...*pgx.Conn) error {
	var fs []func() error
	for _, c := range cs {
		fs = append(fs, func() error { return b.exec(c, "CHECKPOINT") })
	}
	return parallel(fs...)
}

// parallel runs each f in a goroutine of its own (each must use its own
// connection) and joins their errors: untimed preparation on the two
// servers need not take twice as long.
func parallel(fs ...func() error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// priority is the nice value the benchmark gives its servers and itself.
const priority = -10

// raisePriority lowers the nice value of the servers' postmasters (backends
// forked later inherit it) and of this process (pgbench inherits it), so
// that other work on a shared machine disturbs the measurements less. It
// applies to every contender alike; where it is not permitted the run goes
// on and the report says so.
func (b *bench) raisePriority() {
	var errs []error
	for _, s := range []*pgserver.Server{b.src, b.lsrc, b.dst} {
		pid := postmasterPID(s.DataDir)
		if pid == 0 {
			errs = append(errs, fmt.Errorf("%s: no postmaster.pid", s.Name))
			continue
		}
		errs = append(errs, syscall.Setpriority(syscall.PRIO_PROCESS, pid, priority))
	}
	errs = append(errs, syscall.Setpriority(syscall.PRIO_PROCESS, 0, priority))
	if err := errors.Join(errs...); err != nil {
		b.rep.settings = append(b.rep.settings, fmt.Sprintf("process priority: could not be raised (%v); other load on the machine affects the figures fully", err))
		return
	}
	b.rep.settings = append(b.rep.settings, fmt.Sprintf("process priority: the servers and the benchmark run at nice %d, so other work on a shared machine disturbs them less (it applies to every contender alike)", priority))
}
