// Tests for the generator: each builds a small repository in a temporary
// directory and asserts what Generate, Write and Check make of it.
package generator_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/internal/generator"
)

const echoGuard = `\echo Use "CREATE EXTENSION pgshadow" to load this file. \quit`

// writeTree writes files (slash paths relative to root) into root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		full := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func control(version string) string {
	return "# pgshadow test control file\ncomment = 'test'\ndefault_version = '" + version + "'\nrelocatable = false\n"
}

// newRepo returns a temporary repository at version with an uninstall
// script and the given extra files.
func newRepo(t *testing.T, version string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"pgshadow.control":  control(version),
		"sql/uninstall.sql": "DROP SCHEMA IF EXISTS pgshadow CASCADE;\n",
	})
	writeTree(t, root, files)
	return root
}

func generate(t *testing.T, root string) map[string]string {
	t.Helper()
	files, err := generator.Generate(root)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	out := map[string]string{}
	for p, data := range files {
		out[p] = string(data)
	}
	return out
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func readFile(t *testing.T, root, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestBothInstallPathsRunTheSameSource(t *testing.T) {
	src := "CREATE TABLE a();\nCREATE FUNCTION pgshadow.f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n" +
		"    PERFORM pg_catalog.pg_extension_config_dump('a', '');\nEND $$;\n"
	root := newRepo(t, "1.0.0", map[string]string{"sql/01_a.sql": src})
	files := generate(t, root)
	for _, name := range []string{"pgshadow--1.0.0.sql", "migrations/000001_pgshadow_1_0_0.up.sql"} {
		if !strings.Contains(files[name], src) {
			t.Errorf("%s does not carry the source as written:\n%s", name, files[name])
		}
	}
}

func TestInstallScriptConcatenatesSourcesInFileNameOrder(t *testing.T) {
	root := newRepo(t, "1.0.0", map[string]string{
		"sql/b.sql":     "SELECT 'b';\n",
		"sql/a.sql":     "SELECT 'a';",
		"sql/10_x.sql":  "SELECT '10';\n",
		"sql/9_y.sql":   "SELECT '9';\n",
		"sql/sub/z.sql": "SELECT 'not a source';\n",
		"sql/notes.txt": "not a source either\n",
	})
	ext := generate(t, root)["pgshadow--1.0.0.sql"]

	var sources []string
	for _, line := range strings.Split(ext, "\n") {
		if name, ok := strings.CutPrefix(line, "-- source: "); ok {
			sources = append(sources, name)
		}
	}
	want := []string{"sql/10_x.sql", "sql/9_y.sql", "sql/a.sql", "sql/b.sql"}
	if !reflect.DeepEqual(sources, want) {
		t.Errorf("sources in the install script: got %v, want %v", sources, want)
	}
	if !strings.HasPrefix(ext, "-- pgshadow--1.0.0.sql: ") {
		t.Errorf("install script does not open with its header comment:\n%s", ext)
	}
	guard := strings.Index(ext, echoGuard)
	if guard < 0 || guard > strings.Index(ext, "-- source: ") {
		t.Errorf("install script lacks the \\echo guard before the first source:\n%s", ext)
	}
	if !strings.Contains(ext, "-- source: sql/a.sql\nSELECT 'a';\n\n-- source: sql/b.sql\n") {
		t.Errorf("a source without a final newline runs into the next one:\n%s", ext)
	}
	if strings.Contains(ext, "not a source") {
		t.Errorf("files outside sql/*.sql were included:\n%s", ext)
	}
}

func TestUninstallScriptIsTheFirstDownMigrationNotPartOfTheInstall(t *testing.T) {
	root := newRepo(t, "1.0.0", map[string]string{
		"sql/00_schema.sql": "CREATE SCHEMA pgshadow;\n",
		"sql/uninstall.sql": "DROP SCHEMA pgshadow CASCADE; -- uninstall marker\n",
	})
	files := generate(t, root)
	if got := files["pgshadow--1.0.0.sql"]; strings.Contains(got, "uninstall marker") {
		t.Errorf("install script contains uninstall.sql:\n%s", got)
	}
	if got := files["migrations/000001_pgshadow_1_0_0.up.sql"]; strings.Contains(got, "uninstall marker") {
		t.Errorf("up migration contains uninstall.sql:\n%s", got)
	}
	if got := files["migrations/000001_pgshadow_1_0_0.down.sql"]; !strings.Contains(got, "DROP SCHEMA pgshadow CASCADE; -- uninstall marker\n") {
		t.Errorf("down migration does not carry uninstall.sql:\n%s", got)
	}
	if got := files["migrations/000001_pgshadow_1_0_0.up.sql"]; strings.Contains(got, `\echo`) {
		t.Errorf("up migration has a psql meta-command:\n%s", got)
	}
}

func TestMigrationsDeferFunctionBodyChecksLikeCreateExtension(t *testing.T) {
	root := newRepo(t, "1.0.0", map[string]string{
		"sql/01_a.sql": "CREATE FUNCTION a() RETURNS int LANGUAGE sql AS 'SELECT b()';\n",
		"sql/02_b.sql": "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
	})
	files := generate(t, root)
	const set = "SET LOCAL check_function_bodies = false;\n"
	for _, p := range []string{"migrations/000001_pgshadow_1_0_0.up.sql", "migrations/000001_pgshadow_1_0_0.down.sql"} {
		script := files[p]
		at := strings.Index(script, set)
		if at < 0 || at > strings.Index(script, "-- source: ") {
			t.Errorf("%s does not turn off check_function_bodies before the first source:\n%s", p, script)
		}
	}
	if got := files["pgshadow--1.0.0.sql"]; strings.Contains(got, "check_function_bodies") {
		t.Errorf("the extension script needs no setting, CREATE EXTENSION makes it:\n%s", got)
	}
}

func TestGenerateRejectsBadSources(t *testing.T) {
	tests := []struct {
		name    string
		version string
		files   map[string]string
		remove  string // a file newRepo wrote that this case lacks
		wantErr string
	}{
		{
			name:    "conditional blocks are gone: one text serves both install paths",
			files:   map[string]string{"sql/01_a.sql": "SELECT 1;\n-- #if extension\nSELECT 2;\n-- #endif\n"},
			wantErr: "sql/01_a.sql:2: unsupported directive -- #if",
		},
		{
			name:    "psql meta-command in a source",
			files:   map[string]string{"sql/01_a.sql": "SELECT 1;\n\\set ON_ERROR_STOP on\n"},
			wantErr: "sql/01_a.sql:2: psql meta-command",
		},
		{
			name:    "config dump as a statement of its own",
			files:   map[string]string{"sql/01_a.sql": "SELECT pg_catalog.pg_extension_config_dump('t', '');\n"},
			wantErr: "sql/01_a.sql:1: pg_extension_config_dump works only under CREATE EXTENSION",
		},
		{
			name:    "extension schema placeholder",
			files:   map[string]string{"sql/01_a.sql": "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n  AS 'SELECT @extschema@.g()';\n"},
			wantErr: "sql/01_a.sql:2: @extschema@ is replaced only under CREATE EXTENSION",
		},
		{
			name: "a call of a later file's function",
			files: map[string]string{
				"sql/01_a.sql": "-- pgshadow.b in a comment and 'pgshadow.b' in a string are fine\n" +
					"CREATE FUNCTION pgshadow.a() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n" +
					"    EXECUTE E'SELECT pgshadow.b(\\'x\\')';\n    RETURN pgshadow.b();\nEND $$;\n",
				"sql/02_b.sql": "CREATE FUNCTION pgshadow.b() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
			},
			wantErr: "sql/01_a.sql:5: pgshadow.b is defined in sql/02_b.sql, a later file",
		},
		{
			name:    "no sources",
			files:   map[string]string{"sql/README": "empty\n"},
			wantErr: "sql/ holds no *.sql sources",
		},
		{
			name:    "no uninstall script",
			files:   map[string]string{"sql/01_a.sql": "SELECT 1;\n"},
			remove:  "sql/uninstall.sql",
			wantErr: "sql/uninstall.sql is missing",
		},
		{
			name:    "no default_version",
			files:   map[string]string{"pgshadow.control": "comment = 'x'\n", "sql/01_a.sql": "SELECT 1;\n"},
			wantErr: "pgshadow.control: no default_version",
		},
		{
			name:    "meta-command other than the guard in an upgrade",
			version: "1.1.0",
			files: map[string]string{
				"sql/01_a.sql":                              "SELECT 1;\n",
				"sql/updates/pgshadow--1.0.0--1.1.0.sql":    echoGuard + "\n\\i other.sql\n",
				"migrations/000001_pgshadow_1_0_0.up.sql":   "-- released\n",
				"migrations/000001_pgshadow_1_0_0.down.sql": "-- released\n",
			},
			wantErr: "sql/updates/pgshadow--1.0.0--1.1.0.sql:2: psql meta-command",
		},
		{
			name:    "released version without an upgrade",
			version: "1.1.0",
			files:   map[string]string{"sql/01_a.sql": "SELECT 1;\n", "pgshadow--1.0.0.sql": "-- released\n"},
			wantErr: "pgshadow--1.0.0.sql is released but no upgrade path leads from 1.0.0 to 1.1.0: add sql/updates/pgshadow--1.0.0--1.1.0.sql",
		},
		{
			name:    "upgrade path stops short of default_version",
			version: "1.2.0",
			files: map[string]string{
				"sql/01_a.sql":                           "SELECT 1;\n",
				"sql/updates/pgshadow--1.0.0--1.1.0.sql": "SELECT 1;\n",
			},
			wantErr: "upgrade path in sql/updates ends at 1.1.0, but pgshadow.control says default_version = '1.2.0': add sql/updates/pgshadow--1.1.0--1.2.0.sql",
		},
		{
			name:    "forked upgrade path",
			version: "1.2.0",
			files: map[string]string{
				"sql/01_a.sql":                           "SELECT 1;\n",
				"sql/updates/pgshadow--1.0.0--1.1.0.sql": "SELECT 1;\n",
				"sql/updates/pgshadow--1.0.0--1.2.0.sql": "SELECT 1;\n",
			},
			wantErr: "both start at 1.0.0: migrations need one linear upgrade path",
		},
		{
			name:    "downgrade script without its upgrade",
			files:   map[string]string{"sql/01_a.sql": "SELECT 1;\n", "sql/updates/pgshadow--0.9.0--1.0.0.down.sql": "SELECT 1;\n"},
			wantErr: "sql/updates/pgshadow--0.9.0--1.0.0.down.sql: no matching upgrade",
		},
		{
			name:    "first migration of a superseded version was never generated",
			version: "1.1.0",
			files: map[string]string{
				"sql/01_a.sql":                           "SELECT 1;\n",
				"sql/updates/pgshadow--1.0.0--1.1.0.sql": "SELECT 1;\n",
			},
			wantErr: "migrations/000001_pgshadow_1_0_0.up.sql cannot be rebuilt",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			version := tc.version
			if version == "" {
				version = "1.0.0"
			}
			root := newRepo(t, version, tc.files)
			if tc.remove != "" {
				if err := os.Remove(filepath.Join(root, tc.remove)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := generator.Generate(root)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Generate error: got %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// release0 writes version 0.1.0 and generates it, as a release would.
func release0(t *testing.T) string {
	t.Helper()
	root := newRepo(t, "0.1.0", map[string]string{
		"sql/00_schema.sql": "CREATE SCHEMA pgshadow; -- as released in 0.1.0\n",
	})
	if _, err := generator.Write(root); err != nil {
		t.Fatalf("Write 0.1.0: %v", err)
	}
	return root
}

func TestMigrationsAreNumberedAlongTheUpgradePath(t *testing.T) {
	root := release0(t)
	firstUp := readFile(t, root, "migrations/000001_pgshadow_0_1_0.up.sql")
	writeTree(t, root, map[string]string{
		"pgshadow.control":  control("0.10.0"),
		"sql/00_schema.sql": "CREATE SCHEMA pgshadow; -- now at 0.10.0\n",
		"sql/01_more.sql":   "CREATE TABLE pgshadow.more();\n",
		"sql/updates/pgshadow--0.1.0--0.9.0.sql": echoGuard + "\n" +
			"CREATE TABLE pgshadow.nine();\n",
		"sql/updates/pgshadow--0.9.0--0.10.0.sql":      echoGuard + "\nCREATE TABLE pgshadow.more();\n",
		"sql/updates/pgshadow--0.9.0--0.10.0.down.sql": "DROP TABLE pgshadow.more;\n",
	})
	files := generate(t, root)

	want := []string{
		"migrations/000001_pgshadow_0_1_0.down.sql",
		"migrations/000001_pgshadow_0_1_0.up.sql",
		"migrations/000002_pgshadow_0_9_0.down.sql",
		"migrations/000002_pgshadow_0_9_0.up.sql",
		"migrations/000003_pgshadow_0_10_0.down.sql",
		"migrations/000003_pgshadow_0_10_0.up.sql",
		"pgshadow--0.1.0--0.9.0.sql",
		"pgshadow--0.10.0.sql",
		"pgshadow--0.9.0--0.10.0.sql",
	}
	if got := keys(files); !reflect.DeepEqual(got, want) {
		t.Fatalf("generated files:\n got %v\nwant %v", got, want)
	}
	if got := files["migrations/000001_pgshadow_0_1_0.up.sql"]; got != firstUp {
		t.Errorf("the released first migration was rebuilt from the new sources:\n%s", got)
	}
	up2 := files["migrations/000002_pgshadow_0_9_0.up.sql"]
	if strings.Contains(up2, `\echo`) || !strings.Contains(up2, "CREATE TABLE pgshadow.nine();") {
		t.Errorf("upgrade migration should hold the upgrade without the guard:\n%s", up2)
	}
	copy2 := files["pgshadow--0.1.0--0.9.0.sql"]
	if !strings.Contains(copy2, echoGuard) || !strings.Contains(copy2, "CREATE TABLE pgshadow.nine();") {
		t.Errorf("root copy of the upgrade should keep the guard:\n%s", copy2)
	}
	if got := files["migrations/000002_pgshadow_0_9_0.down.sql"]; !strings.Contains(got, "not supported") || hasSQL(got) {
		t.Errorf("down migration without a .down.sql should be comments saying it is not supported:\n%s", got)
	}
	if got := files["migrations/000003_pgshadow_0_10_0.down.sql"]; !strings.Contains(got, "DROP TABLE pgshadow.more;") {
		t.Errorf("down migration should carry the hand-written .down.sql:\n%s", got)
	}
	if got := files["pgshadow--0.10.0.sql"]; !strings.Contains(got, "now at 0.10.0") {
		t.Errorf("current install script not built from the current sources:\n%s", got)
	}
}

// hasSQL reports a line that is neither blank nor a comment.
func hasSQL(script string) bool {
	for _, line := range strings.Split(script, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "--") {
			return true
		}
	}
	return false
}

func TestReleasedScriptIsNeverRewritten(t *testing.T) {
	root := release0(t)
	released := readFile(t, root, "pgshadow--0.1.0.sql")
	writeTree(t, root, map[string]string{
		"pgshadow.control":                       control("0.2.0"),
		"sql/00_schema.sql":                      "CREATE SCHEMA pgshadow; -- changed for 0.2.0\n",
		"sql/updates/pgshadow--0.1.0--0.2.0.sql": echoGuard + "\nSELECT 'upgrade';\n",
	})
	changed, err := generator.Write(root)
	if err != nil {
		t.Fatalf("Write 0.2.0: %v", err)
	}
	for _, p := range changed {
		if p == "pgshadow--0.1.0.sql" {
			t.Errorf("Write reported the released script as changed: %v", changed)
		}
	}
	if got := readFile(t, root, "pgshadow--0.1.0.sql"); got != released {
		t.Errorf("released script was rewritten:\n got %s\nwant %s", got, released)
	}
	if got := readFile(t, root, "pgshadow--0.2.0.sql"); !strings.Contains(got, "changed for 0.2.0") {
		t.Errorf("pgshadow--0.2.0.sql not built from the current sources:\n%s", got)
	}
	if err := generator.Check(root); err != nil {
		t.Errorf("Check right after Write: %v", err)
	}
}

func TestWriteTouchesOnlyStaleFilesAndCheckListsThem(t *testing.T) {
	root := newRepo(t, "1.0.0", map[string]string{"sql/01_a.sql": "SELECT 1;\n"})
	changed, err := generator.Write(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 3 {
		t.Errorf("first Write: got changes %v, want the install script and both migrations", changed)
	}
	if changed, err := generator.Write(root); err != nil || len(changed) != 0 {
		t.Errorf("second Write: got changes %v (err %v), want none", changed, err)
	}

	writeTree(t, root, map[string]string{
		"sql/01_a.sql":                  "SELECT 2;\n",
		"migrations/000007_old.up.sql":  "SELECT 'orphan';\n",
		"pgshadow--0.9.0--1.0.0.sql":    "SELECT 'orphan';\n",
		"migrations/README.md":          "not generated, not an orphan\n",
		"migrations/subdir/ignored.sql": "SELECT 1;\n",
		"sql/updates/notes.txt":         "not an upgrade\n",
		"sql/updates/subdir/x.sql":      "not an upgrade\n",
	})
	err = generator.Check(root)
	var stale *generator.StaleError
	if !errors.As(err, &stale) {
		t.Fatalf("Check after editing a source: got %v, want a *StaleError", err)
	}
	want := []generator.StaleFile{
		{Path: "migrations/000001_pgshadow_1_0_0.up.sql", Reason: "differs"},
		{Path: "migrations/000007_old.up.sql", Reason: "no longer generated"},
		{Path: "pgshadow--0.9.0--1.0.0.sql", Reason: "no longer generated"},
		{Path: "pgshadow--1.0.0.sql", Reason: "differs"},
	}
	if !reflect.DeepEqual(stale.Files, want) {
		t.Errorf("stale files:\n got %v\nwant %v", stale.Files, want)
	}
	if !strings.Contains(err.Error(), "make generate") {
		t.Errorf("Check error does not say how to fix it: %v", err)
	}

	changed, err = generator.Write(root)
	if err != nil {
		t.Fatal(err)
	}
	wantChanged := []string{"migrations/000001_pgshadow_1_0_0.up.sql", "migrations/000007_old.up.sql", "pgshadow--0.9.0--1.0.0.sql", "pgshadow--1.0.0.sql"}
	if !reflect.DeepEqual(changed, wantChanged) {
		t.Errorf("Write changes:\n got %v\nwant %v", changed, wantChanged)
	}
	for _, gone := range []string{"migrations/000007_old.up.sql", "pgshadow--0.9.0--1.0.0.sql"} {
		if _, err := os.Stat(filepath.Join(root, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("orphan %s still exists (stat: %v)", gone, err)
		}
	}
	if err := generator.Check(root); err != nil {
		t.Errorf("Check after Write: %v", err)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	root := newRepo(t, "1.0.0", map[string]string{
		"sql/01_a.sql": "SELECT 1;\n", "sql/02_b.sql": "SELECT 2;\n", "sql/03_c.sql": "SELECT 3;\n",
	})
	first := generate(t, root)
	for i := 0; i < 5; i++ {
		if again := generate(t, root); !reflect.DeepEqual(first, again) {
			t.Fatalf("Generate gave different output on run %d", i+2)
		}
	}
}
