// Failures an operator can see and alert on: a failed call is recorded
// (shadow_status.last_error, shadow_errors, shadow_failures) on the caller's
// subscriptions only, the history stays bounded, and `pgshadow status
// -check` answers as an alert plugin.
package filemode_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// downTarget is a source whose target "down" is a server of the test's own,
// with table a (the admin's) and table b (another role's) subscribed to it
// and copied; then the target server is killed.
type downTarget struct {
	Src   *pgtest.DB
	other string // owner of b
}

func newDownTarget(t *testing.T) *downTarget {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, pgserver.Options{Name: "alerts-target", BinDir: pgtest.TargetBinDir()})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	dst := pgtest.NewDB(t, s)
	src := pgtest.NewDBWithExtension(t, pgtest.Server("source"))
	other := pgtest.NewRole(t, src, "alerts_other", "")
	dst.Exec(t, "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text)")
	src.AddPushTarget(t, "down", "down_srv", dst)
	src.Exec(t, "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text)")
	src.Exec(t, "SELECT shadow_track('a'), shadow_track('b')")
	src.Exec(t, "SELECT shadow_subscribe('down', 'a'), shadow_subscribe('down', 'b')")
	// b becomes another role's: the admin's export no longer ships it
	src.Exec(t, "ALTER TABLE b OWNER TO "+other)
	src.Exec(t, "INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y')")
	if err := s.Kill(); err != nil {
		t.Fatalf("%v", err)
	}
	// the test database on it is dropped at cleanup, on a running server
	t.Cleanup(func() {
		if err := s.Restart(context.Background()); err != nil {
			t.Errorf("%v", err)
		}
	})
	return &downTarget{Src: src, other: other}
}

