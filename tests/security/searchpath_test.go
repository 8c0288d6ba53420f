package security

// Rule 4: every function and procedure pins search_path, so nothing an
// outsider creates in a writable schema is ever resolved inside pgshadow.
// Rule 5: loop prevention decides by one rule in every mode.

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// hostilePublic makes public writable for everyone (the default before
// PostgreSQL 15) and lets outsider create, there, operators and functions
// that match what pgshadow's SQL uses better than the built-in ones do; each
// turns its caller's rights into a superuser grant for the outsider.
func hostilePublic(t *testing.T, s *scene) {
	t.Helper()
	s.Src.Exec(t, "GRANT CREATE ON SCHEMA public TO PUBLIC")
	t.Cleanup(func() { _ = s.Src.ExecErr("REVOKE CREATE ON SCHEMA public FROM PUBLIC") })
	var sql strings.Builder
	fmt.Fprintf(&sql, `CREATE FUNCTION public.pwn() RETURNS boolean LANGUAGE plpgsql AS $f$
		BEGIN
		    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		        EXECUTE 'ALTER ROLE %[1]s SUPERUSER';
		    END IF;
		    RETURN false;
		END $f$;
		`, pgtest.Ident(s.olga))
	for i, types := range [][2]string{{"oid", "regclass"}, {"regclass", "oid"}, {"text", "name"},
		{"name", "text"}, {"bigint", "integer"}, {"xid8", "text"}, {"text", "text"}, {"regclass", "regclass"}} {
		fmt.Fprintf(&sql, `CREATE FUNCTION public.pwn_op%[1]d(%[2]s, %[3]s) RETURNS boolean LANGUAGE sql AS 'SELECT public.pwn()';
			CREATE OPERATOR public.= (LEFTARG = %[2]s, RIGHTARG = %[3]s, FUNCTION = public.pwn_op%[1]d);
			CREATE OPERATOR public.<> (LEFTARG = %[2]s, RIGHTARG = %[3]s, FUNCTION = public.pwn_op%[1]d);
			`, i, types[0], types[1])
	}
	for _, f := range []string{"clock_timestamp()", "now()", "current_setting(text)", "format(text)",
		"pg_current_snapshot()", "count(anyelement)"} {
		name, args, _ := strings.Cut(f, "(")
		args = strings.TrimSuffix(args, ")")
		fmt.Fprintf(&sql, "CREATE FUNCTION public.%s(%s) RETURNS boolean LANGUAGE sql AS 'SELECT public.pwn()';\n", name, args)
	}
	run(t, s.asOlga, sql.String())
}

func (s *scene) olgaIsSuperuser(t *testing.T) bool {
	t.Helper()
	return s.Src.QueryString(t, "SELECT rolsuper::text FROM pg_roles WHERE rolname = $1", s.olga) == "true"
}

