// Row filters and column lists: the target holds exactly the source rows that
// pass the filter now, in the shipped columns, mapped by name.
package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// Rows moving into a filter on a non-key column appear on the target, rows
// moving out of it are deleted there, and rows that never pass never ship.
func TestRowFilterTransitions(t *testing.T) {
	t.Parallel()
	p := subscribed(t, "CREATE TABLE tbl (id int PRIMARY KEY, status text NOT NULL, v int)",
		"INSERT INTO tbl VALUES (1, 'active', 1), (2, 'inactive', 2), (3, 'active', 3), (4, 'inactive', 4)", "row_filter => $f$status = 'active'$f$")
	active := "(SELECT * FROM tbl WHERE status = 'active')"
	wantRows(t, p.Dst, "tbl", "(1,active,1)", "(3,active,3)")

	p.Src.Exec(t, "UPDATE tbl SET status = 'active' WHERE id = 2")   // moves in
	p.Src.Exec(t, "UPDATE tbl SET status = 'inactive' WHERE id = 1") // moves out
	p.Src.Exec(t, "UPDATE tbl SET v = 40 WHERE id = 4")              // stays out
	p.Src.Exec(t, "INSERT INTO tbl VALUES (5, 'inactive', 5), (6, 'active', 6)")
	p.Src.Exec(t, "UPDATE tbl SET id = 30 WHERE id = 3") // key change inside the filter
	res := p.Export(t)["tbl"]
	wantRows(t, p.Dst, "tbl", "(2,active,2)", "(30,active,3)", "(6,active,6)")
	if res.Upserts != 3 {
		t.Errorf("export upserts=%d, want 3 (keys 2, 30, 6)", res.Upserts)
	}
	p.Same(t, active, "tbl")

	// out and back in between two exports: the current row ships
	p.Src.ExecEach(t,
		"UPDATE tbl SET status = 'inactive', v = 20 WHERE id = 2",
		"UPDATE tbl SET status = 'active' WHERE id = 2",
		// in and back out between two exports: it ships as a delete
		"UPDATE tbl SET status = 'active' WHERE id = 5",
		"UPDATE tbl SET status = 'gone' WHERE id = 5",
		"DELETE FROM tbl WHERE id = 6")
	p.Export(t)
	wantRows(t, p.Dst, "tbl", "(2,active,20)", "(30,active,3)")
	p.Same(t, active, "tbl")
}

// The target maps shipped columns by name: it may order them differently,
// have extra columns (which get their defaults) and lack columns that are not
// shipped.
func TestTargetColumnsMapByName(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Src.Exec(t, "CREATE TABLE tbl (id int PRIMARY KEY, a text, secret text, b int)")
	p.Dst.Exec(t, `CREATE TABLE tbl (
		b int, extra text NOT NULL DEFAULT 'dflt', a text,
		id int PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY)`)
	p.Src.Exec(t, "INSERT INTO tbl VALUES (1, 'one', 's1', 10), (2, 'two', 's2', 20)")
	p.Subscribe(t, "tbl", "columns => ARRAY['id', 'a', 'b']")

	p.Src.Exec(t, "UPDATE tbl SET a = 'uno', secret = 'x' WHERE id = 1")
	p.Src.Exec(t, "UPDATE tbl SET secret = 'only the secret' WHERE id = 2")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (3, NULL, 's3', NULL)")
	p.Export(t)
	p.Same(t, "tbl", "tbl", "id", "a", "b")
	if got := p.Dst.QueryStrings(t, "SELECT DISTINCT extra FROM tbl"); len(got) != 1 || got[0] != "dflt" {
		t.Errorf("extra target column holds %v, want only its default 'dflt'", got)
	}
	if n := p.Dst.QueryInt(t, "SELECT count(DISTINCT n) FROM tbl"); n != 3 {
		t.Errorf("identity column on the target has %d distinct values for 3 rows, want 3", n)
	}
}

// A table created on the target with the source's own DDL, identity column
// (GENERATED ALWAYS) and stored generated column included, receives the
// source's key values and computes its generated column itself.
func TestIdentityAndGeneratedColumnsReplicate(t *testing.T) {
	t.Parallel()
	p := subscribed(t, `CREATE TABLE tbl (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		a int, b int,
		total int GENERATED ALWAYS AS (a + b) STORED)`,
		"INSERT INTO tbl (a, b) SELECT g, g FROM generate_series(1, 5) g")
	p.Same(t, "tbl", "tbl")
	p.Src.Exec(t, "INSERT INTO tbl (a, b) VALUES (100, 1)")
	p.Ship(t, "tbl", "UPDATE tbl SET b = 0 WHERE id = 2")
}

