// Package pgtest is the testing layer over pgserver: TestMain that starts the
// package's servers once, a fresh database per test, query helpers that fail
// the test with the SQL and the server's error, and row comparisons that do
// not depend on server or session settings.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshadow/pgshadow/internal/pgserver"
)

// queryTimeout bounds every helper call so that a test stuck on a lock fails
// with its SQL instead of hanging until the global test timeout.
const queryTimeout = 2 * time.Minute

var (
	serversMu sync.Mutex
	servers   = map[string]*pgserver.Server{}
)

// Main starts the named servers (in parallel), runs the package's tests and
// stops the servers again, also on SIGINT/SIGTERM and on a panic in the
// calling goroutine. A panicking test kills the process from another
// goroutine, which no defer can see; such orphans carry "pgshadow-test" in
// their data directory path for a pkill-based cleanup. Every server runs the
// source PostgreSQL ($PGSHADOW_BINDIR); see MainRoles for target servers.
func Main(m *testing.M, names ...string) {
	os.Exit(run(m, names, nil))
}

// MainRoles is Main for packages whose servers play two roles: the sources
// run $PGSHADOW_BINDIR's PostgreSQL and the targets TargetBinDir's, so that
// `make test PG=13 PG_TARGET=18` replicates from one major to another (as an
// upgrade by replication does). Without PGSHADOW_TARGET_BINDIR both roles
// run the same installation.
func MainRoles(m *testing.M, sources, targets []string) {
	os.Exit(run(m, sources, targets))
}

// TargetBinDir is the bin directory of the PostgreSQL that servers playing
// the target role run: $PGSHADOW_TARGET_BINDIR, or "" (pgserver's default,
// the source installation) when unset.
func TargetBinDir() string {
	return os.Getenv("PGSHADOW_TARGET_BINDIR")
}

func run(m *testing.M, names, targets []string) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "pgtest: %v: stopping servers\n", sig)
		stopAll()
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	defer stopAll()

	if err := startAll(names, targets); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	return m.Run()
}

func startAll(names, targets []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	all := append(append([]string(nil), names...), targets...)
	errs := make([]error, len(all))
	for i, name := range all {
		o := pgserver.Options{Name: name}
		if i >= len(names) {
			o.BinDir = TargetBinDir()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := pgserver.Start(ctx, o)
			if err != nil {
				errs[i] = fmt.Errorf("start server %q: %w", name, err)
				return
			}
			serversMu.Lock()
			servers[name] = s
			serversMu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func stopAll() {
	serversMu.Lock()
	defer serversMu.Unlock()
	for name, s := range servers {
		if err := s.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop server %q: %v\n", name, err)
		}
		delete(servers, name)
	}
}

// Server returns a server started by Main; it panics for any other name
// because that is a mistake in the test package's TestMain.
func Server(name string) *pgserver.Server {
	serversMu.Lock()
	defer serversMu.Unlock()
	s, ok := servers[name]
	if !ok {
		panic(fmt.Sprintf("pgtest: server %q was not started; list it in pgtest.Main", name))
	}
	return s
}

// AdminConnString is the superuser DSN for database db on s.
func AdminConnString(s *pgserver.Server, db string) string {
	return s.ConnString(db)
}

// DB is a database created for one test and dropped when it ends.
type DB struct {
	Server *pgserver.Server
	Name   string
	Pool   *pgxpool.Pool
}

var dbSeq atomic.Int64

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// NewDB creates a fresh database (from template0, so nothing another test
// put into template1 leaks in) and drops it, WITH (FORCE), at cleanup.
func NewDB(t testing.TB, s *pgserver.Server) *DB {
	t.Helper()
	base := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	name := fmt.Sprintf("t_%s_%d_%d", base, os.Getpid()%100000, dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	if err := adminExec(ctx, s, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("create database %s on %s: %v", name, s.Name, err)
	}
	cfg, err := pgxpool.ParseConfig(s.ConnString(name))
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	cfg.MaxConns = 10
	// After Kill/Restart the pool holds dead connections; pinging the ones
	// that sat idle a moment replaces them before a test query hits them.
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		return p.IdleDuration > 100*time.Millisecond
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("open pool for %s: %v", name, err)
	}
	d := &DB{Server: s, Name: name, Pool: pool}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		if err := adminExec(ctx, s, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s on %s: %v", name, s.Name, err)
		}
	})
	return d
}

// NewDBWithExtension is NewDB with the pgshadow extension installed.
func NewDBWithExtension(t testing.TB, s *pgserver.Server) *DB {
	t.Helper()
	d := NewDB(t, s)
	d.Exec(t, "CREATE EXTENSION pgshadow CASCADE")
	return d
}

