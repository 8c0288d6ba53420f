// Tests for the run subcommand: its flags, and one async change shipped by
// `pgshadow run` end to end until the signal context ends it. The daemon's
// behaviour in depth (lag, reconnects, retries) is tested in tests/modes.
package main

import (
	"context"
	"fmt"
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
		if err := runDaemon(context.Background(), args); err == nil {
			t.Errorf("pgshadow run %s: no error", strings.Join(args, " "))
		}
	}
}

func TestRunShipsAsyncChangesUntilCancelled(t *testing.T) {
	s := pgtest.Server("migrate")
	src := pgtest.NewDBWithExtension(t, s)
	dst := pgtest.NewDB(t, s)
	dst.Exec(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	src.Exec(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	src.Exec(t, fmt.Sprintf(`CREATE SERVER dst FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '%s', port '%d', dbname '%s');
		CREATE USER MAPPING FOR CURRENT_USER SERVER dst OPTIONS (user '%s', password '%s');
		SELECT shadow_add_target('t1', 'dst');
		SELECT shadow_subscribe('t1', 'kv', mode => 'async')`, s.Host, s.Port, dst.Name, s.User, s.Password))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, []string{"-d", src.ConnString(), "-interval", "1m"}) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("pgshadow run returned %v when its context ended, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("pgshadow run did not stop within 10s of its context ending")
		}
	}()

	src.Exec(t, "INSERT INTO kv VALUES (1, 'shipped by pgshadow run')")
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := dst.QueryInt(t, "SELECT count(*) FROM kv")
		return n == 1, "the async insert did not reach the target (interval 1m: only the NOTIFY can wake the daemon)"
	})
}
