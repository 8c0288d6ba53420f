// money prints and parses by lc_monetary: push mode ships and compares it
// under lc_monetary C on both ends, so a target whose locale writes money
// otherwise ("1.234,56 €") still receives the same amounts.
package replication

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/internal/pgserver"
)

func TestMoneyUnderAnotherLcMonetary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server of its own")
	}
	if os.Getenv("PGSHADOW_TEST_IMAGE") != "" {
		t.Skip("builds a locale for a local server")
	}
	t.Parallel()
	// a locale of the test's own (the machine may have only C): LOCPATH
	// points the target server at it
	dir, err := os.MkdirTemp("", "pgshadow-locale-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	if out, err := exec.Command("localedef", "-i", "de_DE", "-f", "UTF-8", filepath.Join(dir, "de_DE.UTF-8")).CombinedOutput(); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "de_DE.UTF-8", "LC_MONETARY")); statErr != nil {
			t.Skipf("cannot build locale de_DE.UTF-8 (localedef): %v %s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, pgserver.Options{Name: "money-target", Env: []string{"LOCPATH=" + dir}})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	p := newPairOn(t, s)
	p.Dst.Exec(t, "ALTER DATABASE "+ident(p.Dst.Name)+" SET lc_monetary = 'de_DE.UTF-8'")
	if got := mustQueryString(t, p.Dst.Conn(t), "SELECT 1234.56::money::text"); !strings.Contains(got, "€") {
		t.Fatalf("scenario broken: the target prints money as %q, want the de_DE form", got)
	}

	p.Both(t, "CREATE TABLE tbl (id int PRIMARY KEY, m money)")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (1, 1234.56), (2, -0.01), (3, 92233720368547758.07), (4, NULL)")
	p.Subscribe(t, "tbl")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (5, -92233720368547758.08), (6, 1000000)")
	p.Src.Exec(t, "UPDATE tbl SET m = m + 0.5::money WHERE id = 1")
	p.Export(t)
	p.Same(t, "tbl", "tbl", "id", "m::numeric")
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM shadow_compare($1, 'tbl')", targetName); n != 0 {
		t.Errorf("shadow_compare found %d differing ranges of equal money values", n)
	}
}
