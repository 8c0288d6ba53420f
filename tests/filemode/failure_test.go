// Nothing is acknowledged before the files are safe: an export that fails
// leaves the watermark where it was and the next export ships the same
// changes; a batch directory left by a failed export is superseded by the
// next export of the same batch, and Import keeps the chain straight.
package filemode_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// An export that cannot write its directory, or fails after writing every
// file but before the watermark moves, leaves the watermark unchanged; the
// next export ships the changes and the target ends equal.
func TestExportFailureKeepsWatermark(t *testing.T) {
	t.Parallel()
	e := newEnvWithT(t, 20)
	e.Import(t, e.Export(t))
	e.Src.Exec(t, "UPDATE t SET v = 'changed' WHERE id % 2 = 0; DELETE FROM t WHERE id = 7; INSERT INTO t VALUES (21, 'new')")
	before := e.watermark(t, "t")

	// the target's directory cannot be created: a file is in the way
	blocked := t.TempDir()
	if err := os.WriteFile(filepath.Join(blocked, fileTarget), []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := e.ExportErr(t, filemode.ExportOptions{Dir: blocked})
	if err == nil {
		t.Fatalf("export into %s succeeded although %s is a file", blocked, filepath.Join(blocked, fileTarget))
	}
	if got := e.watermark(t, "t"); got != before {
		t.Errorf("failed export (%v) moved the watermark from %s to %s", err, before, got)
	}
	if msg := e.Src.QueryString(t, "SELECT coalesce(last_error, '<none>') FROM shadow_status WHERE target = $1", fileTarget); !strings.Contains(msg, "not a directory") {
		t.Errorf("shadow_status.last_error after the failed export is %q, want the cause (not a directory)", msg)
	}

	// every file is durable, then the export fails before file_done
	var written string
	_, err = e.ExportErr(t, filemode.ExportOptions{BeforeDone: func(dir string) error {
		written = dir
		return errors.New("simulated crash")
	}})
	if err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("export with a failing BeforeDone returned %v, want the simulated crash", err)
	}
	if _, err := os.Stat(filepath.Join(written, filemode.ManifestName)); err != nil {
		t.Errorf("the batch written before the failure is not complete: %v", err)
	}
	if got := e.watermark(t, "t"); got != before {
		t.Errorf("export failing before file_done moved the watermark from %s to %s", before, got)
	}

	dir := e.Export(t)
	m, _, err := filemode.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tb := m.Tables[0]; tb.BatchNo != 2 || tb.Keys != 12 {
		t.Errorf("export after the failures: batch %d with %d keys, want batch 2 with the 12 changed keys", tb.BatchNo, tb.Keys)
	}
	if got := e.watermark(t, "t"); got == before {
		t.Errorf("successful export left the watermark at %s", got)
	}
	e.Import(t, dir)
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}

