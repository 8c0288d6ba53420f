// An inbox of batch directories is applied in chain order, stops at a gap
// naming the missing batch, skips what the target applied, and -prune
// removes only what the target's ledger shows applied.
package filemode_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// inbox copies the batch directories src into a new directory under the
// names given (same order), and returns it.
func inbox(t *testing.T, src []string, names []string) string {
	t.Helper()
	dir := t.TempDir()
	for i, s := range src {
		if out, err := exec.Command("cp", "-a", s, filepath.Join(dir, names[i])).CombinedOutput(); err != nil {
			t.Fatalf("cp -a %s: %v: %s", s, err, out)
		}
	}
	return dir
}

func (e *env) importInbox(t *testing.T, o filemode.InboxOptions) (*filemode.InboxResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return filemode.ImportInbox(ctx, connect(t, e.Files), o)
}

// unchanged notes table t's row versions and the ledger of e.Files; the
// function returned fails the test if either changed since.
func (e *env) unchanged(t *testing.T) func(what string) {
	t.Helper()
	rows := rowVersions(t, e.Files, "t")
	book := e.Files.QueryStrings(t, "SELECT b::text FROM pgshadow_import.batches b")
	return func(what string) {
		t.Helper()
		if after := rowVersions(t, e.Files, "t"); !slices.Equal(rows, after) {
			t.Errorf("%s rewrote rows: row versions %v, then %v", what, rows, after)
		}
		if after := e.Files.QueryStrings(t, "SELECT b::text FROM pgshadow_import.batches b"); !slices.Equal(book, after) {
			t.Errorf("%s changed the ledger: %v, then %v", what, book, after)
		}
	}
}

// outcomes renders an inbox result as "name:outcome" in order.
func outcomes(res *filemode.InboxResult) []string {
	var out []string
	for _, b := range res.Batches {
		out = append(out, filepath.Base(b.Dir)+":"+b.Outcome)
	}
	return out
}

// Three batches named against their order are applied in chain order in one
// run; a second run finds them all applied and changes nothing.
func TestInboxAppliesChainInOrder(t *testing.T) {
	t.Parallel()
	e, d := threeBatches(t)
	// name order is the reverse of chain order: only the manifests tell
	in := inbox(t, d, []string{"c", "b", "a"})
	res, err := e.importInbox(t, filemode.InboxOptions{Dir: in})
	if err != nil {
		t.Fatalf("import inbox: %s", pgtest.Describe(err))
	}
	if got, want := outcomes(res), []string{"c:applied", "b:applied", "a:applied"}; !slices.Equal(got, want) {
		t.Errorf("inbox run: %v, want %v", got, want)
	}
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")

	unchanged := e.unchanged(t)
	res, err = e.importInbox(t, filemode.InboxOptions{Dir: in})
	if err != nil {
		t.Fatalf("import inbox again: %s", pgtest.Describe(err))
	}
	if got, want := outcomes(res), []string{"a:already applied", "b:already applied", "c:already applied"}; !slices.Equal(got, want) {
		t.Errorf("second inbox run: %v, want %v", got, want)
	}
	unchanged("a second inbox run")
}

// A missing batch stops the run naming it: what precedes it is applied,
// nothing after it; through the CLI it is one line and exit code 1.
func TestInboxGapRefused(t *testing.T) {
	t.Parallel()
	e, d := threeBatches(t)
	in := inbox(t, []string{d[0], d[2]}, []string{filepath.Base(d[0]), filepath.Base(d[2])})

	bin := pgshadowBinary(t)
	r := cli(t, bin, pgEnv(e.Files), "import", "-inbox", in)
	r.wantFailure(t, "inbox with a gap", "batch 2 of public.t is missing", "last applied: batch 1",
		"next is batch 3 in "+filepath.Base(d[2]), "1 batch directories not applied")
	if !strings.Contains(r.stdout, "applied "+filepath.Join(in, filepath.Base(d[0]))) {
		t.Errorf("the batch before the gap was not reported applied:\n%s", r.stdout)
	}
	if got := e.Files.QueryStrings(t, "SELECT batch_no::text FROM pgshadow_import.batches"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("ledger after the gap: batches %v, want [1]", got)
	}

	// with nothing applied yet, the inbox must begin with batch 1 or a full copy
	fresh := pgtest.NewDB(t, pgtest.Server("third"))
	fresh.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	late := inbox(t, d[1:], []string{"x", "y"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := filemode.ImportInbox(ctx, connect(t, fresh), filemode.InboxOptions{Dir: late})
	var g *filemode.GapError
	if !errors.As(err, &g) || !strings.Contains(err.Error(), "batch 1 or a full copy of public.t is missing") {
		t.Errorf("inbox without its first batch: %v, want a gap naming batch 1", err)
	}
	if n := fresh.QueryStrings(t, "SELECT count(*)::text FROM t"); n[0] != "0" {
		t.Errorf("inbox without its first batch loaded %s rows", n[0])
	}
}

// Importing the last batch again and an older one again both exit 0 with
// one line, changing neither rows nor ledger.
func TestReimportLatestAndOlderBatch(t *testing.T) {
	t.Parallel()
	e, d := threeBatches(t)
	for _, dir := range d {
		e.Import(t, dir)
	}
	unchanged := e.unchanged(t)
	bin := pgshadowBinary(t)
	for _, dir := range []string{d[2], d[0], d[1]} {
		r := cli(t, bin, pgEnv(e.Files), "import", "-dir", dir)
		r.wantOK(t, "import "+filepath.Base(dir)+" again", dir+" was already applied: nothing changed")
		if strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("import %s again: stdout is not one line:\n%s", filepath.Base(dir), r.stdout)
		}
	}
	unchanged("importing applied batches again")
}

// -prune removes the batch directories the ledger shows applied after a
// successful run, and nothing else: not an incomplete directory, not an
// export's hidden leftovers, and nothing at all after a run that stopped.
func TestInboxPrune(t *testing.T) {
	t.Parallel()
	e, d := threeBatches(t)
	bin := pgshadowBinary(t)
	names := []string{filepath.Base(d[0]), filepath.Base(d[1]), filepath.Base(d[2])}

	// a gap: nothing pruned, not even the batch applied before it
	gap := inbox(t, []string{d[0], d[2]}, []string{names[0], names[2]})
	cli(t, bin, pgEnv(e.Files), "import", "-inbox", gap, "-prune").wantFailure(t, "prune with a gap", "batch 2 of public.t is missing")
	for _, n := range []string{names[0], names[2]} {
		if _, err := os.Stat(filepath.Join(gap, n)); err != nil {
			t.Errorf("a run that stopped at a gap removed %s: %v", n, err)
		}
	}

	in := inbox(t, d, names)
	for _, extra := range []string{"incomplete", ".tmp-123"} {
		if err := os.Mkdir(filepath.Join(in, extra), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := cli(t, bin, pgEnv(e.Files), "import", "-inbox", in, "-prune")
	r.wantOK(t, "import -inbox -prune", "applied "+filepath.Join(in, names[1]), "applied "+filepath.Join(in, names[2]),
		"removed "+filepath.Join(in, names[0]), "removed "+filepath.Join(in, names[2]), "incomplete): left alone")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
	left, err := os.ReadDir(in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range left {
		got = append(got, l.Name())
	}
	if want := []string{".tmp-123", "incomplete"}; !slices.Equal(got, want) {
		t.Errorf("inbox after -prune holds %v, want %v", got, want)
	}
}
