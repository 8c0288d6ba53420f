// The pgshadow binary's data commands: export, import and status take libpq
// connection strings or PG* variables, report what they did on stdout, and
// fail with exit code 1 and one line on stderr; the demo passes and leaves
// nothing behind.
package filemode_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// pgshadowBinary builds the CLI into the test's temporary directory (the
// build cache makes every build after the first a link step).
func pgshadowBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pgshadow")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/pgshadow/pgshadow/cmd/pgshadow").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	return bin
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the binary bin with args and extra environment variables.
func cli(t *testing.T, bin string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run pgshadow %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// wantOK fails unless the command succeeded with every fragment on stdout.
func (r cliResult) wantOK(t *testing.T, what string, fragments ...string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit code %d, stderr: %s", what, r.code, r.stderr)
	}
	for _, f := range fragments {
		if !strings.Contains(r.stdout, f) {
			t.Errorf("%s: stdout lacks %q:\n%s", what, f, r.stdout)
		}
	}
}

// wantFailure fails unless the command exited 1 with exactly one line on
// stderr holding every fragment.
func (r cliResult) wantFailure(t *testing.T, what string, fragments ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("%s: exit code %d, want 1 (stdout: %s)", what, r.code, r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("%s: stderr is not exactly one line:\n%s", what, r.stderr)
	}
	for _, f := range fragments {
		if !strings.Contains(r.stderr, f) {
			t.Errorf("%s: stderr %q lacks %q", what, r.stderr, f)
		}
	}
}

// pgEnv is the PG* environment for the superuser on d.
func pgEnv(d *pgtest.DB) []string {
	s := d.Server
	return []string{"PGHOST=" + s.Host, fmt.Sprintf("PGPORT=%d", s.Port), "PGUSER=" + s.User,
		"PGPASSWORD=" + s.Password, "PGDATABASE=" + d.Name, "PGSSLMODE=disable"}
}

// export, import and status through the binary, with a connection string
// for the source and PG* variables for the target; failures are one line.
func TestCLIExportImportStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.All(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	e.Src.Exec(t, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g")
	e.Subscribe(t, "t")
	src := e.Src.ConnString()
	bin := pgshadowBinary(t)

	r := cli(t, bin, nil, "export", "-d", src, "-target", fileTarget, "-dir", e.Dir)
	r.wantOK(t, "export", "wrote ", "public.t -> public.t  batch 1: full copy, 100 rows")
	dirs, _ := filepath.Glob(filepath.Join(e.Dir, fileTarget, "*"))
	if len(dirs) != 1 {
		t.Fatalf("export wrote %v, want one batch directory", dirs)
	}
	cli(t, bin, pgEnv(e.Files), "import", "-dir", dirs[0]).wantOK(t, "import", "applied "+dirs[0], "public.t  batch 1: full copy: 100 rows")
	cli(t, bin, pgEnv(e.Files), "import", "-dir", dirs[0]).wantOK(t, "import again", "already applied: nothing changed")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")

	e.Src.Exec(t, "UPDATE t SET v = 'x' WHERE id <= 10")
	r = cli(t, bin, nil, "status", "-d", src)
	// (the session's search_path is pinned to pg_catalog, so tables print schema-qualified)
	r.wantOK(t, "status", "target | table    | dest")
	if !regexp.MustCompile(`(?m)^files +\| public\.t +\| public\.t +\| batch +\| +10 \|`).MatchString(r.stdout) {
		t.Errorf("status does not show 10 pending keys for the file target:\n%s", r.stdout)
	}
	cli(t, bin, nil, "export", "-d", src, "-target", fileTarget, "-dir", e.Dir).wantOK(t, "second export", "batch 2: 10 changed keys, 10 rows")
	cli(t, bin, nil, "export", "-d", src, "-target", fileTarget, "-dir", e.Dir).wantOK(t, "export with nothing pending", "nothing pending")

	// failures: one line, exit code 1
	dirs, _ = filepath.Glob(filepath.Join(e.Dir, fileTarget, "*"))
	bad := copyDir(t, dirs[len(dirs)-1])
	rows, _ := filepath.Glob(filepath.Join(bad, "*.rows"))
	if len(rows) != 1 {
		t.Fatalf("batch directory holds rows files %v, want one", rows)
	}
	corrupt(t, rows[0])
	cli(t, bin, pgEnv(e.Files), "import", "-dir", bad).wantFailure(t, "import of a damaged batch",
		"pgshadow import: refused: public.t batch 2, file "+filepath.Base(rows[0])+": sha256")
	cli(t, bin, nil, "export", "-d", src, "-target", "nope", "-dir", e.Dir).wantFailure(t, "export of an unknown target", `target "nope" does not exist`)
	cli(t, bin, nil, "export", "-d", src, "-target", pushTarget, "-dir", e.Dir).wantFailure(t, "export of a push target with -dir", "is a push target")
	cli(t, bin, nil, "export", "-d", src, "-target", fileTarget).wantFailure(t, "export without -dir", "-dir")
	cli(t, bin, nil, "status", "-d", "host=127.0.0.1 port=1 connect_timeout=5").wantFailure(t, "status against no server", "pgshadow status:")
	cli(t, bin, nil, "import", "-d", src, "-dir", e.Dir).wantFailure(t, "import of a directory without manifest", "manifest.json")
}

// The demo replicates by push and by files, says PASS, exits 0 and removes
// its servers and files.
func TestDemoPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers of its own")
	}
	t.Parallel()
	bin := pgshadowBinary(t)
	start := time.Now()
	r := cli(t, bin, nil, "demo")
	r.wantOK(t, "demo", "PASS: shop_copy holds the same", "PASS: shop_files holds the same", "PASS: both targets")
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("demo took %s", d)
	}
	// the export directory and the servers' directories (removed by Stop)
	left := regexp.MustCompile(`wrote (/\S+?/pgshadow-demo-files-[^/]+)/`).FindAllStringSubmatch(r.stdout, -1)
	left = append(left, regexp.MustCompile(`(?m)^demo-\w+: \S+, files in (\S+)$`).FindAllStringSubmatch(r.stdout, -1)...)
	if len(left) < 3 {
		t.Errorf("demo output names %d directories, want its export directory and two server directories", len(left))
	}
	for _, m := range left {
		if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
			t.Errorf("demo left %s behind (stat: %v)", m[1], err)
		}
	}
}

