// Fast tests of pgshadow's pure SQL functions against one server and one
// database: the snapshot arithmetic the watermarks rest on, the pending
// predicate, how a target parses a column's array literal, the row filter
// entry points and the shape of a capture function. The suites that ship
// between servers exercise the same functions end to end; these name the
// function that broke, in seconds.
package unit_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, "source")
}

// db is the one database every test here reads: the functions under test
// change nothing, so the tests share it.
var db *pgtest.DB

func shared(t *testing.T) *pgtest.DB {
	t.Helper()
	if db == nil {
		// Created under the first test but outlives it: dropped with the server.
		db = pgtest.NewDB(&keep{t}, pgtest.Server("source"))
		db.Exec(t, `CREATE EXTENSION pgshadow CASCADE;
			CREATE TYPE mood AS ENUM ('sad', 'happy');
			CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
			CREATE TABLE orders (id integer PRIMARY KEY, status text, total numeric, placed timestamptz,
			                     m mood, amount integer)`)
	}
	return db
}

// keep is a testing.TB whose cleanups are dropped: the shared database lives
// as long as the test binary's server.
type keep struct{ *testing.T }

func (keep) Cleanup(func()) {}

var ctx = pgtest.Ctx

// sqlState returns err's SQLSTATE and message, or fails the test when err is
// not a server error.
func sqlState(t *testing.T, what string, err error) (string, string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("%s: want a server error, got %v", what, err)
	}
	return pgErr.Code, pgErr.Message
}

// nullable runs a query of one text value, NULL shown as <NULL>.
func nullable(t *testing.T, d *pgtest.DB, sql string, args ...any) string {
	t.Helper()
	var got *string
	if err := d.Pool.QueryRow(ctx(t), sql, args...).Scan(&got); err != nil {
		t.Fatalf("%s %v: %v", sql, args, err)
	}
	if got == nil {
		return "<NULL>"
	}
	return *got
}

// visible lists the xids in 1..40 that snapshot s (an SQL expression) sees
// as committed.
func visible(t *testing.T, d *pgtest.DB, s string) string {
	t.Helper()
	return d.QueryString(t, fmt.Sprintf(`SELECT coalesce(string_agg(g::text, ',' ORDER BY g), '')
		FROM generate_series(1, 40) g WHERE pg_visible_in_snapshot(g::text::xid8, %s)`, s))
}

// _snapshot_between(old, new, bound) sees what old sees plus what new sees
// below bound, and nothing else: checked xid by xid, and for the exact text
// (a watermark is stored as this text).
func TestSnapshotBetween(t *testing.T) {
	d := shared(t)
	cases := []struct{ old, new, bound, want string }{
		{"10:10:", "20:20:", "15", "15:15:"},
		// 10 committed by new and below the bound: visible; 11 is not below it
		{"10:12:10,11", "20:20:", "11", "11:12:11"},
		// started after old, below the bound, still running for new
		{"10:10:", "12:16:12,14", "15", "12:15:12,14"},
		// a bound below old's xmax changes nothing (15:20:15 sees what
		// 10:20:15 sees: both run only 15 of 10..19)
		{"10:20:15", "30:30:", "5", "15:20:15"},
		// the bound at new's xmax gives new
		{"10:10:", "20:25:22", "25", "22:25:22"},
		// old's in-progress xid that new still runs stays in progress
		{"5:9:5,7", "7:30:7,25", "30", "7:30:7,25"},
	}
	for _, c := range cases {
		got := d.QueryString(t, "SELECT pgshadow._snapshot_between($1::pg_snapshot, $2::pg_snapshot, $3::xid8)::text",
			c.old, c.new, c.bound)
		if got != c.want {
			t.Errorf("_snapshot_between(%s, %s, %s) = %s, want %s", c.old, c.new, c.bound, got, c.want)
		}
		want := d.QueryString(t, fmt.Sprintf(`SELECT coalesce(string_agg(g::text, ',' ORDER BY g), '')
			FROM generate_series(1, 40) g
			WHERE pg_visible_in_snapshot(g::text::xid8, %[1]s)
			   OR (g < %[3]s AND pg_visible_in_snapshot(g::text::xid8, %[2]s))`,
			"'"+c.old+"'::pg_snapshot", "'"+c.new+"'::pg_snapshot", c.bound))
		if have := visible(t, d, "'"+got+"'::pg_snapshot"); have != want {
			t.Errorf("_snapshot_between(%s, %s, %s) sees %s, want what old sees plus new below the bound: %s",
				c.old, c.new, c.bound, have, want)
		}
	}
}

