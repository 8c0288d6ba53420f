// Row filter tests: pgshadow._filter parses a filter (never runs it as
// given), refuses everything but columns of built-in types, constants and
// built-in immutable functions and operators, and returns a canonical text
// that means the same as the filter, in any session, and parses to itself.
package filter_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, "source")
}

// The table every case filters, with a column of each kind a filter meets,
// including user-defined types it must refuse, and rows to filter.
const schema = `
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a integer, b integer);
CREATE TABLE orders (
    id integer PRIMARY KEY, status text, total numeric, placed timestamptz, d date,
    name varchar(20), flags integer[], "Mixed Case" integer, b boolean, "ünï" text,
    m mood, amount posint, pr pair);
INSERT INTO orders VALUES
    (1, 'open', 10.5, '2024-01-01 10:00+00', '2024-02-29', 'alice', '{1,2}', 3, true, 'ça', 'happy', 1, '(1,2)'),
    (2, 'closed', 0, '2023-06-01 00:00+00', '2023-06-01', 'bob', '{}', NULL, false, NULL, 'sad', 2, NULL),
    (3, 'it''s', NULL, NULL, NULL, 'Alfred', NULL, 7, NULL, 'x', NULL, NULL, NULL),
    (4, 'a\b', -5, '2025-01-01 00:00+00', '2025-01-01', 'zoe', '{3}', 3, true, 'ünï', 'happy', 3, '(0,0)'),
    (12, NULL, 100, '2024-12-31 23:59:59+00', '2024-12-31', NULL, '{1,2}', -1, false, '', 'sad', 4, NULL);
`

func newDB(t *testing.T) *pgtest.DB {
	t.Helper()
	db := pgtest.NewDBWithExtension(t, pgtest.Server("source"))
	db.Exec(t, schema)
	return db
}

var ctx = pgtest.Ctx