// A demo whose output is closed early (make demo | head) stops: its servers
// are shut down and their files removed, none is left running.
func TestDemoClosedOutputLeavesNoServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers of its own")
	}
	t.Parallel()
	bin := pgshadowBinary(t)
	cmd := exec.Command(bin, "demo")
	cmd.Env = os.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%v", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%v", err)
	}
	// read until both servers are named, as `head` would, then close
	dirs := regexp.MustCompile(`(?m)^demo-\w+: \S+, files in (\S+)$`)
	var got []byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(2 * time.Minute)
	for len(dirs.FindAllSubmatch(got, -1)) < 2 && time.Now().Before(deadline) {
		n, err := stdout.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	stdout.Close()
	found := dirs.FindAllSubmatch(got, -1)
	if len(found) < 2 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("demo never named its two servers; output: %s; stderr: %s", got, stderr.String())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("demo exited 0 with its output closed")
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("demo still running 90s after its output was closed")
	}
	t.Logf("stderr: %s", strings.TrimSpace(stderr.String()))
	for _, m := range found {
		dir := string(m[1])
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("demo left server directory %s behind (stat: %v)", dir, err)
		}
		if out, _ := exec.Command("pgrep", "-f", "postgres -D "+dir).Output(); len(out) > 0 {
			t.Errorf("a server of the demo still runs from %s: pids %s", dir, strings.Fields(string(out)))
		}
	}
}