// A filter with functions, casts, IN, BETWEEN, LIKE and IS DISTINCT FROM is
// stored as its canonical text, and the target holds exactly the source rows
// the filter selects as written, after the copy and after changes.
func TestRowFilterCanonicalShipsTheRightRows(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Both(t, "CREATE TABLE tbl (id int PRIMARY KEY, status text, v numeric, d date, tag varchar(10))")
	p.Src.Exec(t, `INSERT INTO tbl SELECT g, (ARRAY['Active', 'new', 'gone'])[g % 3 + 1], g * 1.5,
		DATE '2024-01-01' + g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'x' || g END FROM generate_series(1, 60) g`)
	const filter = `lower(status) IN ('active', 'new') AND v::integer BETWEEN 3 AND 70
		AND (tag LIKE 'x%' OR tag IS NULL) AND d <> '2024-01-20' AND id IS DISTINCT FROM 7`
	selected := "(SELECT * FROM tbl WHERE " + filter + ")"
	p.Subscribe(t, "tbl", "row_filter => "+lit(filter))
	stored := p.Src.QueryString(t, "SELECT row_filter FROM pgshadow.subscription WHERE tbl = 'tbl'::regclass")
	if !strings.HasPrefix(stored, "(") || !strings.Contains(stored, "OPERATOR(pg_catalog.=)") || !strings.Contains(stored, "pg_catalog.lower(t.status)") {
		t.Errorf("stored row_filter is not the canonical text: %s", stored)
	}
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM tbl"); n == 0 || n == 60 {
		t.Fatalf("scenario broken: the filter selects %d of 60 rows", n)
	}
	p.Same(t, selected, "tbl")

	p.Src.Exec(t, "UPDATE tbl SET status = 'GONE' WHERE id % 5 = 0")            // some move out
	p.Src.Exec(t, "UPDATE tbl SET status = 'NEW', tag = NULL WHERE id % 7 = 0") // some move in
	p.Src.Exec(t, "UPDATE tbl SET d = '2024-01-20' WHERE id = 10")
	p.Src.Exec(t, "DELETE FROM tbl WHERE id BETWEEN 30 AND 33")
	p.Src.Exec(t, "INSERT INTO tbl VALUES (100, 'Active', 10, '2030-01-01', 'xy'), (101, 'active', 1000, '2030-01-01', 'xy')")
	p.Export(t)
	p.Same(t, selected, "tbl")
}

