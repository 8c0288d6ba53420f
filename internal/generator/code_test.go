package generator

import (
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