func adminExec(ctx context.Context, s *pgserver.Server, sql string) error {
	conn, err := pgx.Connect(ctx, s.ConnString("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// ConnString is the superuser DSN for this database.
func (d *DB) ConnString() string {
	return d.Server.ConnString(d.Name)
}

// Exec runs sql (several statements allowed when there are no args) and
// fails the test on error.
func (d *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if err := d.ExecErr(sql, args...); err != nil {
		t.Fatalf("%s", d.failure(sql, err))
	}
}

// ExecEach runs each statement in a transaction of its own, in order, and
// fails the test at the first error: a scenario of separate commits.
func (d *DB) ExecEach(t testing.TB, stmts ...string) {
	t.Helper()
	for _, sql := range stmts {
		d.Exec(t, sql)
	}
}

// ExecErr runs sql and returns the error, for tests that expect one.
func (d *DB) ExecErr(sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	_, err := d.Pool.Exec(ctx, sql, args...)
	return err
}

// QueryVal returns the single value of a one-row, one-column query, decoded
// by pgx (nil for NULL).
func (d *DB) QueryVal(t testing.TB, sql string, args ...any) any {
	t.Helper()
	return scanOne[any](t, d, sql, args)
}

// QueryString returns the single value of a one-row query in PostgreSQL's
// text output format; NULL is returned as "<NULL>" so that it never passes
// for an empty string.
func (d *DB) QueryString(t testing.TB, sql string, args ...any) string {
	t.Helper()
	var v string
	d.queryOne(t, sql, textResults(args), func(rows pgx.Rows) error {
		v = rawText(rows.RawValues()[0])
		return nil
	})
	return v
}

// QueryInt returns the single integer value of a one-row query; NULL fails.
func (d *DB) QueryInt(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	return scanOne[int64](t, d, sql, args)
}

// QueryStrings returns the first column of every row, as text ("<NULL>"
// for NULL), in the order the query returns them.
func (d *DB) QueryStrings(t testing.TB, sql string, args ...any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	out, err := collectText(ctx, d.Pool, sql, args)
	if err != nil {
		t.Fatalf("%s", d.failure(sql, err))
	}
	return out
}

// ConnAs opens a connection to this database as another role; it is closed
// at cleanup.
func (d *DB) ConnAs(t testing.TB, role, password string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.Server.ConnStringAs(d.Name, role, password))
	if err != nil {
		t.Fatalf("connect to %s on %s as %s: %v", d.Name, d.Server.Name, role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// stableSettings fix every session setting that changes how values print,
// so row text compares equal across servers with different defaults.
var stableSettings = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
}

// TableRows returns every row of table (a SQL name, quoted as needed) as
// PostgreSQL's row text, e.g. `(1,"a b",)`, sorted. With columns (SQL
// column names or expressions over the table's columns, quoted as needed)
// only those are rendered, in that order. It uses its own connection with
// stableSettings, so server and database defaults do not matter.
func (d *DB) TableRows(t testing.TB, table string, columns ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(d.ConnString())
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	for k, v := range stableSettings {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to %s on %s: %v", d.Name, d.Server.Name, err)
	}
	defer conn.Close(context.Background())
	row := "_pgtest_r.*"
	if len(columns) > 0 {
		row = strings.Join(columns, ", ")
	}
	sql := fmt.Sprintf("SELECT ROW(%s)::text FROM %s AS _pgtest_r", row, table)
	rows, err := collectText(ctx, conn, sql, nil)
	if err != nil {
		t.Fatalf("%s", d.failure(sql, err))
	}
	sort.Strings(rows)
	return rows
}

// AssertSameRows fails the test unless both tables hold the same rows
// (as TableRows renders them), reporting the counts and the differing rows.
func AssertSameRows(t testing.TB, a *DB, aTable string, b *DB, bTable string, columns ...string) {
	t.Helper()
	diff := DiffRows(a.TableRows(t, aTable, columns...), b.TableRows(t, bTable, columns...))
	if diff != "" {
		t.Fatalf("rows differ between %s %s.%s (-) and %s %s.%s (+):\n%s",
			a.Server.Name, a.Name, aTable, b.Server.Name, b.Name, bTable, diff)
	}
}

// WantRows fails unless table on d holds exactly the given rows, as
// TableRows renders them, in any order.
func WantRows(t testing.TB, d *DB, table string, want ...string) {
	t.Helper()
	if diff := DiffRows(want, d.TableRows(t, table)); diff != "" {
		t.Fatalf("%s on %s: expected rows (-) vs actual (+):\n%s", table, d.Server.Name, diff)
	}
}

// Lit quotes s as an SQL string literal (standard_conforming_strings is on).
func Lit(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Ident quotes s as an SQL identifier.
func Ident(s string) string {
	return pgx.Identifier{s}.Sanitize()
}

// maxDiffRows is how many differing rows per side a diff shows.
const maxDiffRows = 10

// DiffRows compares two row lists as multisets (order does not matter) and
// describes the difference: counts, then up to maxDiffRows rows found only
// in a ("-") and only in b ("+"). It returns "" when they are equal.
func DiffRows(a, b []string) string {
	counts := map[string]int{}
	for _, r := range a {
		counts[r]++
	}
	for _, r := range b {
		counts[r]--
	}
	var onlyA, onlyB []string
	for r, n := range counts {
		for ; n > 0; n-- {
			onlyA = append(onlyA, r)
		}
		for ; n < 0; n++ {
			onlyB = append(onlyB, r)
		}
	}
	if len(onlyA) == 0 && len(onlyB) == 0 {
		return ""
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	var sb strings.Builder
	fmt.Fprintf(&sb, "row counts: %d (-) vs %d (+); %d rows only in -, %d only in +\n",
		len(a), len(b), len(onlyA), len(onlyB))
	writeSide := func(mark string, rows []string) {
		for i, r := range rows {
			if i == maxDiffRows {
				fmt.Fprintf(&sb, "%s ... %d more\n", mark, len(rows)-maxDiffRows)
				break
			}
			fmt.Fprintf(&sb, "%s %s\n", mark, r)
		}
	}
	writeSide("-", onlyA)
	writeSide("+", onlyB)
	return sb.String()
}

// Eventually polls cond until it reports true, failing the test with cond's
// last message once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg)
		}
		time.Sleep(wait)
		wait = min(wait*2, 250*time.Millisecond)
	}
}

// querier is what *pgx.Conn and *pgxpool.Pool share for reading.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// textResults asks the server for text output, so values read back exactly
// as psql would print them whatever their type.
func textResults(args []any) []any {
	return append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)
}

func rawText(v []byte) string {
	if v == nil {
		return "<NULL>"
	}
	return string(v)
}

func collectText(ctx context.Context, q querier, sql string, args []any) ([]string, error) {
	rows, err := q.Query(ctx, sql, textResults(args)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		out = append(out, rawText(rows.RawValues()[0]))
	}
	return out, rows.Err()
}

// queryOne runs a query that must return exactly one row and hands that row
// to scan.
func (d *DB) queryOne(t testing.TB, sql string, args []any, scan func(pgx.Rows) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	n, err := func() (int, error) {
		rows, err := d.Pool.Query(ctx, sql, args...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			if n++; n == 1 {
				if err := scan(rows); err != nil {
					return n, err
				}
			}
		}
		return n, rows.Err()
	}()
	if err != nil {
		t.Fatalf("%s", d.failure(sql, err))
	}
	if n != 1 {
		t.Fatalf("%s", d.failure(sql, fmt.Errorf("query returned %d rows, want exactly 1", n)))
	}
}

// scanOne runs a query that must return exactly one row and scans its one
// value into a T, as pgx decodes it.
func scanOne[T any](t testing.TB, d *DB, sql string, args []any) T {
	t.Helper()
	var v T
	d.queryOne(t, sql, args, func(rows pgx.Rows) error { return rows.Scan(&v) })
	return v
}

// failure formats a failed statement with the server's detail, hint and
// context, which for PL/pgSQL errors name the function and line.
func (d *DB) failure(sql string, err error) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "on %s/%s: %v", d.Server.Name, d.Name, err)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		for _, f := range [][2]string{{"DETAIL", pgErr.Detail}, {"HINT", pgErr.Hint}, {"CONTEXT", pgErr.Where}} {
			if f[1] != "" {
				fmt.Fprintf(&sb, "\n%s: %s", f[0], f[1])
			}
		}
	}
	fmt.Fprintf(&sb, "\nSQL: %s", sql)
	return sb.String()
}

