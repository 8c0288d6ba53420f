// Import refuses what would leave the target wrong, before applying
// anything: a batch out of order, a file that is not the one exported, a
// missing file; and applying a batch again changes nothing.
package filemode_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// threeBatches is an env whose table t, subscribed to the file target, was
// exported three times: the initial copy, then two rounds of changes.
func threeBatches(t *testing.T) (*env, []string) {
	t.Helper()
	e := newEnvWithT(t, 10)
	d1 := e.Export(t)
	e.Src.Exec(t, "UPDATE t SET v = 'second' WHERE id <= 3; DELETE FROM t WHERE id = 10; INSERT INTO t VALUES (11, 'new')")
	d2 := e.Export(t)
	e.Src.Exec(t, "UPDATE t SET v = 'third' WHERE id >= 5; UPDATE t SET id = 100 WHERE id = 1")
	d3 := e.Export(t)
	for _, d := range []string{d1, d2, d3} {
		if d == "" {
			t.Fatalf("an export wrote no directory: %q", []string{d1, d2, d3})
		}
	}
	return e, []string{d1, d2, d3}
}

// wantRefused fails unless err is a refusal whose message holds every one of
// the given fragments.
func wantRefused(t *testing.T, err error, fragments ...string) {
	t.Helper()
	var r *filemode.RefusedError
	if !errors.As(err, &r) {
		t.Fatalf("import returned %v, want a refusal mentioning %q", err, fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("refusal %q does not mention %q", err, f)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("refusal spans several lines: %q", err)
	}
	t.Logf("refused as expected: %v", err)
}

// A batch that skips one is refused, naming the table and both numbers, and
// the target stays as it was; the batches then apply in order.
func TestOutOfOrderBatchRefused(t *testing.T) {
	t.Parallel()
	e, d := threeBatches(t)
	e.Import(t, d[0])
	before := rowVersions(t, e.Files, "t")

	_, err := e.ImportErr(t, d[2])
	wantRefused(t, err, "public.t batch 3", "last batch applied is 1", "expected batch 2")
	if after := rowVersions(t, e.Files, "t"); !slices.Equal(before, after) {
		t.Errorf("a refused import changed the target: row versions %v, then %v", before, after)
	}

	e.Import(t, d[1])
	e.Import(t, d[2])
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")

	// an older batch is not applied again: the chain passed it
	if res := e.Import(t, d[0]); res.Tables[0].Outcome != filemode.AlreadyApplied {
		t.Errorf("import of batch 1 after batch 3: %+v, want %q", res.Tables, filemode.AlreadyApplied)
	}
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}

// Applying the last batch again writes nothing and says so.
func TestSameBatchTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	e, d := threeBatches(t)
	for _, dir := range d[:2] {
		e.Import(t, dir)
	}
	before := rowVersions(t, e.Files, "t")
	book := e.Files.QueryStrings(t, "SELECT b::text FROM pgshadow_import.batches b")

	res := e.Import(t, d[1])
	if len(res.Tables) != 1 || res.Tables[0].Outcome != filemode.AlreadyApplied {
		t.Errorf("second import of batch 2: %+v, want one table, %q", res.Tables, filemode.AlreadyApplied)
	}
	if after := rowVersions(t, e.Files, "t"); !slices.Equal(before, after) {
		t.Errorf("importing batch 2 again rewrote rows: row versions %v, then %v", before, after)
	}
	if after := e.Files.QueryStrings(t, "SELECT b::text FROM pgshadow_import.batches b"); !slices.Equal(book, after) {
		t.Errorf("importing batch 2 again changed the bookkeeping: %v, then %v", book, after)
	}
}

// copyDir copies a batch directory, so a test can damage one copy.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return dst
}

// A changed, shortened or missing file is refused before anything is
// applied: the table whose files are fine is not loaded either, and the
// bookkeeping stays as it was.
func TestDamagedBatchRefusedBeforeAnythingIsApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.SrcAndFiles(t, "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text)")
	e.Src.Exec(t, "INSERT INTO a VALUES (1, 'a'); INSERT INTO b SELECT g, 'b' FROM generate_series(1, 100) g")
	e.SubscribeFiles(t, "a")
	e.SubscribeFiles(t, "b")
	e.Import(t, e.Export(t)) // the initial copies
	e.Src.Exec(t, "UPDATE a SET v = 'a2'; UPDATE b SET v = 'b2' WHERE id > 50")
	dir := e.Export(t)
	m, _, err := filemode.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Tables) != 2 || m.Tables[1].SourceTable != "public.b" {
		t.Fatalf("manifest tables %+v, want public.a then public.b", m.Tables)
	}
	b := m.Tables[1]
	before := map[string][]string{"a": rowVersions(t, e.Files, "a"), "b": rowVersions(t, e.Files, "b")}
	book := e.Files.QueryStrings(t, "SELECT b::text FROM pgshadow_import.batches b ORDER BY dest")

	cases := []struct {
		name   string
		damage func(dir string)
		want   []string
	}{
		{"changed byte", func(dir string) { corrupt(t, filepath.Join(dir, b.Files.Rows.Name)) },
			[]string{"public.b", b.Files.Rows.Name, "sha256", "nothing was applied"}},
		{"truncated", func(dir string) {
			if err := os.Truncate(filepath.Join(dir, b.Files.Keys.Name), b.Files.Keys.Size-1); err != nil {
				t.Fatal(err)
			}
		}, []string{"public.b", b.Files.Keys.Name, "size", "nothing was applied"}},
		{"missing", func(dir string) {
			if err := os.Remove(filepath.Join(dir, b.Files.Columns.Name)); err != nil {
				t.Fatal(err)
			}
		}, []string{"public.b", b.Files.Columns.Name, "missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := copyDir(t, dir)
			c.damage(bad)
			_, err := e.ImportErr(t, bad)
			var fe *filemode.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("import of a batch with a %s file returned %v, want a file error", c.name, err)
			}
			t.Logf("refused as expected: %v", err)
			for _, f := range c.want {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not mention %q", err, f)
				}
			}
			for tbl, rows := range before {
				if after := rowVersions(t, e.Files, tbl); !slices.Equal(rows, after) {
					t.Errorf("refused import changed table %s", tbl)
				}
			}
			if after := e.Files.QueryStrings(t, "SELECT b::text FROM pgshadow_import.batches b ORDER BY dest"); !slices.Equal(book, after) {
				t.Errorf("refused import changed the bookkeeping: %v, then %v", book, after)
			}
		})
	}
	e.Import(t, dir)
	pgtest.AssertSameRows(t, e.Src, "a", e.Files, "a")
	pgtest.AssertSameRows(t, e.Src, "b", e.Files, "b")
}