// The escalation of the security review: a table owner puts her own function
// into the filter and waits for a superuser to export. The filter is refused
// at subscribe, in every spelling and also through the internal helper, so
// it never runs, and the superuser's export leaves her without new rights,
// also after she turns a filtered column into a type of her own.
func TestRowFilterOwnerFunctionNeverRunsAsExporter(t *testing.T) {
	t.Parallel()
	owner := fmt.Sprintf("filter_owner_%d", time.Now().UnixNano()%1000000)
	role(t, pgtest.Server("source"), owner, "owner-pw")
	p := newPair(t)
	p.Dst.Exec(t, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	p.Src.Exec(t, "GRANT CREATE ON SCHEMA public TO "+ident(owner)+"; GRANT USAGE ON FOREIGN SERVER tgt TO "+ident(owner))
	p.Src.Exec(t, fmt.Sprintf("CREATE USER MAPPING FOR %s SERVER tgt OPTIONS (user %s, password %s)",
		ident(owner), lit(p.Dst.Server.User), lit(p.Dst.Server.Password)))
	t.Cleanup(func() { p.Src.ExecErr("DROP OWNED BY " + ident(owner) + " CASCADE") })
	// the superuser ships her table (a superuser ships only the tables of
	// roles it is an explicit member of), with its own rights: the case where
	// a filter would run as a superuser
	p.Src.Exec(t, "GRANT "+ident(owner)+" TO CURRENT_USER")
	c := p.Src.ConnAs(t, owner, "owner-pw")
	mustExec(t, c, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	mustExec(t, c, "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 5) g")
	// harmless for her (ALTER ROLE needs rights she lacks), fatal when a superuser runs it
	mustExec(t, c, fmt.Sprintf(`CREATE FUNCTION public.esc() RETURNS boolean LANGUAGE plpgsql AS
		$$ BEGIN ALTER ROLE %s SUPERUSER; RETURN true; EXCEPTION WHEN insufficient_privilege THEN RETURN true; END $$`, ident(owner)))
	mustExec(t, c, `CREATE FUNCTION public.esc_imm(integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$`)
	mustExec(t, c, "CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT public.esc()::text $$")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// what the superuser's export does to the owner if a filter got through
	escalated := func() string {
		mustExec(t, c, "UPDATE items SET v = v") // rows to read, through the filter
		p.Export(t)
		return p.Src.QueryString(t, "SELECT rolsuper::text FROM pg_roles WHERE rolname = $1", owner)
	}
	for _, f := range []string{
		"esc()",
		"public.esc()",
		"id > 0 OR public.esc()",
		"public.esc_imm(id)",
		"true) OR public.esc() OR (true",
		"id > 0)) OR ((public.esc()",
		"v = 'x' OR (SELECT public.esc())",
		"v = 'x'; SELECT public.esc()",
	} {
		_, err := c.Exec(ctx, "SELECT shadow_subscribe('t1', 'items', row_filter => $1, initial_copy => false)", f)
		if err == nil {
			t.Fatalf("subscribe with row_filter %q succeeded; a superuser's export then left the owner with rolsuper = %s", f, escalated())
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22023" || !strings.Contains(pe.Message, "invalid row_filter for public.items") {
			t.Errorf("subscribe with row_filter %q: %v, want SQLSTATE 22023 naming public.items", f, pgtest.Describe(err))
		}
		_, err = c.Exec(ctx, `SELECT pgshadow._add_subscription('t1', 'items', 'public', 'items', '{id,v}', $1, 'batch', 'source_wins', false)`, f)
		if err == nil {
			t.Fatalf("_add_subscription with row_filter %q succeeded; a superuser's export then left the owner with rolsuper = %s", f, escalated())
		}
		if !errors.As(err, &pe) || pe.Code != "22023" {
			t.Errorf("_add_subscription with row_filter %q called directly: %v, want SQLSTATE 22023", f, pgtest.Describe(err))
		}
	}
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.subscription"); n != 0 {
		t.Fatalf("%d subscription(s) stored from refused filters", n)
	}
	// with public first in search_path, lower() is hers; the canonical filter calls pg_catalog's
	mustExec(t, c, "SET search_path = public, pg_catalog")
	mustExec(t, c, "SELECT shadow_subscribe('t1', 'items', row_filter => 'lower(v) <> ''v3''', initial_copy => false)")
	mustExec(t, c, "UPDATE items SET v = upper(v)")
	if super := escalated(); super != "false" {
		t.Fatalf("after a superuser's export the table owner has rolsuper = %s", super)
	}
	wantRows(t, p.Dst, "items", "(1,V1)", "(2,V2)", "(4,V4)", "(5,V5)")

	// Later she changes the column's type to her own, with an implicit cast
	// to text through her function: pg_catalog.lower(t.v) would now reach it.
	mustExec(t, c, fmt.Sprintf(`CREATE TYPE public.word AS ENUM ('V1', 'V2', 'V3', 'V4', 'V5');
		CREATE FUNCTION public.word_text(public.word) RETURNS text LANGUAGE plpgsql AS
		$$ BEGIN PERFORM public.esc(); RETURN pg_catalog.format('%%s', $1); END $$;
		CREATE CAST (public.word AS text) WITH FUNCTION public.word_text(public.word) AS IMPLICIT;
		ALTER TABLE items ALTER COLUMN v TYPE public.word USING v::public.word`))
	// (the target follows, so that a batch would apply there)
	p.Dst.Exec(t, `CREATE TYPE public.word AS ENUM ('V1', 'V2', 'V3', 'V4', 'V5');
		ALTER TABLE items ALTER COLUMN v TYPE public.word USING v::public.word`)
	mustExec(t, c, "UPDATE items SET v = 'V2' WHERE id = 1")
	_, err := p.ExportErr(0)
	var pe *pgconn.PgError
	if err == nil {
		t.Errorf("export after the filter's column became a user type succeeded")
	} else if !errors.As(err, &pe) || pe.Code != "22023" || !strings.Contains(pe.Message, "reads column v, whose type public.word is not a built-in type") {
		t.Errorf("export after the filter's column became a user type: %v, want SQLSTATE 22023 naming the column and type", pgtest.Describe(err))
	}
	if super := p.Src.QueryString(t, "SELECT rolsuper::text FROM pg_roles WHERE rolname = $1", owner); super != "false" {
		t.Fatalf("after a superuser's export of a filter over a column of the owner's type, the owner has rolsuper = %s", super)
	}
}