// Progress on stderr when it is not a terminal: plain lines (no redrawing),
// rows against the total (a copy's row estimate, a batch file's rows) and a
// last line when a table is done; a push export's from shadow_progress;
// nothing with -quiet.
func TestCLIProgressLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.All(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	e.fillLarge(t, "t", 200000)
	// tracking in the subscribing transaction leaves the push copy to the export
	e.Src.Exec(t, "SELECT shadow_track('t'); SELECT shadow_subscribe('push', 't'); SELECT shadow_subscribe('files', 't')")
	src := e.Src.ConnString()
	bin := pgshadowBinary(t)

	wantLines := func(what, stderr string, patterns ...string) {
		t.Helper()
		if strings.ContainsAny(stderr, "\r\x1b") {
			t.Errorf("%s: stderr redraws lines although it is not a terminal: %q", what, stderr)
		}
		for _, p := range patterns {
			if !regexp.MustCompile("(?m)" + p).MatchString(stderr) {
				t.Errorf("%s: stderr has no line matching %s:\n%s", what, p, stderr)
			}
		}
	}
	r := cli(t, bin, nil, "export", "-d", src, "-target", fileTarget, "-dir", e.Dir, "-progress", "1ms")
	r.wantOK(t, "export", "full copy, 200000 rows")
	wantLines("export", r.stderr,
		`^export public\.t rows: \d+ of ~\d+ rows \(\d+\.\d%\), \d+ rows/s, [0-9.]+ MB$`,
		`^export public\.t rows: 200000 of ~\d+ rows \(\d+\.\d%\), \d+ rows/s, [0-9.]+ MB, done in [0-9.]+s$`)
	dirs, _ := filepath.Glob(filepath.Join(e.Dir, fileTarget, "*"))
	r = cli(t, bin, pgEnv(e.Files), "import", "-dir", dirs[0], "-progress", "1ms")
	r.wantOK(t, "import", "full copy: 200000 rows")
	wantLines("import", r.stderr,
		`^import public\.t rows: \d+ of 200000 rows \(\d+\.\d%\), \d+ rows/s, [0-9.]+ MB$`,
		`^import public\.t rows: 200000 of 200000 rows \(100\.0%\), \d+ rows/s, [0-9.]+ MB, done in [0-9.]+s$`)

	r = cli(t, bin, nil, "export", "-d", src, "-target", pushTarget, "-progress", "1ms")
	r.wantOK(t, "push export")
	wantLines("push export", r.stderr, `^export public\.t copy: \d+ of ~\d+ rows \(\d+\.\d%\), \d+ rows/s`)
	e.Same(t, "t")

	e.Src.Exec(t, "UPDATE t SET v = 'x' WHERE id <= 50000")
	for _, args := range [][]string{
		{"export", "-d", src, "-target", fileTarget, "-dir", e.Dir, "-quiet", "-progress", "1ms"},
		{"export", "-d", src, "-target", pushTarget, "-quiet", "-progress", "1ms"},
	} {
		if r := cli(t, bin, nil, args...); r.code != 0 || r.stderr != "" {
			t.Errorf("pgshadow %s: exit code %d, stderr %q; want 0 and nothing", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// pgshadow compare checks a file target's tables in the target database by
// key range, through the row filter: exit 0 and "equal" when they match,
// exit 2 naming each differing range and its row counts when they do not,
// exit 1 with one line when it cannot compare.
func TestCLICompareFileTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.All(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	e.Src.Exec(t, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 25000) g")
	e.SubscribeFiles(t, "t", "row_filter => 'id <= 20000'")
	e.Import(t, e.Export(t))
	src := e.Src.ConnString()
	bin := pgshadowBinary(t)
	compare := func(args ...string) cliResult {
		return cli(t, bin, nil, append([]string{"compare", "-d", src, "-target", fileTarget, "-dest", e.Files.ConnString()}, args...)...)
	}

	compare().wantOK(t, "compare of equal tables", "public.t -> public.t: equal (2 key ranges)")
	compare("-table", "public.t", "-chunk", "5000").wantOK(t, "compare by smaller ranges", "public.t -> public.t: equal (4 key ranges)")

	e.Files.Exec(t, "UPDATE t SET v = 'changed' WHERE id = 15000; DELETE FROM t WHERE id = 3; INSERT INTO t VALUES (25000, 'outside the filter')")
	r := compare()
	if r.code != 2 {
		t.Fatalf("compare of differing tables: exit code %d, want 2 (stdout %s, stderr %s)", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"public.t -> public.t: 2 of 2 key ranges differ",
		"  keys from (start) to (10001): 10000 source rows, 9999 target rows",
		"  keys from (10001) to (end): 10000 source rows, 10001 target rows",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("compare of differing tables: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	compare("-table", "t").wantFailure(t, "compare of an unqualified table", "table t is not subscribed", "schema-qualified")
	cli(t, bin, nil, "compare", "-d", src, "-target", pushTarget, "-dest", e.Push.ConnString()).wantFailure(t, "compare of a push target", "is a push target", "shadow_compare")
	// the source is untouched: the next export has nothing pending
	if dir := e.Export(t); dir != "" {
		t.Errorf("an export after compare wrote %s, want nothing pending", dir)
	}
}