// session is a superuser connection with session settings unlike _filter's
// own, so a canonical text that depended on them would be caught.
func session(t *testing.T, db *pgtest.DB) *pgx.Conn {
	t.Helper()
	c := db.ConnAs(t, db.Server.User, db.Server.Password)
	for _, s := range []string{"SET TimeZone = 'America/New_York'", "SET DateStyle = 'SQL, DMY'", "SET extra_float_digits = 0",
		"SET search_path = public, pg_catalog"} {
		if _, err := c.Exec(ctx(t), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return c
}

func canonical(t *testing.T, c *pgx.Conn, filter string) (string, error) {
	t.Helper()
	var out *string
	err := c.QueryRow(ctx(t), "SELECT pgshadow._filter('orders', $1)", filter).Scan(&out)
	if err != nil {
		return "", err
	}
	if out == nil {
		return "<NULL>", nil
	}
	return *out, nil
}

// ids lists the ids of the rows a WHERE clause selects.
func ids(t *testing.T, c *pgx.Conn, where string) (string, error) {
	var s *string
	err := c.QueryRow(ctx(t), "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders t WHERE "+where).Scan(&s)
	if s == nil {
		return "", err
	}
	return *s, err
}

// Accepted filters: each gives the expected canonical text, parses to itself
// again, and selects the same rows as the filter run as written (in a session
// with the time zone the literals were meant in).
func TestAcceptedFiltersAndTheirCanonicalText(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	c := session(t, db)
	plain := db.ConnAs(t, db.Server.User, db.Server.Password)
	if _, err := plain.Exec(ctx(t), "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ in, want string }{
		{`status = 'open'`, `((t.status OPERATOR(pg_catalog.=) CAST('open' AS pg_catalog.text)))`},
		{`total > 0`, `((t.total OPERATOR(pg_catalog.>) CAST('0' AS integer)))`},
		{`id BETWEEN 1 AND 3`, `(((t.id OPERATOR(pg_catalog.>=) CAST('1' AS integer)) AND (t.id OPERATOR(pg_catalog.<=) CAST('3' AS integer))))`},
		{`id NOT BETWEEN 2 AND 3`, `(((t.id OPERATOR(pg_catalog.<) CAST('2' AS integer)) OR (t.id OPERATOR(pg_catalog.>) CAST('3' AS integer))))`},
		{`status IN ('open', 'closed')`, `(((t.status OPERATOR(pg_catalog.=) CAST('open' AS pg_catalog.text)) OR (t.status OPERATOR(pg_catalog.=) CAST('closed' AS pg_catalog.text))))`},
		{`id NOT IN (1, 2)`, `((NOT ((t.id OPERATOR(pg_catalog.=) CAST('1' AS integer)) OR (t.id OPERATOR(pg_catalog.=) CAST('2' AS integer)))))`},
		{`status IS NOT NULL`, `((t.status IS NOT NULL))`},
		{`b IS NOT TRUE`, `((t.b IS NOT TRUE))`},
		{`b IS FALSE`, `((t.b IS FALSE))`},
		{`b`, `(t.b)`},
		{`placed >= '2024-01-01'`, `((t.placed OPERATOR(pg_catalog.>=) CAST('2024-01-01 00:00:00+00' AS timestamp with time zone)))`},
		{`d = '2024-02-29'`, `((t.d OPERATOR(pg_catalog.=) CAST('2024-02-29' AS pg_catalog.date)))`},
		{`name LIKE 'al%'`, `((t.name OPERATOR(pg_catalog.~~) CAST('al%' AS character varying)))`},
		{`name ILIKE 'AL%'`, `((t.name OPERATOR(pg_catalog.~~*) CAST('AL%' AS character varying)))`},
		{`name NOT LIKE 'a%'`, `((t.name OPERATOR(pg_catalog.!~~) CAST('a%' AS character varying)))`},
		{`coalesce(total, 0) >= 5`, `((COALESCE(t.total, CAST('0' AS integer)) OPERATOR(pg_catalog.>=) CAST('5' AS integer)))`},
		// untyped literals take the type of the list's first typed item
		{`'5' IN (id, 7)`, `(((CAST('5' AS integer) OPERATOR(pg_catalog.=) t.id) OR CAST('f' AS boolean)))`},
		{`coalesce('7', total) > 1`, `((COALESCE(CAST('7' AS numeric), t.total) OPERATOR(pg_catalog.>) CAST('1' AS integer)))`},
		{`lower(status) = 'open'`, `((pg_catalog.lower(t.status) OPERATOR(pg_catalog.=) CAST('open' AS pg_catalog.text)))`},
		{`pg_catalog.upper(status) = 'OPEN'`, `((pg_catalog.upper(t.status) OPERATOR(pg_catalog.=) CAST('OPEN' AS pg_catalog.text)))`},
		{`length(status) > 4 AND abs(id - 10) <= 2`, `(((pg_catalog.length(t.status) OPERATOR(pg_catalog.>) CAST('4' AS integer)) AND (pg_catalog.abs((t.id OPERATOR(pg_catalog.-) CAST('10' AS integer))) OPERATOR(pg_catalog.<=) CAST('2' AS integer))))`},
		{`t.id % 2 = 0 AND NOT b`, `((((t.id OPERATOR(pg_catalog.%) CAST('2' AS integer)) OPERATOR(pg_catalog.=) CAST('0' AS integer)) AND (NOT t.b)))`},
		{`orders.id <> 1`, `((t.id OPERATOR(pg_catalog.<>) CAST('1' AS integer)))`},
		{`id != 3`, `((t.id OPERATOR(pg_catalog.<>) CAST('3' AS integer)))`},
		{`"Mixed Case" IS DISTINCT FROM 3`, `((((t."Mixed Case" IS NULL) AND CAST('t' AS boolean)) OR ((t."Mixed Case" IS NOT NULL) AND CAST('f' AS boolean)) OR ((t."Mixed Case" OPERATOR(pg_catalog.=) CAST('3' AS integer)) IS FALSE)))`},
		{`"Mixed Case" IS NOT DISTINCT FROM NULL`, `((NOT (((t."Mixed Case" IS NULL) AND CAST('f' AS boolean)) OR ((t."Mixed Case" IS NOT NULL) AND CAST('t' AS boolean)) OR ((t."Mixed Case" OPERATOR(pg_catalog.=) CAST(NULL AS integer)) IS FALSE))))`},
		{`-id < -3`, `(((OPERATOR(pg_catalog.-) t.id) OPERATOR(pg_catalog.<) CAST('-3' AS integer)))`},
		{`total::numeric(10,2) > 1.5`, `((CAST(t.total AS numeric(10,2)) OPERATOR(pg_catalog.>) CAST('1.5' AS numeric)))`},
		{`CAST(id AS bigint) < 5000000000`, `((CAST(t.id AS bigint) OPERATOR(pg_catalog.<) CAST('5000000000' AS bigint)))`},
		{`id::text = '12'`, `((CAST(t.id AS pg_catalog.text) OPERATOR(pg_catalog.=) CAST('12' AS pg_catalog.text)))`},
		{`status COLLATE "C" < 'b'`, `(((t.status COLLATE pg_catalog."C") OPERATOR(pg_catalog.<) CAST('b' AS pg_catalog.text)))`},
		{`flags = '{1,2}'`, `((t.flags OPERATOR(pg_catalog.=) CAST('{1,2}' AS integer[])))`},
		{`status = E'a\\b'`, `((t.status OPERATOR(pg_catalog.=) CAST(E'a\\b' AS pg_catalog.text)))`},
		{`status = 'a\b'`, `((t.status OPERATOR(pg_catalog.=) CAST(E'a\\b' AS pg_catalog.text)))`},
		{`status = 'it''s'`, `((t.status OPERATOR(pg_catalog.=) CAST('it''s' AS pg_catalog.text)))`},
		{`status || '!' = 'open!'`, `(((t.status OPERATOR(pg_catalog.||) CAST('!' AS pg_catalog.text)) OPERATOR(pg_catalog.=) CAST('open!' AS pg_catalog.text)))`},
		{`"ünï" = 'ça' OR ünï IS NULL`, `(((t."ünï" OPERATOR(pg_catalog.=) CAST('ça' AS pg_catalog.text)) OR (t."ünï" IS NULL)))`},
		{`id > 3 OR id < 2 OR id = 2`, `(((t.id OPERATOR(pg_catalog.>) CAST('3' AS integer)) OR (t.id OPERATOR(pg_catalog.<) CAST('2' AS integer)) OR (t.id OPERATOR(pg_catalog.=) CAST('2' AS integer))))`},
		{`(id > 3 OR id < 2) AND b`, `((((t.id OPERATOR(pg_catalog.>) CAST('3' AS integer)) OR (t.id OPERATOR(pg_catalog.<) CAST('2' AS integer))) AND t.b))`},
		{`id * 1.5 > 3`, `(((t.id OPERATOR(pg_catalog.*) CAST('1.5' AS numeric)) OPERATOR(pg_catalog.>) CAST('3' AS integer)))`},
		{`total >= .5e1`, `((t.total OPERATOR(pg_catalog.>=) CAST('5' AS numeric)))`},
		{`1 + 2 * 3 = 7`, `(CAST('t' AS boolean))`},
		{`NULL IS NULL AND id > 2`, `((CAST('t' AS boolean) AND (t.id OPERATOR(pg_catalog.>) CAST('2' AS integer))))`},
		{`status = NULL`, `((t.status OPERATOR(pg_catalog.=) CAST(NULL AS pg_catalog.text)))`},
		{"id\t=\n1", `((t.id OPERATOR(pg_catalog.=) CAST('1' AS integer)))`},
		{`id = 1 OPERATOR(pg_catalog.+) 1`, `((t.id OPERATOR(pg_catalog.=) CAST('2' AS integer)))`},
		{strings.Repeat("(", 60) + "id = 1" + strings.Repeat(")", 60), `((t.id OPERATOR(pg_catalog.=) CAST('1' AS integer)))`},
	}
	for _, tc := range cases {
		got, err := canonical(t, c, tc.in)
		if err != nil {
			t.Errorf("_filter(%q) failed: %s", tc.in, pgtest.Describe(err))
			continue
		}
		if got != tc.want {
			t.Errorf("_filter(%q)\n got %s\nwant %s", tc.in, got, tc.want)
		}
		again, err := canonical(t, c, got)
		if err != nil || again != got {
			t.Errorf("_filter is not idempotent on %q: _filter(%s) = %s, %v", tc.in, got, again, err)
		}
		// the canonical text selects what the filter selects as written
		if strings.Contains(tc.in, "orders.") {
			continue // the query below names the table t
		}
		want, err1 := ids(t, plain, "("+tc.in+")")
		have, err2 := ids(t, c, got)
		if err1 != nil || err2 != nil || want != have {
			t.Errorf("%q selects rows %q (%v); its canonical text selects %q (%v)", tc.in, want, err1, have, err2)
		}
	}
	// a long IN list and a long OR chain stay one level deep: they parse again
	var items []string
	for i := 0; i < 200; i++ {
		items = append(items, fmt.Sprint(i))
	}
	for _, f := range []string{"id IN (" + strings.Join(items, ", ") + ")", "id = " + strings.Join(items, " OR id = ")} {
		got, err := canonical(t, c, f)
		if err != nil {
			t.Fatalf("_filter of a 200-item list failed: %s", pgtest.Describe(err))
		}
		if again, err := canonical(t, c, got); err != nil || again != got {
			t.Errorf("_filter is not idempotent on a 200-item list: %v", err)
		}
	}
}

// refusal fails unless err is pgshadow's invalid_parameter_value error for
// table public.orders, mentioning want, at character pos (if pos > 0).
func refusal(t *testing.T, filter string, err error, want string, pos int) {
	t.Helper()
	var pe *pgconn.PgError
	if err == nil {
		t.Errorf("_filter(%q) succeeded, want an error mentioning %q", filter, want)
		return
	}
	if !errors.As(err, &pe) {
		t.Errorf("_filter(%q): non-server error %v", filter, err)
		return
	}
	if pe.Code != "22023" || !strings.HasPrefix(pe.Message, "pgshadow: invalid row_filter for public.orders: ") {
		t.Errorf("_filter(%q): %s, want SQLSTATE 22023 'pgshadow: invalid row_filter for public.orders: ...'", filter, pgtest.Describe(err))
	}
	if !strings.Contains(pe.Message, want) {
		t.Errorf("_filter(%q): message does not mention %q: %s", filter, want, pe.Message)
	}
	if pos > 0 && !strings.HasSuffix(pe.Message, fmt.Sprintf("(at character %d)", pos)) {
		t.Errorf("_filter(%q): message does not place the error at character %d: %s", filter, pos, pe.Message)
	}
}

// Refused filters: every attack and everything outside the grammar gets a
// clear error naming the table, the cause and the character position, and
// nothing of it runs.
func TestRefusedFilters(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	// a canary a refused filter would set off if any of it ran
	db.Exec(t, `CREATE TABLE ran (what text);
		CREATE FUNCTION public.touch() RETURNS boolean LANGUAGE sql AS $$ INSERT INTO ran VALUES ('touch') RETURNING true $$;
		CREATE FUNCTION public.pure(integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 > 0 $$;
		CREATE TABLE victim (x int)`)
	c := session(t, db)
	// default search_path here, so unqualified names would find public's functions
	if _, err := c.Exec(ctx(t), "SET search_path = public, pg_catalog"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in, want string
		pos      int
	}{
		// the injections of the security review
		{`true) LIMIT 0; DROP TABLE public.victim; SELECT (true`, "semicolons are not allowed", 14},
		{`status = 'open') OR (true`, "unexpected ')'", 16},
		{`true) OR public.touch() OR (true`, "unexpected ')'", 5},
		{`id = 1 -- comment`, "comments are not allowed", 8},
		{`id = 1 /* comment */`, "comments are not allowed", 8},
		{`id =/**/1`, "comments are not allowed", 5},
		{`id = 1;`, "semicolons are not allowed", 7},
		{`status = 'open`, "unterminated quoted string", 10},
		{`"status = 'open'`, "unterminated quoted identifier", 1},
		{`(id = 1`, "expected ), found end of filter", 8},
		{`id = 1)`, "unexpected ')'", 7},
		{`((id = 1)`, "expected ), found end of filter", 10},
		{`U&'d\0061t' = status`, "U&... is not supported", 1},
		{`U&"st\0061tus" = 'x'`, "U&... is not supported", 1},
		{`X'1F' = status`, "X'... is not supported", 1},
		{`E'\n' = status`, "only the escapes", 3},
		{`$$open$$ = status`, "dollar quotes", 1},
		{`$1 = id`, "dollar quotes", 1},
		{``, "the filter is empty", 1},
		{`   `, "the filter is empty", 1},
		// functions: user-defined, volatile, stable, aggregate, set-returning
		{`touch()`, "function touch is not a built-in function", 1},
		{`public.touch()`, "function public.touch is not a built-in function", 1},
		{`pure(id)`, "function pure is not a built-in function", 1},
		{`id > 0 AND public.pure(id)`, "function public.pure is not a built-in function", 12},
		{`now() > placed`, "function now is not allowed", 1},
		{`placed < pg_catalog.now()`, "function now is not allowed", 21},
		{`random() > 0.5`, "function random is not allowed", 1},
		{`pg_sleep(1) IS NULL`, "function pg_sleep is not allowed", 1},
		{`set_config('a', 'b', false) = 'b'`, "function set_config is not allowed", 1},
		{`count(*) > 1`, "unexpected * in a function call", 7},
		{`count(id) > 1`, "function count is not allowed", 1},
		{`generate_series(1, 2) = 1`, "function generate_series is not allowed", 1},
		{`to_char(placed, 'YYYY') = '2024'`, "function to_char is not allowed", 1},
		{`placed > current_date`, "CURRENT_DATE is not allowed", 10},
		{`name = current_user`, "CURRENT_USER is not allowed", 8},
		// operators
		{`id === 1`, "operator === is not allowed", 4},
		{`status ~ 'o'`, "operator ~ is not allowed", 8},
		{`id OPERATOR(public.=) 1`, "OPERATOR() must name an operator of schema pg_catalog", 4},
		{`1 = 1 = 1`, "comparisons cannot be chained", 7},
		{`status SIMILAR TO 'o%'`, "unexpected 'similar'", 8},
		// types, columns
		{`m = 'happy'`, "column m has type public.mood, which is not a built-in base type", 1},
		{`amount > 0`, "column amount has type public.posint, which is not a built-in base type", 1},
		{`pr IS NULL`, "column pr has type public.pair, which is not a built-in base type", 1},
		{`id::posint > 0`, "type posint does not exist", 5},
		{`id::public.posint > 0`, "the cast has type public.posint", 5},
		{`CAST(id AS public.mood) IS NULL`, "the cast has type public.mood", 12},
		{`status::regclass IS NULL`, "casts to regclass are not allowed", 9},
		{`placed::date = '2024-01-01'`, "the cast from timestamp with time zone to date is not immutable", 7},
		{`id::nosuchtype > 0`, "type nosuchtype does not exist", 5},
		{`ctid = '(0,1)'`, "system column ctid is not allowed", 1},
		{`t.xmin = '1'`, "system column xmin is not allowed", 3},
		{`nosuch = 1`, "column nosuch does not exist", 1},
		{`x.id = 1`, "x is not the table", 1},
		{`id`, "argument of WHERE must be type boolean", 1},
		{`flags[1] = 1`, "array subscripts are not supported", 6},
		// subqueries and other SQL
		{`id IN (SELECT 1)`, "subqueries are not allowed", 8},
		{`EXISTS (SELECT 1)`, "subqueries are not allowed", 1},
		{`(SELECT true)`, "subqueries are not allowed", 2},
		{`CASE WHEN b THEN true END`, "unexpected CASE", 1},
		{`id = ANY (flags)`, "unexpected ANY", 6},
		{`ARRAY[1] = flags`, "unexpected ARRAY", 1},
		{`id = 1 1`, "unexpected '1'", 8},
		{`12abc = 1`, "invalid number", 1},
		{`1/0 = 1`, "division by zero", 2},
		{`lower(status COLLATE "nosuch") = 'a'`, "collation nosuch is not a built-in collation", 22},
		{`id::interval day > '1'`, "interval fields are not supported", 5},
		{strings.Repeat("(", 150) + "id = 1" + strings.Repeat(")", 150), "expression nested too deeply", 0},
		// function calls nest through the argument list's own frame: still
		// this error, never the server's stack depth limit
		{strings.Repeat("abs(", 250) + "id" + strings.Repeat(")", 250) + " = 1", "expression nested too deeply", 0},
	}
	for _, tc := range cases {
		_, err := canonical(t, c, tc.in)
		refusal(t, tc.in, err, tc.want, tc.pos)
	}
	if n := db.QueryInt(t, "SELECT count(*) FROM ran"); n != 0 {
		t.Errorf("a refused filter ran user code: %d rows in the canary table", n)
	}
	if n := db.QueryInt(t, "SELECT count(*) FROM pg_class WHERE relname = 'victim'"); n != 1 {
		t.Errorf("the DROP TABLE of an injected filter ran")
	}
}

// A user-defined operator in a writable public schema, on the very types a
// filter compares, never runs: not while a superuser (with public first in
// search_path) validates the filter, nor when the canonical text runs.
func TestUserOperatorInPublicNeverRuns(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	roleName := fmt.Sprintf("filter_op_%d", time.Now().UnixNano()%1000000)
	if err := pgtest.Server("source").CreateRole(ctx(t), roleName, "pw"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.ExecErr("DROP OWNED BY " + roleName + " CASCADE")
		db.ExecErr("DROP ROLE " + roleName)
	})
	db.Exec(t, "CREATE TABLE ran (what text); GRANT INSERT ON ran TO PUBLIC; GRANT CREATE ON SCHEMA public TO PUBLIC")
	mallory := db.ConnAs(t, roleName, "pw")
	for _, sql := range []string{
		`CREATE FUNCTION public.int_eq(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
		 $$ BEGIN INSERT INTO public.ran VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$`,
		`CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.int_eq)`,
		`CREATE FUNCTION public.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
		 $$ BEGIN INSERT INTO public.ran VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$`,
		`CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_eq)`,
	} {
		if _, err := mallory.Exec(ctx(t), sql); err != nil {
			t.Fatalf("as %s: %s\n%s", roleName, pgtest.Describe(err), sql)
		}
	}
	c := session(t, db) // superuser, search_path = public, pg_catalog
	// the scenario is live: a filter pasted as written would run the operator
	if _, err := ids(t, c, "id = 1"); err != nil {
		t.Fatal(err)
	}
	if n := db.QueryInt(t, "SELECT count(*) FROM ran"); n == 0 {
		t.Fatalf("scenario broken: the public operator did not run for a pasted filter")
	}
	db.Exec(t, "TRUNCATE ran")

	for _, f := range []string{"id = 1", "status = 'open' OR id IN (2, 3)", "id BETWEEN 1 AND 2", "\"Mixed Case\" IS DISTINCT FROM 3"} {
		got, err := canonical(t, c, f)
		if err != nil {
			t.Fatalf("_filter(%q): %s", f, pgtest.Describe(err))
		}
		if _, err := ids(t, c, got); err != nil {
			t.Fatalf("canonical %s: %s", got, pgtest.Describe(err))
		}
	}
	if n := db.QueryInt(t, "SELECT count(*) FROM ran"); n != 0 {
		t.Errorf("the public schema's operator ran %d time(s) for canonical filters", n)
	}
	_, err := canonical(t, c, "id OPERATOR(public.=) 1")
	refusal(t, "id OPERATOR(public.=) 1", err, "OPERATOR() must name an operator of schema pg_catalog", 4)
}

// A stored filter is re-validated by running _filter over it again (the
// upgrade path for filters stored by 0.1.1): a canonical one comes back
// unchanged, a hand-written one is canonicalized, a dangerous one refused.
func TestRevalidateStoredFilters(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	c := session(t, db)
	db.Exec(t, "SELECT shadow_add_target('files', NULL)")
	db.Exec(t, `SELECT shadow_subscribe('files', 'orders', row_filter => $$status = 'open' OR id > 3$$)`)
	stored := db.QueryString(t, "SELECT row_filter FROM pgshadow.subscription WHERE tbl = 'orders'::regclass")
	want, _ := canonical(t, c, "status = 'open' OR id > 3")
	if stored != want {
		t.Errorf("stored row_filter %s, want the canonical %s", stored, want)
	}
	if again := db.QueryString(t, "SELECT pgshadow._filter(tbl, row_filter) FROM pgshadow.subscription WHERE tbl = 'orders'::regclass"); again != stored {
		t.Errorf("re-validating the stored filter changed it: %s", again)
	}
	// subscribing again with the same filter, written differently, is the same subscription
	db.Exec(t, `SELECT shadow_subscribe('files', 'orders', row_filter => $$(status = 'open') or (id > 3)$$)`)
	// the old, unsafe text is refused on re-validation
	_, err := canonical(t, c, "status = 'open') OR (true")
	refusal(t, "status = 'open') OR (true", err, "unexpected ')'", 16)
}