// A failed export leaves a complete but unacknowledged batch 2 behind; the
// next export writes batch 2 again, covering more. Applying the directories
// in name order works; skipping the re-export is caught by the next batch;
// applying the older one after the newer is refused.
func TestReexportSupersedesUnacknowledgedBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const ddl = "CREATE TABLE t (id int PRIMARY KEY, v text)"
	e.SrcAndFiles(t, ddl)
	e.Src.Exec(t, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20) g")
	e.SubscribeFiles(t, "t")
	d1 := e.Export(t)

	e.Src.Exec(t, "UPDATE t SET v = 'A' WHERE id <= 5")
	var lost string
	if _, err := e.ExportErr(t, filemode.ExportOptions{BeforeDone: func(dir string) error {
		lost = dir
		return errors.New("simulated crash")
	}}); err == nil {
		t.Fatal("export with a failing BeforeDone succeeded")
	}
	e.Src.Exec(t, "UPDATE t SET v = 'B' WHERE id BETWEEN 4 AND 8; DELETE FROM t WHERE id = 1")
	d2 := e.Export(t)
	e.Src.Exec(t, "UPDATE t SET v = 'C' WHERE id > 15")
	d3 := e.Export(t)
	if !(filepath.Base(d1) < filepath.Base(lost) && filepath.Base(lost) < filepath.Base(d2) && filepath.Base(d2) < filepath.Base(d3)) {
		t.Errorf("directory names do not sort in run order: %s %s %s %s", d1, lost, d2, d3)
	}

	// in name order, as an operator's loop would apply them
	for _, d := range []string{d1, lost, d2, d3} {
		e.Import(t, d)
	}
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")

	// the re-export skipped: batch 3 does not continue what was applied
	skipped := pgtest.NewDB(t, pgtest.Server("third"))
	skipped.Exec(t, ddl)
	for _, d := range []string{d1, lost} {
		if _, err := e.ImportErr(t, d, skipped); err != nil {
			t.Fatalf("import %s: %v", d, err)
		}
	}
	_, err := e.ImportErr(t, d3, skipped)
	wantRefused(t, err, "public.t batch 3", "continues a different export of batch 2", filepath.Base(lost))
	for _, d := range []string{d2, d3} {
		if _, err := e.ImportErr(t, d, skipped); err != nil {
			t.Fatalf("import %s after the refusal: %v", d, err)
		}
	}
	pgtest.AssertSameRows(t, e.Src, "t", skipped, "t")

	// the unacknowledged batch after the one that superseded it: refused
	stale := pgtest.NewDB(t, pgtest.Server("third"))
	stale.Exec(t, ddl)
	for _, d := range []string{d1, d2} {
		if _, err := e.ImportErr(t, d, stale); err != nil {
			t.Fatalf("import %s: %v", d, err)
		}
	}
	_, err = e.ImportErr(t, lost, stale)
	wantRefused(t, err, "public.t batch 2", "does not supersede")
	if _, err := e.ImportErr(t, d3, stale); err != nil {
		t.Fatalf("import %s: %v", d3, err)
	}
	pgtest.AssertSameRows(t, e.Src, "t", stale, "t")
}

// Two exports of one target at once: the second waits for the first, then
// fails with a clear message and writes nothing; the first's batch is whole.
func TestConcurrentExportsOfOneTarget(t *testing.T) {
	t.Parallel()
	e := newEnvWithT(t, 10)
	e.Src.Exec(t, "UPDATE t SET v = 'changed' WHERE id < 4")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, second := connect(t, e.Src), connect(t, e.Src)
	inFirst, release := make(chan struct{}), make(chan struct{})
	firstDone := make(chan error, 1)
	var firstDir string
	go func() {
		res, err := filemode.Export(ctx, first, filemode.ExportOptions{Target: fileTarget, Dir: e.Dir,
			BeforeDone: func(string) error { close(inFirst); <-release; return nil }})
		if err == nil {
			firstDir = res.BatchDir
		}
		firstDone <- err
	}()
	<-inFirst
	secondDone := make(chan error, 1)
	go func() {
		_, err := filemode.Export(ctx, second, filemode.ExportOptions{Target: fileTarget, Dir: e.Dir})
		secondDone <- err
	}()
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		state := e.Src.QueryString(t, "SELECT coalesce(max(wait_event_type), '<none>') FROM pg_stat_activity WHERE pid = $1", second.PgConn().PID())
		return state == "Lock", "second export waits on " + state + ", want Lock"
	})
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatalf("first export: %v", err)
	}
	err := <-secondDone
	if err == nil || !strings.Contains(err.Error(), "another export of target") {
		t.Fatalf("second export returned %v, want the concurrent export explained", err)
	}
	if msg := e.Src.QueryString(t, "SELECT coalesce(last_error, '<none>') FROM shadow_status WHERE target = $1", fileTarget); msg != "<none>" {
		t.Errorf("shadow_status shows last_error %q after the first export shipped everything", msg)
	}
	entries, _ := os.ReadDir(filepath.Join(e.Dir, fileTarget))
	if len(entries) != 1 || entries[0].Name() != filepath.Base(firstDir) {
		t.Errorf("export directory holds %v, want only the first export's %s", entries, filepath.Base(firstDir))
	}
	e.Import(t, firstDir)
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}