// Describe renders an error for a test failure: as it prints (with the
// context a caller wrapped it in, and a server error's SQLSTATE), then a
// server error's DETAIL, HINT and CONTEXT.
func Describe(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err.Error()
	}
	s := err.Error()
	for _, f := range [][2]string{{"DETAIL", pgErr.Detail}, {"HINT", pgErr.Hint}, {"CONTEXT", pgErr.Where}} {
		if f[1] != "" {
			s += "\n" + f[0] + ": " + f[1]
		}
	}
	return s
}

// LinkServer declares database to as foreign server srv in d, with a user
// mapping for d's superuser that logs in as to's superuser.
func (d *DB) LinkServer(t testing.TB, srv string, to *DB) {
	t.Helper()
	d.Exec(t, to.Server.ForeignServerSQL(srv, to.Name))
	d.Exec(t, to.Server.UserMappingSQL(srv))
}

// AddPushTarget is LinkServer, then pgshadow push target name over srv.
func (d *DB) AddPushTarget(t testing.TB, name, srv string, to *DB) {
	t.Helper()
	d.LinkServer(t, srv, to)
	d.Exec(t, "SELECT shadow_add_target($1, $2)", name, srv)
}

// Target names on a PushAndFiles source.
const (
	PushTarget = "push"
	FileTarget = "files"
)

