// Connection hygiene of the CLI and the daemon: bounded against a server that
// accepts TCP and never answers, immune to objects other roles create in a
// writable schema on the caller's search_path, and under the same fixed
// value settings as the SQL side.
package filemode_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/daemon"
	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// The Go home of the fixed settings equals the SQL one.
func TestFixedSettingsMatchSQL(t *testing.T) {
	d := pgtest.NewDBWithExtension(t, pgtest.Server("source"))
	sql := d.QueryStrings(t, "SELECT name || '=' || setting FROM pgshadow._settings() ORDER BY name")
	var goSide []string
	for _, kv := range filemode.FixedSettings() {
		goSide = append(goSide, kv[0]+"="+kv[1])
	}
	if diff := pgtest.DiffRows(sql, goSide); diff != "" {
		t.Errorf("pgshadow._settings() (-) and filemode.FixedSettings() (+) differ:\n%s", diff)
	}
}

// export, ship and status against a stopped server end within the connect
// timeout (10 s unless the connection string sets one), or within -timeout.
func TestCLIAgainstStoppedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server of its own")
	}
	t.Parallel()
	bin := pgshadowBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, pgserver.Options{Name: "stopped-cli"})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		_ = s.Resume()
		if err := s.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	if err := s.Pause(); err != nil {
		t.Fatalf("%v", err)
	}
	dsn := s.ConnString("postgres")
	dir := t.TempDir()
	cases := []struct {
		what  string
		limit time.Duration
		args  []string
	}{
		{"status", 14 * time.Second, []string{"status", "-d", dsn}},
		{"export", 14 * time.Second, []string{"export", "-d", dsn, "-target", "x", "-dir", dir}},
		{"ship", 14 * time.Second, []string{"ship", "-source", dsn, "-dest", dsn, "-target", "x"}},
		{"status -timeout 2s", 5 * time.Second, []string{"status", "-d", dsn, "-timeout", "2s"}},
		{"export, connect_timeout=3", 6 * time.Second, []string{"export", "-d", dsn + " connect_timeout=3", "-target", "x", "-dir", dir}},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r := cli(t, bin, nil, c.args...)
			took := time.Since(start)
			t.Logf("%s: exit %d after %s: %s", c.what, r.code, took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			if r.code == 0 {
				t.Errorf("%s against a stopped server succeeded", c.what)
			}
			if took > c.limit {
				t.Errorf("%s against a stopped server took %s, want under %s", c.what, took.Round(time.Millisecond), c.limit)
			}
		}()
	}
	wg.Wait()
}

// A superuser whose search_path puts a schema any role may write (public
// before PostgreSQL 15) before pgshadow's: status and the daemon still use
// pgshadow's own view and procedure, never the look-alikes an outsider put
// there (which would run with the superuser's rights).
func TestCLIIgnoresHostilePublicSchema(t *testing.T) {
	d := pgtest.NewDB(t, pgtest.Server("source"))
	d.Exec(t, "CREATE SCHEMA api")
	d.Exec(t, "CREATE EXTENSION pgshadow SCHEMA api CASCADE")
	d.Exec(t, "ALTER DATABASE "+pgtest.Ident(d.Name)+" SET search_path = public, api")
	outsider := "outsider_" + d.Name
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Server.CreateRole(ctx, outsider, "outsider_pw"); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = superExec(ctx, d, "DROP OWNED BY "+pgtest.Ident(outsider)+"; DROP ROLE IF EXISTS "+pgtest.Ident(outsider))
	})
	d.Exec(t, "GRANT CREATE ON SCHEMA public TO "+pgtest.Ident(outsider))
	d.Exec(t, "CREATE TABLE public.pwned (who text, how text)")
	d.Exec(t, "GRANT INSERT ON public.pwned TO PUBLIC")
	o := d.ConnAs(t, outsider, "outsider_pw")
	for _, sql := range []string{
		`CREATE FUNCTION public.pwn(how text) RETURNS bigint LANGUAGE sql
		 AS $$ INSERT INTO public.pwned VALUES (current_user, how); SELECT 1::bigint $$`,
		`CREATE VIEW public.shadow_status AS SELECT 'x'::text AS target, 'y'::text AS "table", public.pwn('status') AS n`,
		`CREATE PROCEDURE public.shadow_run(target text DEFAULT NULL, batch_size integer DEFAULT 100000)
		 LANGUAGE sql AS $$ SELECT public.pwn('shadow_run') $$`,
	} {
		if _, err := o.Exec(ctx, sql); err != nil {
			t.Fatalf("outsider: %v\n%s", err, sql)
		}
	}

	bin := pgshadowBinary(t)
	cli(t, bin, nil, "status", "-d", d.ConnString()).wantOK(t, "status", "no subscriptions")

	dctx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	var logs []string
	var mu sync.Mutex
	if err := daemon.Run(dctx, daemon.Config{ConnString: d.ConnString(), Interval: 500 * time.Millisecond,
		Logf: func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() }}); err != nil {
		t.Errorf("daemon: %v", err)
	}
	mu.Lock()
	for _, l := range logs {
		if strings.Contains(l, "fail") || strings.Contains(l, "ERROR") {
			t.Errorf("daemon: %s", l)
		}
	}
	mu.Unlock()
	if got := d.QueryStrings(t, "SELECT who || ' via ' || how FROM public.pwned"); len(got) > 0 {
		t.Errorf("an outsider's object ran as the caller: %v", got)
	}
}

// superExec runs sql as the superuser on d's database.
func superExec(ctx context.Context, d *pgtest.DB, sql string) error {
	_, err := d.Pool.Exec(ctx, sql)
	return err
}
