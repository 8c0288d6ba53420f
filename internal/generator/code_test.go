package generator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSplitStatementsHonoursQuotesAndComments(t *testing.T) {
	text := `-- a comment; with a semicolon
CREATE TABLE t (a text DEFAULT 'x;y', "b;" int);
/* block; /* nested; */ still */ CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;
CREATE FUNCTION g() RETURNS text LANGUAGE plpgsql AS $body$ BEGIN RETURN 'it''s; $$'; END $body$;
SELECT $1;`
	got, err := splitStatements("test.sql", text)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`CREATE TABLE t (a text DEFAULT 'x;y', "b;" int)`,
		`CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$`,
		`CREATE FUNCTION g() RETURNS text LANGUAGE plpgsql AS $body$ BEGIN RETURN 'it''s; $$'; END $body$`,
		`SELECT $1`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := splitStatements("bad.sql", "SELECT 'open"); err == nil {
		t.Fatal("an unterminated quote was accepted")
	}
	if _, err := splitStatements("bad.sql", "SELECT 1"); err == nil {
		t.Fatal("a statement without its semicolon was accepted")
	}
}

func TestCodeOfKeepsDefinitionsAsCreateOrReplace(t *testing.T) {
	code, err := codeOf("x.sql", `CREATE TABLE t (a int);
CREATE FUNCTION pgshadow.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
COMMENT ON FUNCTION pgshadow.f() IS 'f';
REVOKE EXECUTE ON FUNCTION pgshadow.f() FROM PUBLIC;
CREATE VIEW v WITH (security_barrier) AS SELECT 1;
GRANT SELECT ON v TO PUBLIC;
CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN END $$;
`)
	if err != nil {
		t.Fatal(err)
	}
	want := `
-- code of: x.sql
CREATE OR REPLACE FUNCTION pgshadow.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
COMMENT ON FUNCTION pgshadow.f() IS 'f';
REVOKE EXECUTE ON FUNCTION pgshadow.f() FROM PUBLIC;
CREATE OR REPLACE VIEW v WITH (security_barrier) AS SELECT 1;
CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN END $$;
`
	if string(code) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", code, want)
	}
}

// A table a version adds is written once, in sql/: the upgrade takes its
// CREATE TABLE and what sets it up alone, never another table's statements
// or a grant shared with other tables.
func TestTableObjectsTakeATablesOwnStatements(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sql"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(root, "sql", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10_a.sql", `-- the log
CREATE TABLE s.log (id int PRIMARY KEY, at timestamptz); -- trailing
CREATE TABLE s.login (id int);
CREATE INDEX ON s.log (at);
CREATE INDEX ON s.login (id);
GRANT SELECT ON s.log, s.other TO PUBLIC;
GRANT SELECT ON s.log TO PUBLIC;
ALTER TABLE s.log ENABLE ROW LEVEL SECURITY;
`)
	write("20_b.sql", `CREATE POLICY readable ON s.log FOR SELECT USING (true);
COMMENT ON TABLE s.log IS 'log; of things';
CREATE FUNCTION s.f() RETURNS void LANGUAGE sql AS $$ INSERT INTO s.log VALUES (1, now()) $$;
`)
	sources := []string{"sql/10_a.sql", "sql/20_b.sql"}
	got, err := tableObjects(root, sources, "s.log")
	if err != nil {
		t.Fatal(err)
	}
	want := `-- table s.log, as sql/ creates it
CREATE TABLE s.log (id int PRIMARY KEY, at timestamptz);
CREATE INDEX ON s.log (at);
GRANT SELECT ON s.log TO PUBLIC;
ALTER TABLE s.log ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON s.log FOR SELECT USING (true);
COMMENT ON TABLE s.log IS 'log; of things';
`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	for table, wantErr := range map[string]string{
		"s.nothing": "does not create it",
		"log":       "schema-qualified",
	} {
		if _, err := tableObjects(root, sources, table); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("-- #include table %s: got %v, want an error saying %q", table, err, wantErr)
		}
	}
	if _, err := preprocess("sql/10_a.sql", []byte("-- #include table s.log\n"), extensionVariant, sourceOptions{}); err == nil ||
		!strings.Contains(err.Error(), "belongs in an upgrade script") {
		t.Errorf("-- #include table outside an upgrade: got %v", err)
	}
}