// _snapshot() is the current snapshot, except that the transaction's own
// xid, once it has one, counts as in progress: a watermark taken by a
// transaction that wrote must not mark its own uncommitted changes shipped.
func TestSnapshotLeavesTheOwnXidInProgress(t *testing.T) {
	d := shared(t)
	tx, err := d.Pool.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx(t))
	var same bool
	if err := tx.QueryRow(ctx(t), "SELECT pgshadow._snapshot()::text = pg_current_snapshot()::text").Scan(&same); err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Error("without an xid, _snapshot() differs from pg_current_snapshot()")
	}
	// the xid is assigned in a statement of its own: a statement's snapshot
	// is taken before it runs, so one assigned during it is above its xmax
	if _, err := tx.Exec(ctx(t), "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	// a later transaction commits, so the next snapshot's xmax passes the own
	// xid, which the snapshot then counts as visible (it is not in xip)
	d.Exec(t, "SELECT pg_current_xact_id()")
	var ownInCurrent, ownInSnapshot bool
	var snap string
	if err := tx.QueryRow(ctx(t), `SELECT pg_visible_in_snapshot(x, pg_current_snapshot()),
		       pg_visible_in_snapshot(x, pgshadow._snapshot()), pgshadow._snapshot()::text
		  FROM pg_current_xact_id_if_assigned() x`).Scan(&ownInCurrent, &ownInSnapshot, &snap); err != nil {
		t.Fatal(err)
	}
	if !ownInCurrent {
		t.Error("the transaction's own snapshot does not see its xid: the premise of _snapshot() no longer holds")
	}
	if ownInSnapshot {
		t.Errorf("_snapshot() = %s sees the transaction's own xid as committed", snap)
	}
}

// _pending_where selects the rows whose xid old does not see and new does,
// and names both snapshots as given (they are SQL expressions).
func TestPendingWhere(t *testing.T) {
	d := shared(t)
	text := d.QueryString(t, "SELECT pgshadow._pending_where('o.s', 'n.s')")
	want := "shadow_xid >= pg_snapshot_xmin(o.s) AND NOT pg_visible_in_snapshot(shadow_xid, o.s)" +
		" AND shadow_xid < pg_snapshot_xmax(n.s) AND pg_visible_in_snapshot(shadow_xid, n.s)"
	if text != want {
		t.Errorf("_pending_where text:\n%s\nwant\n%s", text, want)
	}
	cases := []struct{ old, new, want string }{
		{"10:10:", "20:20:", "10,11,12,13,14,15,16,17,18,19"},
		{"10:14:11,12", "20:20:", "11,12,14,15,16,17,18,19"},
		{"10:14:11,12", "12:20:12,18", "11,14,15,16,17,19"},
		{"20:20:", "20:20:", ""},
	}
	for _, c := range cases {
		pred := d.QueryString(t, "SELECT pgshadow._pending_where(quote_literal($1::text) || '::pg_snapshot', quote_literal($2::text) || '::pg_snapshot')",
			c.old, c.new)
		got := d.QueryString(t, `SELECT coalesce(string_agg(shadow_xid::text, ',' ORDER BY shadow_xid), '')
			FROM (SELECT g::text::xid8 AS shadow_xid FROM generate_series(1, 40) g) v WHERE `+pred)
		if got != c.want {
			t.Errorf("pending between %s and %s: %s, want %s", c.old, c.new, got, c.want)
		}
	}
}

