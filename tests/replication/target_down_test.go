// A target that dies: the export fails fast naming the target, acknowledges
// nothing, and the next export after the target is back converges.
package replication

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// startServer starts a target server of the test's own (so killing it
// disturbs no other test), stopped at cleanup.
func startServer(t *testing.T, name string) *pgserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, pgserver.Options{Name: name, BinDir: pgtest.TargetBinDir()})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s
}

// stallSQL makes the target's apply hang on key 700 until its server dies.
const stallSQL = `
CREATE FUNCTION public.stall() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM pg_catalog.pg_sleep(120); RETURN NULL; END $f$;
CREATE TRIGGER stall AFTER INSERT ON public.tbl FOR EACH ROW WHEN (NEW.id = 700) EXECUTE FUNCTION public.stall();`

// waitForStall waits until the target's apply sleeps in stallSQL's trigger.
func waitForStall(t *testing.T, dst *pgtest.DB) {
	t.Helper()
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := dst.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()")
		return n > 0, "the export never reached the stalling key 700 on the target"
	})
}

// endStall ends the target's sessions sleeping in stallSQL's trigger, which
// would otherwise hold their locks for minutes.
func endStall(t *testing.T, dst *pgtest.DB) {
	t.Helper()
	dst.Exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()")
}

// A target killed in the middle of a many-batch export: the export fails
// within seconds naming the target, no watermark moves (the batches the target
// did commit are resent later), an export while it is down fails fast too, and
// after a restart the next export converges.
func TestTargetKilledDuringExportLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server of its own")
	}
	t.Parallel()
	s := startServer(t, "killed-target")
	p := newPairOn(t, s)
	down := false
	t.Cleanup(func() {
		if down { // the databases are dropped next, on a running server
			if err := s.Restart(context.Background()); err != nil {
				t.Errorf("%v", err)
			}
		}
	})
	p.Both(t, tblDDL)
	p.Subscribe(t, "tbl")
	p.Dst.Exec(t, stallSQL)
	for i := 0; i < 50; i++ {
		p.Src.Exec(t, fmt.Sprintf("INSERT INTO tbl SELECT g, 'v' FROM generate_series(%d, %d) g", i*20+1, i*20+20))
	}
	before := p.watermark(t, "tbl")

	exported := make(chan error, 1)
	go func() {
		_, err := p.ExportErr(100)
		exported <- err
	}()
	waitForStall(t, p.Dst)
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl"); n == 0 {
		t.Fatalf("scenario broken: no batch committed on the target before key 700")
	}

	start := time.Now()
	down = true
	if err := s.Kill(); err != nil {
		t.Fatalf("%v", err)
	}
	select {
	case err := <-exported:
		wantFailure(t, "target killed mid-export", time.Since(start), err, 10*time.Second)
	case <-time.After(30 * time.Second):
		t.Fatalf("export still running 30s after its target was killed")
	}
	p.wantWatermark(t, "tbl", before, "a failed export")

	start = time.Now()
	_, err := p.ExportErr(100)
	wantFailure(t, "target down before export", time.Since(start), err, 5*time.Second)
	p.wantWatermark(t, "tbl", before, "an export to a dead target")

	if err := s.Restart(context.Background()); err != nil {
		t.Fatalf("%v", err)
	}
	down = false
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		err := p.Dst.ExecErr("DROP TRIGGER stall ON tbl")
		return err == nil, fmt.Sprint(err)
	})
	p.Src.Exec(t, "UPDATE tbl SET v = 'after restart' WHERE id % 100 = 0")
	res := p.ExportBatch(t, 100)["tbl"]
	if res.Keys < 1000 {
		t.Errorf("export after restart shipped %d keys, want all 1000 again (none was acknowledged)", res.Keys)
	}
	p.Same(t, "tbl", "tbl")
	if got := p.watermark(t, "tbl"); got == before {
		t.Errorf("watermark did not move after a successful export: %s", got)
	}
}
