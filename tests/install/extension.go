package install

// Installing the extension for a test, optionally over the upgrade path, and
// reading which versions the repository ships.

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/internal/generator"
	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// FromVersionEnv names the environment variable that makes NewDBWithExtension
// install that older version and ALTER EXTENSION ... UPDATE it, so a whole
// test package runs against an upgraded install instead of a fresh one.
const FromVersionEnv = "PGSHADOW_FROM_VERSION"

// NewDBWithExtension is pgtest.NewDBWithExtension, but honours FromVersionEnv.
func NewDBWithExtension(t testing.TB, s *pgserver.Server) *pgtest.DB {
	t.Helper()
	from := os.Getenv(FromVersionEnv)
	if from == "" {
		return pgtest.NewDBWithExtension(t, s)
	}
	db := pgtest.NewDB(t, s)
	InstallVersionAndUpdate(t, db, from)
	return db
}

// InstallVersionAndUpdate creates the extension at version from, then
// updates it to the default version.
func InstallVersionAndUpdate(t testing.TB, db *pgtest.DB, from string) {
	t.Helper()
	db.Exec(t, "CREATE EXTENSION pgshadow VERSION "+Literal(from)+" CASCADE")
	db.Exec(t, "ALTER EXTENSION pgshadow UPDATE")
}

// Literal quotes s as an SQL string literal.
func Literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Versions is what the repository root ships: the default version of the
// control file, the versions with a full install script (the released ones
// and the current one), and the upgrade scripts as from→to pairs.
type Versions struct {
	Current  string
	Full     []string
	Upgrades [][2]string
}

var (
	fullScriptRE    = regexp.MustCompile(`^pgshadow--([^-]+)\.sql$`)
	upgradeScriptRE = regexp.MustCompile(`^pgshadow--([^-]+)--([^-]+)\.sql$`)
)

// ReadVersions reads Versions from the repository root.
func ReadVersions(t testing.TB, root string) Versions {
	t.Helper()
	control, err := os.ReadFile(filepath.Join(root, "pgshadow.control"))
	if err != nil {
		t.Fatalf("read control file: %v", err)
	}
	current, err := generator.DefaultVersion(control)
	if err != nil {
		t.Fatalf("%v", err)
	}
	v := Versions{Current: current}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("list %s: %v", root, err)
	}
	for _, e := range entries {
		if m := fullScriptRE.FindStringSubmatch(e.Name()); m != nil {
			v.Full = append(v.Full, m[1])
		} else if m := upgradeScriptRE.FindStringSubmatch(e.Name()); m != nil {
			v.Upgrades = append(v.Upgrades, [2]string{m[1], m[2]})
		}
	}
	sort.Strings(v.Full)
	return v
}

// ExtVersion is the installed version of pgshadow in db.
func ExtVersion(t testing.TB, db *pgtest.DB) string {
	t.Helper()
	return db.QueryString(t, "SELECT extversion FROM pg_extension WHERE extname = 'pgshadow'")
}

// Ident quotes a SQL identifier.
func Ident(name string) string {
	return pgx.Identifier{name}.Sanitize()
}