// _row_estimate: the planner's row count, summed over a partitioned
// table's leaves (whose root counts nothing), NULL before any ANALYZE.
func TestRowEstimate(t *testing.T) {
	d := shared(t)
	d.Exec(t, `CREATE TABLE est_plain (id int PRIMARY KEY);
		CREATE TABLE est_parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
		CREATE TABLE est_p1 PARTITION OF est_parted FOR VALUES FROM (0) TO (100);
		CREATE TABLE est_p2 PARTITION OF est_parted FOR VALUES FROM (100) TO (1000)`)
	for _, tbl := range []string{"est_plain", "est_parted"} {
		if got := d.QueryString(t, "SELECT coalesce(pgshadow._row_estimate($1::regclass)::text, '<NULL>')", tbl); got != "<NULL>" {
			t.Errorf("_row_estimate(%s) before ANALYZE: %s, want NULL", tbl, got)
		}
	}
	d.Exec(t, `INSERT INTO est_plain SELECT g FROM generate_series(1, 300) g;
		INSERT INTO est_parted SELECT g FROM generate_series(0, 399) g;
		ANALYZE est_plain, est_parted`)
	for tbl, want := range map[string]int64{"est_plain": 300, "est_parted": 400} {
		if got := d.QueryInt(t, "SELECT pgshadow._row_estimate($1::regclass)", tbl); got != want {
			t.Errorf("_row_estimate(%s): %d, want %d", tbl, got, want)
		}
	}
}

// _array_of: the array type a target parses a column's text array literal
// as, or NULL where the text must go through text[] and a cast per value.
func TestArrayOf(t *testing.T) {
	d := shared(t)
	cases := []struct{ typ, want string }{
		{"integer", "integer[]"},
		{"text", "text[]"},
		{"numeric(10,2)", "numeric(10,2)[]"},
		{"timestamp with time zone", "timestamp with time zone[]"},
		{"public.mood", "public.mood[]"},
		{"mood", "<NULL>"},      // resolved under the pinned search_path only
		{"integer[]", "<NULL>"}, // elements are array literals themselves
		{"box", "<NULL>"},       // its array delimiter is ';'
		{"no_such_type", "<NULL>"},
	}
	for _, c := range cases {
		if s := nullable(t, d, "SELECT pgshadow._array_of($1)", c.typ); s != c.want {
			t.Errorf("_array_of(%s) = %s, want %s", c.typ, s, c.want)
		}
	}
}

// The row filter entry points: _filter parses and canonicalizes (tests/filter
// covers the grammar), _filter_sql re-checks a stored filter before a read.
func TestFilterEntryPoints(t *testing.T) {
	d := shared(t)
	for _, c := range []struct{ in, want string }{
		{"", "<NULL>"}, // NULL in, NULL out: no filter
		{"id > 3", "((t.id OPERATOR(pg_catalog.>) CAST('3' AS integer)))"},
		{"status = 'open' AND total IS NULL",
			"(((t.status OPERATOR(pg_catalog.=) CAST('open' AS pg_catalog.text)) AND (t.total IS NULL)))"},
	} {
		var in any = c.in
		if c.in == "" {
			in = nil
		}
		s := nullable(t, d, "SELECT pgshadow._filter('orders', $1)", in)
		if s != c.want {
			t.Errorf("_filter(%q) = %s, want %s", c.in, s, c.want)
		}
		if s != "<NULL>" {
			if again := d.QueryString(t, "SELECT pgshadow._filter('orders', $1)", s); again != s {
				t.Errorf("_filter is not idempotent on %s: %s", s, again)
			}
		}
	}
	for _, c := range []struct{ in, want string }{
		{"   ", "the filter is empty"},
		{"nosuch = 1", "nosuch"},
		{"m = 'sad'", "mood"},
		{"id > 3 id", "unexpected"},
	} {
		_, err := d.Pool.Exec(ctx(t), "SELECT pgshadow._filter('orders', $1)", c.in)
		code, msg := sqlState(t, fmt.Sprintf("_filter(%q)", c.in), err)
		if !strings.Contains(msg, "orders") || !strings.Contains(msg, c.want) {
			t.Errorf("_filter(%q) error %s %q: want the table and %q named", c.in, code, msg, c.want)
		}
	}
	if got := d.QueryString(t, "SELECT pgshadow._filter_sql('orders', NULL)"); got != "true" {
		t.Errorf("_filter_sql without a filter = %s, want true", got)
	}
	canon := "((t.amount OPERATOR(pg_catalog.>) CAST('0' AS integer)))"
	if got := d.QueryString(t, "SELECT pgshadow._filter_sql('orders', $1)", canon); got != canon {
		t.Errorf("_filter_sql(%s) = %s, want it unchanged", canon, got)
	}
	// a column whose type became a user-defined one since subscribing
	tx, err := d.Pool.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx(t))
	if _, err := tx.Exec(ctx(t), "ALTER TABLE orders ALTER amount TYPE posint"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx(t), "SELECT pgshadow._filter_sql('orders', $1)", canon)
	code, msg := sqlState(t, "_filter_sql over a column of a domain type", err)
	if code != "22023" || !strings.Contains(msg, "amount") || !strings.Contains(msg, "posint") {
		t.Errorf("_filter_sql over a column of a domain type: %s %q, want 22023 naming amount and posint", code, msg)
	}
}

