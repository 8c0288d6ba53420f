package install_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/install"
)

// The current version's scripts are not committed: a user without Go
// installs from `make dist`'s tarball, which carries them. Its `make
// install` (PGXS, here into a DESTDIR) must install exactly the scripts the
// generator makes, without Go; and a tree lacking them must say why.
func TestDistInstallsWithoutGo(t *testing.T) {
	t.Parallel()
	root := install.RepoRoot(t)
	pgConfig := filepath.Join(os.Getenv("PGSHADOW_BINDIR"), "pg_config")
	if _, err := os.Stat(pgConfig); err != nil {
		if pgConfig, err = exec.LookPath("pg_config"); err != nil {
			t.Fatalf("no pg_config in PGSHADOW_BINDIR or PATH: run the tests with make test")
		}
	}
	tmp := t.TempDir()
	run := func(dir string, args ...string) (string, error) {
		cmd := exec.Command("make", append([]string{"-C", dir}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := run(root, "dist", "DISTDIR="+tmp); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	tarballs, _ := filepath.Glob(filepath.Join(tmp, "pgshadow-*.tar.gz"))
	if len(tarballs) != 1 {
		t.Fatalf("make dist wrote %v, want one pgshadow-<version>.tar.gz", tarballs)
	}
	if out, err := exec.Command("tar", "-xzf", tarballs[0], "-C", tmp).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	tree := strings.TrimSuffix(tarballs[0], ".tar.gz")

	noGo := "GO=" + filepath.Join(tmp, "no-go-here")
	dest := filepath.Join(tmp, "dest")
	if out, err := run(tree, "install", "PG_CONFIG="+pgConfig, "DESTDIR="+dest, noGo); err != nil {
		t.Fatalf("make install of the tarball without Go: %v\n%s", err, out)
	}
	shareDir, err := exec.Command(pgConfig, "--sharedir").Output()
	if err != nil {
		t.Fatalf("pg_config --sharedir: %v", err)
	}
	extDir := filepath.Join(dest, strings.TrimSpace(string(shareDir)), "extension")
	want, _ := filepath.Glob(filepath.Join(root, "pgshadow--*.sql"))
	want = append(want, filepath.Join(root, "pgshadow.control"))
	got, _ := filepath.Glob(filepath.Join(extDir, "pgshadow*"))
	if len(got) != len(want) {
		t.Errorf("installed %d files (%v), want the %d of the checkout after make generate", len(got), got, len(want))
	}
	for _, w := range want {
		a, err := os.ReadFile(w)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(extDir, filepath.Base(w)))
		if err != nil {
			t.Errorf("not installed from the tarball: %v", err)
		} else if !bytes.Equal(a, b) {
			t.Errorf("%s installed from the tarball differs from the generated one", filepath.Base(w))
		}
	}

	// a tree without the generated script (a checkout) and without Go
	if err := os.Remove(filepath.Join(tree, "pgshadow--"+install.ReadVersions(t, root).Current+".sql")); err != nil {
		t.Fatal(err)
	}
	out, err := run(tree, "install", "PG_CONFIG="+pgConfig, "DESTDIR="+filepath.Join(tmp, "dest2"), noGo)
	if err == nil || !strings.Contains(out, "is built from sql/ by the generator, which needs Go") {
		t.Errorf("make install without Go and without the generated script: err %v, output:\n%s\nwant a failure saying it needs Go", err, out)
	}
}
