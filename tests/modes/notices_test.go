// Subscribing, unsubscribing and subscribing again in every mode, and
// untracking, say nothing about triggers that do not exist: a NOTICE per
// missing pgshadow_sync_* or capture trigger would drown what a session
// should read.
package modes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestResubscribeSendsNoNotices(t *testing.T) {
	t.Parallel()
	p := newPair(t, pgtest.Server("a"), pgtest.Server("b"))
	p.Both(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	p.Src.Exec(t, "INSERT INTO kv VALUES (1, 'one')")
	p.Src.Exec(t, "SELECT shadow_add_target('files', NULL)")

	cfg, err := pgx.ParseConfig(p.Src.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Severity+": "+n.Message) }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	steps := []string{
		"SELECT shadow_track('kv')",
		"SELECT shadow_subscribe('t1', 'kv')",
		"SELECT shadow_unsubscribe('t1', 'kv')",
		"SELECT shadow_subscribe('t1', 'kv')",
		"SELECT shadow_unsubscribe('t1', 'kv')",
		"SELECT shadow_subscribe('t1', 'kv', mode => 'sync')",
		"SELECT shadow_unsubscribe('t1', 'kv')",
		"SELECT shadow_subscribe('t1', 'kv', mode => 'sync')",
		"SELECT shadow_unsubscribe('t1', 'kv')",
		"SELECT shadow_subscribe('t1', 'kv', mode => 'async')",
		"SELECT shadow_subscribe('files', 'kv')",
		"SELECT shadow_unsubscribe('t1', 'kv')",
		"SELECT shadow_unsubscribe('files', 'kv')",
		"SELECT shadow_untrack('kv')",
		"SELECT shadow_untrack('kv')",
		"SELECT shadow_subscribe('t1', 'kv')", // tracks the table again
	}
	for _, s := range steps {
		before := len(notices)
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %s", s, pgtest.Describe(err))
		}
		for _, n := range notices[before:] {
			// the one notice meant to be read: a first track leaves the copy to the export
			if !strings.HasSuffix(n, "its rows are copied by the next shadow_export") {
				t.Errorf("%s sent %q", s, n)
			}
		}
	}
}