// _capture_fn returns the CREATE statement of a table's capture function:
// named after the shadow, SECURITY DEFINER with a pinned search_path, one
// static INSERT per event (no EXECUTE) into the generation it is given, a
// NOTIFY only when asked, every name quoted, and valid PL/pgSQL. A name
// holding the body's dollar-quote tag is refused, as is a generation other
// than 0 or 1.
func TestCaptureFunctionText(t *testing.T) {
	d := shared(t)
	quiet := d.QueryString(t, `SELECT pgshadow._capture_fn('public__Odd"name', ARRAY['id', 'Key Two']::name[], 0::int2, false)`)
	if strings.Contains(quiet, "pg_notify") || !strings.Contains(quiet, "'I', 0::pg_catalog.int2,") {
		t.Errorf("capture function for generation 0 without NOTIFY:\n%s", quiet)
	}
	text := d.QueryString(t, `SELECT pgshadow._capture_fn('public__Odd"name', ARRAY['id', 'Key Two']::name[], 1::int2, true)`)
	for _, want := range []string{
		`CREATE OR REPLACE FUNCTION pgshadow."public__Odd""name_fn"() RETURNS trigger`,
		"LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgshadow$",
		`INSERT INTO pgshadow."public__Odd""name" (id, "Key Two", shadow_op, shadow_gen, shadow_xid, shadow_at)`,
		`VALUES (OLD.id, OLD."Key Two", 'D', 1::pg_catalog.int2,`,
		"'I', 1::pg_catalog.int2,", "'U', 1::pg_catalog.int2,", "'T', 1::pg_catalog.int2,",
		"FROM pgshadow_new", "FROM pgshadow_old",
		"PERFORM pg_catalog.pg_notify('pgshadow', '');",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("capture function text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "pgshadow.tracked") {
		t.Errorf("capture function text reads the catalog on every statement:\n%s", text)
	}
	_, err := d.Pool.Exec(ctx(t), "SELECT pgshadow._capture_fn('s__t', '{id}', 2::int2, false)")
	if err == nil || !strings.Contains(err.Error(), "must be 0 or 1") {
		t.Errorf("_capture_fn with generation 2: %v, want an error", err)
	}
	if strings.Contains(text, "EXECUTE") {
		t.Errorf("capture function text runs dynamic SQL:\n%s", text)
	}
	if n := strings.Count(text, "$pgshadow$"); n != 2 {
		t.Errorf("capture function text holds $pgshadow$ %d times, want 2 (its body's quotes)", n)
	}
	// it compiles: PL/pgSQL checks the body's syntax at CREATE
	tx, err := d.Pool.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx(t))
	if _, err := tx.Exec(ctx(t), text); err != nil {
		t.Errorf("capture function text does not compile: %v\n%s", err, text)
	}
	for _, args := range [][2]string{{"x$pgshadow$y", "{id}"}, {"s__t", "{id,a$pgshadow$b}"}} {
		_, err := d.Pool.Exec(ctx(t), "SELECT pgshadow._capture_fn($1, $2::name[], 0::int2, false)", args[0], args[1])
		if code, msg := sqlState(t, "_capture_fn with $pgshadow$ in a name", err); code != "42602" || !strings.Contains(msg, "$pgshadow$") {
			t.Errorf("_capture_fn(%s, %s): %s %q, want 42602 naming $pgshadow$", args[0], args[1], code, msg)
		}
	}
}