// PushAndFiles is a source database with pgshadow and its two kinds of
// target: database Push, linked as push target PushTarget over foreign
// server "tgt", and file target FileTarget, whose batches are exported to
// directory Dir and imported into database Files.
type PushAndFiles struct {
	Src   *DB
	Push  *DB
	Files *DB
	Dir   string
}

// NewPushAndFiles creates the source on src, the push target's database on
// push and the file target's on files, and adds both targets.
func NewPushAndFiles(t testing.TB, src, push, files *pgserver.Server) *PushAndFiles {
	t.Helper()
	e := &PushAndFiles{
		Src:   NewDBWithExtension(t, src),
		Push:  NewDB(t, push),
		Files: NewDB(t, files),
		Dir:   t.TempDir(),
	}
	e.Src.AddPushTarget(t, PushTarget, "tgt", e.Push)
	e.Src.Exec(t, "SELECT shadow_add_target($1, NULL)", FileTarget)
	return e
}

// Conn is a dedicated superuser connection to d, closed at cleanup.
func (d *DB) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	return d.ConnAs(t, d.Server.User, d.Server.Password)
}

// Ctx is a context for one test's queries, cancelled when the test ends.
func Ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), queryTimeout)
	t.Cleanup(cancel)
	return c
}

// Run executes sql on c and fails the test on error, naming the role.
func Run(t testing.TB, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if err := RunErr(t, c, sql, args...); err != nil {
		t.Fatalf("as %s: %s\nSQL: %s", c.Config().User, Describe(err), sql)
	}
}

// RunEach executes each statement on c, in order, and fails the test at the
// first error, naming the role.
func RunEach(t testing.TB, c *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, sql := range stmts {
		Run(t, c, sql)
	}
}

// Begin begins a transaction on c and runs stmts in it, failing the test at
// the first error; the transaction stays open for the test to end.
func Begin(t testing.TB, c *pgx.Conn, stmts ...string) {
	t.Helper()
	RunEach(t, c, append([]string{"BEGIN"}, stmts...)...)
}

// RunErr executes sql on c and returns its error.
func RunErr(t testing.TB, c *pgx.Conn, sql string, args ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	_, err := c.Exec(ctx, sql, args...)
	return err
}

// RolePassword is the password of every role NewRole creates.
const RolePassword = "pgshadow_test_pw"

var roleSeq atomic.Int64

// NewRole creates a role on d's server (roles are cluster-wide, so the name
// gets a unique suffix) with the given options, e.g. "IN ROLE team"; it can
// log in unless options say NOLOGIN. At cleanup it drops what the role owns
// in d, then the role.
func NewRole(t testing.TB, d *DB, prefix, options string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid()%100000, roleSeq.Add(1))
	if !strings.Contains(options, "NOLOGIN") {
		options = "LOGIN " + options
	}
	d.Exec(t, fmt.Sprintf("CREATE ROLE %s PASSWORD '%s' %s", pgx.Identifier{name}.Sanitize(), RolePassword, options))
	t.Cleanup(func() {
		for _, sql := range []string{"DROP OWNED BY " + pgx.Identifier{name}.Sanitize() + " CASCADE",
			"DROP ROLE " + pgx.Identifier{name}.Sanitize()} {
			if err := d.ExecErr(sql); err != nil {
				t.Errorf("cleanup %s: %v", sql, err)
			}
		}
	})
	return name
}

// PartitionedDDL creates table ev, partitioned by range of day, with 2023 a
// leaf and 2024 sub-partitioned by hash of id; the key (id, day) holds both
// partition keys. The partition tests of several packages share it.
const PartitionedDDL = `
CREATE TABLE ev (id int, day date, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE ev_2023 PARTITION OF ev FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY HASH (id);
CREATE TABLE ev_2024_h0 PARTITION OF ev_2024 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE ev_2024_h1 PARTITION OF ev_2024 FOR VALUES WITH (MODULUS 2, REMAINDER 1);`

// PartitionedSeed fills 200 rows of ev over 2023 and 2024.
const PartitionedSeed = `INSERT INTO ev SELECT g, date '2023-01-01' + g * 3, 'seed' || g FROM generate_series(1, 200) g`

// RunInBackground runs run (a daemon's loop) in a goroutine until the
// returned stop is called, or the test ends; stop cancels run's context and
// fails the test unless run returns nil within 10s. what names it in the
// failure.
func RunInBackground(t testing.TB, what string, run func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s returned %v when its context ended, want nil", what, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not return within 10s of its context ending", what)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