// On the old code the failed call rolled back and left nothing: no
// last_error, no shadow_errors row, no history.
func TestCLIFailedExportIsRecordedForTheCallerOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server of its own")
	}
	bin := pgshadowBinary(t)
	d := newDownTarget(t)
	r := cli(t, bin, nil, "export", "-d", d.Src.ConnString(), "-target", "down", "-timeout", "1m")
	r.wantFailure(t, "export to a stopped target", `target "down"`)

	want := []string{"a|1"}
	if got := d.Src.QueryStrings(t, `SELECT "table"::text || '|' || count(*) FROM shadow_failures
		WHERE target = 'down' GROUP BY "table" ORDER BY 1`); pgtest.DiffRows(want, got) != "" {
		t.Errorf("shadow_failures after the failed export: %v, want %v", got, want)
	}
	msg := d.Src.QueryString(t, "SELECT message FROM shadow_failures WHERE \"table\" = 'a'::regclass")
	if !strings.Contains(msg, "pgshadow export") || !strings.Contains(msg, `target "down"`) {
		t.Errorf("recorded message %q does not say what failed and where", msg)
	}
	got := d.Src.QueryStrings(t, `SELECT "table"::text || '|' || (last_error IS NOT NULL) || '|' || failures
		FROM shadow_status WHERE target = 'down' ORDER BY 1`)
	if diff := pgtest.DiffRows([]string{"a|true|1", "b|false|0"}, got); diff != "" {
		t.Errorf("shadow_status (table|error|failures): want (-) got (+):\n%s", diff)
	}
	if n := d.Src.QueryInt(t, "SELECT count(*) FROM shadow_errors WHERE target = 'down' AND \"table\" = 'a'::regclass"); n != 1 {
		t.Errorf("shadow_errors holds %d rows for a, want 1", n)
	}
	// another role's subscription to the same target: nothing recorded
	if n := d.Src.QueryInt(t, `SELECT count(*) FROM pgshadow.failure f JOIN pgshadow.subscription s ON s.id = f.sub_id
		WHERE s.tbl = 'b'::regclass`); n != 0 {
		t.Errorf("the failure was recorded on another role's subscription (%d rows)", n)
	}
	if n := d.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.error e JOIN pgshadow.subscription s ON s.id = e.sub_id WHERE s.tbl = 'b'::regclass"); n != 0 {
		t.Errorf("pgshadow.error got a row for another role's subscription")
	}

	// the same from SQL: shadow_export_logged records, commits, and raises
	err := d.Src.ExecErr("CALL shadow_export_logged('down')")
	if err == nil || !strings.Contains(err.Error(), `target "down"`) {
		t.Errorf("CALL shadow_export_logged to a stopped target: %v, want an error naming the target", err)
	}
	if n := d.Src.QueryInt(t, "SELECT failures FROM shadow_status WHERE \"table\" = 'a'::regclass"); n != 2 {
		t.Errorf("after shadow_export_logged failures = %d, want 2", n)
	}
	// a plain shadow_export still raises and keeps nothing
	if err := d.Src.ExecErr("SELECT * FROM shadow_export('down')"); err == nil {
		t.Errorf("shadow_export to a stopped target succeeded")
	}
	if n := d.Src.QueryInt(t, "SELECT count(*) FROM shadow_failures"); n != 2 {
		t.Errorf("shadow_failures holds %d rows, want 2", n)
	}

	// pgshadow.record_failure called by b's owner records on b only, though
	// it may read a's subscription
	d.Src.Exec(t, "GRANT SELECT ON b TO PUBLIC; GRANT SELECT ON a TO PUBLIC")
	conn := d.Src.ConnAs(t, d.other, pgtest.RolePassword)
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT pgshadow.record_failure('down', '08006', 'down')").Scan(&n); err != nil {
		t.Fatalf("record_failure as the owner of b: %v", err)
	}
	if n != 1 {
		t.Errorf("record_failure as the owner of b recorded %d subscriptions, want 1 (b only)", n)
	}
	got = d.Src.QueryStrings(t, `SELECT s.tbl::text || '|' || count(*) FROM pgshadow.failure f JOIN pgshadow.subscription s ON s.id = f.sub_id GROUP BY s.tbl ORDER BY 1`)
	if diff := pgtest.DiffRows([]string{"a|2", "b|1"}, got); diff != "" {
		t.Errorf("failures recorded: want (-) got (+):\n%s", diff)
	}
	for _, bad := range []string{"SELECT pgshadow.record_failure('down', 'nope', 'x')", "SELECT pgshadow.record_failure('nosuch', '08006', 'x')"} {
		if err := d.Src.ExecErr(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}

	// the alert check: an error is CRITICAL
	r = cli(t, bin, nil, "status", "-check", "-d", d.Src.ConnString())
	if r.code != 2 || !strings.HasPrefix(r.stdout, "PGSHADOW CRITICAL - ") || !strings.Contains(r.stdout, "public.a") {
		t.Errorf("status -check with a failed subscription: exit %d, stdout %q, want 2 and PGSHADOW CRITICAL naming public.a", r.code, r.stdout)
	}
	r = cli(t, bin, nil, "status", "-check", "-d", d.Src.ConnString(), "-target", "nosuch")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "PGSHADOW OK - no subscriptions") {
		t.Errorf("status -check of a target with no subscriptions: exit %d, stdout %q", r.code, r.stdout)
	}
}

