// Tests for the run subcommand: its flags, and one async change shipped by
// `pgshadow run` end to end until the signal context ends it. The daemon's
// behaviour in depth (lag, reconnects, retries) is tested in tests/modes.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-interval", "0s"},
		{"-interval", "soon"},
		{"-d", "host=x", "extra"},
	} {
		if err := commands["run"].run(context.Background(), args); err == nil {
			t.Errorf("pgshadow run %s: no error", strings.Join(args, " "))
		}
	}
}

// kvPushPair makes a source database with the extension and a target
// database on one server, each with table kv, and push target t1 from the
// source to the target.
func kvPushPair(t *testing.T) (src, dst *pgtest.DB) {
	s := pgtest.Server("migrate")
	src = pgtest.NewDBWithExtension(t, s)
	dst = pgtest.NewDB(t, s)
	dst.Exec(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	src.Exec(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	src.AddPushTarget(t, "t1", "dst", dst)
	return src, dst
}

// startDaemon runs `pgshadow run args` until the test ends; then it ends the
// daemon's context and fails the test unless the daemon returns nil within
// 10s.
func startDaemon(t *testing.T, args ...string) {
	pgtest.RunInBackground(t, "pgshadow run", func(ctx context.Context) error { return commands["run"].run(ctx, args) })
}

func TestRunShipsAsyncChangesUntilCancelled(t *testing.T) {
	src, dst := kvPushPair(t)
	src.Exec(t, "SELECT shadow_subscribe('t1', 'kv', mode => 'async')")
	startDaemon(t, "-d", src.ConnString(), "-interval", "1m")

	src.Exec(t, "INSERT INTO kv VALUES (1, 'shipped by pgshadow run')")
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := dst.QueryInt(t, "SELECT count(*) FROM kv")
		return n == 1, "the async insert did not reach the target (interval 1m: only the NOTIFY can wake the daemon)"
	})
}

// `pgshadow run -metrics`: /metrics in the Prometheus text format, read at
// scrape time, equal to what shadow_status says.
func TestRunServesMetrics(t *testing.T) {
	src, _ := kvPushPair(t)
	src.Exec(t, "SELECT shadow_subscribe('t1', 'kv')")
	src.Exec(t, "INSERT INTO kv SELECT g, 'x' FROM generate_series(1, 5) g")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startDaemon(t, "-d", src.ConnString(), "-interval", "1m", "-metrics", addr)

	const labels = `{target="t1",table="public.kv"}`
	scrape := func() map[string]string {
		t.Helper()
		var body string
		pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
				t.Errorf("Content-Type %q, want the text exposition format", ct)
			}
			return resp.StatusCode == 200, fmt.Sprintf("status %d", resp.StatusCode)
		})
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			name, value, ok := strings.Cut(line, " ")
			if !ok {
				t.Fatalf("malformed sample line %q in:\n%s", line, body)
			}
			if _, err := strconv.ParseFloat(value, 64); err != nil {
				t.Fatalf("sample %q has no number: %s", line, value)
			}
			m[name] = value
		}
		t.Logf("scraped:\n%s", body)
		return m
	}
	m := scrape()
	want := map[string]string{
		"pgshadow_up":                          "1",
		"pgshadow_pending_keys" + labels:       src.QueryString(t, "SELECT pending_keys::text FROM shadow_status"),
		"pgshadow_batches_total" + labels:      "0",
		"pgshadow_error" + labels:              "0",
		"pgshadow_failures_total" + labels:     "0",
		"pgshadow_keys_shipped_total" + labels: "0",
	}
	if want["pgshadow_pending_keys"+labels] != "5" {
		t.Fatalf("shadow_status says %s keys pending, want 5", want["pgshadow_pending_keys"+labels])
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if lag, _ := strconv.ParseFloat(m["pgshadow_lag_seconds"+labels], 64); lag <= 0 {
		t.Errorf("pgshadow_lag_seconds = %q with changes pending, want > 0", m["pgshadow_lag_seconds"+labels])
	}
	if _, ok := m["pgshadow_last_success_timestamp_seconds"+labels]; ok {
		t.Errorf("pgshadow_last_success_timestamp_seconds present before any export")
	}

	// an export and a recorded failure show at the next scrape
	src.Exec(t, "SELECT count(*) FROM shadow_export('t1')")
	src.Exec(t, "SELECT pgshadow.record_failure('t1', '08006', 'pgshadow export: target down')")
	m = scrape()
	for k, v := range map[string]string{
		"pgshadow_pending_keys" + labels:       "0",
		"pgshadow_lag_seconds" + labels:        "0",
		"pgshadow_batches_total" + labels:      "1",
		"pgshadow_keys_shipped_total" + labels: "5",
		"pgshadow_error" + labels:              "1",
		"pgshadow_failures_total" + labels:     "1",
	} {
		if m[k] != v {
			t.Errorf("after an export and a failure: %s = %q, want %q", k, m[k], v)
		}
	}
	last := src.QueryString(t, "SELECT extract(epoch FROM last_export)::float8::text FROM shadow_status")
	got, _ := strconv.ParseFloat(m["pgshadow_last_success_timestamp_seconds"+labels], 64)
	if wantTS, _ := strconv.ParseFloat(last, 64); got == 0 || got != wantTS {
		t.Errorf("pgshadow_last_success_timestamp_seconds = %v, want %v (shadow_status.last_export)", got, wantTS)
	}
}
