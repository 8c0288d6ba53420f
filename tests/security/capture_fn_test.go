package security

// shadow_track writes the table's capture function as a dollar-quoted body
// ($pgshadow$ ... $pgshadow$) with the shadow table's name and key column
// names in it, and pgshadow's owner runs that text. A name containing
// $pgshadow$ ended the body early, and the rest of the name ran as SQL with
// the rights of pgshadow's owner, a superuser.

import (
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestTableNameCannotBreakOutOfTheCaptureFunction(t *testing.T) {
	s := newScene(t)
	s.Src.Exec(t, "GRANT CREATE ON SCHEMA public TO "+pgtest.Ident(s.alice))
	run(t, s.asAlice, `CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS
		$$BEGIN EXECUTE format('ALTER ROLE %I SUPERUSER', session_user); END$$`)
	for _, ddl := range []string{
		// the table's name: the shadow's name is public__<name>
		"CREATE TABLE public.\"x\nBEGIN END$pgshadow$;SELECT public.f(),$pgshadow$\" (id int PRIMARY KEY)",
		// a key column's name
		"CREATE TABLE public.y (\"x\nBEGIN END$pgshadow$;SELECT public.f(),$pgshadow$\" int PRIMARY KEY)",
	} {
		run(t, s.asAlice, ddl)
	}
	for _, tbl := range []string{"'public.\"x\nBEGIN END$pgshadow$;SELECT public.f(),$pgshadow$\"'", "'public.y'"} {
		err := runErr(t, s.asAlice, "SELECT shadow_track("+tbl+")")
		if n := s.Src.QueryInt(t, "SELECT count(*) FROM pg_roles WHERE rolname = $1 AND rolsuper", s.alice); n != 0 {
			t.Fatalf("tracking %s made table owner %s a superuser", tbl, s.alice)
		}
		assertError(t, err, "tracking "+tbl, "42602", "$pgshadow$")
	}
}