// The history keeps the last 100 failures of a subscription and nothing
// older than 30 days.
func TestFailureHistoryIsBounded(t *testing.T) {
	e := newEnv(t)
	e.All(t, "CREATE TABLE h (id int PRIMARY KEY)")
	e.SubscribeFiles(t, "h")
	id := e.Src.QueryString(t, "SELECT id::text FROM pgshadow.subscription WHERE tbl = 'h'::regclass")
	e.Src.Exec(t, fmt.Sprintf("SELECT pgshadow._record_failure(%s, '08006', 'failure ' || g) FROM generate_series(1, 130) g", id))
	if n := e.Src.QueryInt(t, "SELECT count(*) FROM shadow_failures"); n != 100 {
		t.Errorf("after 130 failures shadow_failures holds %d rows, want 100", n)
	}
	if got := e.Src.QueryString(t, "SELECT min(message) || ' .. ' || max(message) FROM shadow_failures WHERE message ~ '(31|130)$'"); got != "failure 130 .. failure 31" {
		t.Errorf("kept %q, want the newest 100 (failure 31 .. failure 130)", got)
	}
	if n := e.Src.QueryInt(t, "SELECT failures FROM shadow_status"); n != 130 {
		t.Errorf("failures counter %d, want 130", n)
	}
	e.Src.Exec(t, "UPDATE pgshadow.failure SET at = at - interval '31 days' WHERE message = 'failure 130'")
	e.Src.Exec(t, fmt.Sprintf("SELECT pgshadow._record_failure(%s, '08006', 'failure 131')", id))
	if n := e.Src.QueryInt(t, "SELECT count(*) FROM shadow_failures WHERE message = 'failure 130'"); n != 0 {
		t.Errorf("a failure older than 30 days was kept")
	}
	// an export that succeeds clears the error, not the history
	e.Src.Exec(t, "INSERT INTO h VALUES (1)")
	e.Export(t)
	if n := e.Src.QueryInt(t, "SELECT count(*) FROM shadow_failures"); n != 99 {
		t.Errorf("after a successful export shadow_failures holds %d rows, want 99", n)
	}
}

// `pgshadow status -check`: OK, WARNING on lag, CRITICAL on pending keys,
// UNKNOWN when the database cannot be reached.
func TestStatusCheckVerdicts(t *testing.T) {
	bin := pgshadowBinary(t)
	e := newEnv(t)
	e.All(t, "CREATE TABLE c (id int PRIMARY KEY)")
	e.Subscribe(t, "c")
	dsn := e.Src.ConnString()
	check := func(what string, code int, prefix string, args ...string) {
		t.Helper()
		r := cli(t, bin, nil, append([]string{"status", "-check", "-d", dsn}, args...)...)
		t.Logf("%s: exit %d: %s", what, r.code, strings.TrimSpace(r.stdout))
		if r.code != code || !strings.HasPrefix(r.stdout, prefix) || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("%s: exit %d, stdout %q; want exit %d and one line starting %q", what, r.code, r.stdout, code, prefix)
		}
		if code < 3 && !strings.Contains(r.stdout, "| subscriptions=2 ") {
			t.Errorf("%s: no perfdata: %q", what, r.stdout)
		}
	}
	check("nothing pending", 0, "PGSHADOW OK - 2 subscriptions, 0 keys pending", "-warn-lag", "1s", "-crit-pending", "1")
	e.Src.Exec(t, "INSERT INTO c SELECT generate_series(1, 3)")
	time.Sleep(1500 * time.Millisecond)
	check("lag over -warn-lag", 1, "PGSHADOW WARNING - 2 of 2 subscriptions: files public.c lag", "-warn-lag", "1s", "-crit-lag", "1h")
	check("pending over -crit-pending", 2, "PGSHADOW CRITICAL - ", "-warn-lag", "1s", "-crit-pending", "3")
	check("under the limits", 0, "PGSHADOW OK - ", "-warn-lag", "1h", "-crit-pending", "4")

	// a port nobody listens on
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dsn = fmt.Sprintf("host=127.0.0.1 port=%d dbname=x user=x connect_timeout=3", port)
	r := cli(t, bin, nil, "status", "-check", "-d", dsn)
	if r.code != 3 || !strings.HasPrefix(r.stdout, "PGSHADOW UNKNOWN - cannot connect") {
		t.Errorf("unreachable database: exit %d, stdout %q; want 3 and PGSHADOW UNKNOWN", r.code, r.stdout)
	}
	r = cli(t, bin, nil, "status", "-check", "-warn-lag", "soon")
	if r.code != 3 || !strings.HasPrefix(r.stdout, "PGSHADOW UNKNOWN - bad arguments") {
		t.Errorf("bad flag with -check: exit %d, stdout %q; want 3", r.code, r.stdout)
	}
}