// On 0.1.1, CALL shadow_run() resolved "c.oid = s.tbl" through the caller's
// search_path: an outsider's OPERATOR public.= (oid, regclass) ran as the
// superuser calling it. Every entry point is called here by a superuser with
// the default search_path and with public first.
func TestSuperuserEntryPointsResolveNothingAnOutsiderCreated(t *testing.T) {
	s := newScene(t)
	s.Dst.Exec(t, "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text)")
	s.Src.Exec(t, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
		SELECT shadow_subscribe('replica', 'a', mode => 'async'), shadow_subscribe('replica', 'b');
		INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y')`)
	hostilePublic(t, s)
	admin := s.Src.ConnAs(t, s.Src.Server.User, s.Src.Server.Password)
	calls := []string{
		"CALL shadow_run()",
		"CALL shadow_retry('replica')",
		"SELECT * FROM shadow_export('replica')",
		"CALL shadow_export_logged('replica')",
		"SELECT pgshadow.record_failure('replica', '08006', 'test')",
		"SELECT * FROM shadow_failures",
		"SELECT * FROM shadow_status",
		"SELECT * FROM shadow_errors",
		"SELECT * FROM shadow_conflicts",
		"SELECT * FROM shadow_compare('replica', 'b')",
		"SELECT * FROM shadow_compare('replica', 'b', repair => true)",
		"SELECT shadow_skip('replica', 'b', 'test')",
		"SELECT shadow_resync('replica', 'b')",
		"SELECT shadow_track('orders')",
		"SELECT shadow_unsubscribe('replica', 'b')",
		"SELECT shadow_subscribe('replica', 'b', initial_copy => false)",
		"SELECT shadow_untrack('orders')",
		"SELECT * FROM pgshadow.track_plan('a')",
	}
	for _, path := range []string{`"$user", public`, "public, pg_catalog"} {
		run(t, admin, "SET search_path = "+path)
		for _, c := range calls {
			run(t, admin, c)
			if s.olgaIsSuperuser(t) {
				t.Fatalf("%s with search_path %s ran the outsider's code as superuser", c, path)
			}
		}
	}
}

// Every function and procedure pgshadow installs pins search_path. The only
// exceptions are procedures that COMMIT (they cannot have SET clauses): they
// may only call pgshadow functions by qualified name, with no operator.
func TestEveryFunctionPinsSearchPath(t *testing.T) {
	s := newScene(t)
	// functions made at run time (per tracked table) count too
	s.Src.Exec(t, "SELECT shadow_track('orders')")
	rows := s.Src.QueryStrings(t, `
		SELECT format('%s|%s|%s|%s', p.oid::regprocedure, p.prokind, coalesce(array_to_string(p.proconfig, ';'), ''),
		              replace(replace(p.prosrc, E'\n', ' '), '|', ' '))
		  FROM pg_proc p
		 WHERE p.pronamespace = 'pgshadow'::regnamespace
		    OR p.oid IN (SELECT d.objid FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
		                  WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e' AND e.extname = 'pgshadow')`)
	if len(rows) < 40 {
		t.Fatalf("found only %d functions: the query is wrong", len(rows))
	}
	call := regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.]*)\s*\(`)
	for _, r := range rows {
		parts := strings.SplitN(r, "|", 4)
		name, kind, config, src := parts[0], parts[1], parts[2], parts[3]
		if strings.Contains(config, "search_path=pg_catalog, pg_temp") {
			continue
		}
		if kind != "p" {
			t.Errorf("%s does not pin search_path (config %q)", name, config)
			continue
		}
		if strings.ContainsAny(src, "=<>!~+*/%^&|@#-") {
			t.Errorf("procedure %s does not pin search_path and uses an operator: %s", name, src)
		}
		for _, m := range call.FindAllStringSubmatch(src, -1) {
			if !strings.HasPrefix(m[1], "pgshadow.") {
				t.Errorf("procedure %s does not pin search_path and calls %s unqualified", name, m[1])
			}
		}
	}
}

// On 0.1.1 sync capture checked current_user: a plain writer who set
// pgshadow.origin and wrote through the owner's SECURITY DEFINER function
// committed a row that never reached the target. Batch capture decides by
// the same rule.
func TestWriterThroughOwnersDefinerFunctionCannotSkipCapture(t *testing.T) {
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	s.Src.Exec(t, "GRANT CREATE ON SCHEMA public TO "+pgtest.Ident(s.alice))
	run(t, s.asAlice, `SELECT shadow_subscribe('replica', 'orders', mode => 'sync');
		CREATE FUNCTION public.add_order(p int) RETURNS void LANGUAGE sql SECURITY DEFINER
		    SET search_path = pg_catalog, pg_temp AS 'INSERT INTO public.orders VALUES (p, ''via definer'')';
		REVOKE EXECUTE ON FUNCTION public.add_order(int) FROM PUBLIC`)
	run(t, s.asAlice, "GRANT EXECUTE ON FUNCTION public.add_order(int) TO "+pgtest.Ident(s.wally))
	run(t, s.asWally, "SET pgshadow.origin = 'elsewhere'")
	run(t, s.asWally, "SELECT public.add_order(7)")
	pgtest.AssertSameRows(t, s.Src, "orders", s.Dst, "orders")
	if n := s.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.public__orders WHERE id = 7"); n == 0 {
		t.Fatalf("batch capture skipped a plain writer's row written through the owner's definer function")
	}
	// the owner herself, applying replicated changes, is not captured
	run(t, s.asAlice, "SET pgshadow.origin = 'elsewhere'")
	run(t, s.asAlice, "INSERT INTO orders VALUES (8, 'replicated')")
	if n := s.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.public__orders WHERE id = 8"); n != 0 {
		t.Fatalf("the owner's session marked as applying replicated changes was captured")
	}
	if n := s.Dst.QueryInt(t, "SELECT count(*) FROM orders WHERE id = 8"); n != 0 {
		t.Fatalf("sync mode shipped a change the owner's session marked as replicated")
	}
}

// The threat model in docs/DESIGN.md names every SECURITY DEFINER function
// with the reason it must be one; a new one must be argued there too.
func TestEverySecurityDefinerFunctionIsInTheThreatModel(t *testing.T) {
	s := newScene(t)
	s.Src.Exec(t, "SELECT shadow_track('orders')")
	// the per-table capture functions are argued for as one row
	definers := s.Src.QueryStrings(t, `SELECT p.proname FROM pg_proc p
		 WHERE p.prosecdef
		   AND p.proname NOT IN (SELECT pgshadow._capture_fn_name(shadow) FROM pgshadow.tracked)
		   AND (p.pronamespace = 'pgshadow'::regnamespace
		    OR p.oid IN (SELECT d.objid FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
		                  WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e' AND e.extname = 'pgshadow'))`)
	design, err := os.ReadFile("../../docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(design), "### SECURITY DEFINER functions")
	section, _, _ = strings.Cut(section, "\n## ")
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(section, -1) {
		listed[m[1]] = true
	}
	if len(definers) < 10 {
		t.Fatalf("found only %d SECURITY DEFINER functions: the query is wrong", len(definers))
	}
	for _, f := range definers {
		if !listed[f] {
			t.Errorf("SECURITY DEFINER function %s is not argued for in docs/DESIGN.md's threat model", f)
		}
	}
}
