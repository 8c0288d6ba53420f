package install

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// scope selects a pgshadow install's objects: everything in schema pgshadow,
// plus the public API (functions and views named shadow_*) in whatever schema
// the install put it. nameCol is the object-name column of the query.
func scope(nameCol string) string {
	return "(n.nspname = 'pgshadow' OR (n.nspname NOT IN ('pg_catalog', 'information_schema') AND " +
		nameCol + ` LIKE 'shadow\_%'))`
}

// inventoryQueries each return one text line per object, with every property
// the two install paths must agree on. Owner and ACL columns print role
// names, so both installs must be made by the same role.
var inventoryQueries = []string{
	`SELECT format('schema %I owner=%s acl=%s comment=%L', n.nspname, n.nspowner::regrole, n.nspacl,
	               obj_description(n.oid, 'pg_namespace'))
	   FROM pg_namespace n WHERE n.nspname = 'pgshadow'`,

	`SELECT format('function %I.%I(%s) returns %s kind=%s lang=%s secdef=%s config=%s volatile=%s strict=%s'
	               ' parallel=%s owner=%s acl=%s body_md5=%s comment=%L',
	               n.nspname, p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
	               p.prokind, l.lanname, p.prosecdef, p.proconfig, p.provolatile, p.proisstrict, p.proparallel,
	               p.proowner::regrole, p.proacl, md5(p.prosrc), obj_description(p.oid, 'pg_proc'))
	   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
	  WHERE ` + scope("p.proname"),

	`SELECT format('relation %I.%I kind=%s persistence=%s owner=%s acl=%s rowsecurity=%s options=%s comment=%L',
	               n.nspname, c.relname, c.relkind, c.relpersistence, c.relowner::regrole, c.relacl,
	               c.relrowsecurity, c.reloptions, obj_description(c.oid, 'pg_class'))
	   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE c.relkind <> 'i' AND ` + scope("c.relname"),

	`SELECT format('column %I.%I.%I type=%s notnull=%s default=%s identity=%s generated=%s collation=%s comment=%L',
	               n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
	               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attcollation::regcollation,
	               col_description(c.oid, a.attnum))
	   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	  WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind <> 'i' AND ` + scope("c.relname"),

	`SELECT format('index %s', pg_get_indexdef(i.indexrelid))
	   FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE ` + scope("c.relname"),

	`SELECT format('constraint %s on %s: %s deferrable=%s', co.conname, co.conrelid::regclass,
	               pg_get_constraintdef(co.oid), co.condeferrable)
	   FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE ` + scope("c.relname"),

	`SELECT format('policy %s on %s: cmd=%s permissive=%s roles=%s using %s check %s', p.polname,
	               p.polrelid::regclass, p.polcmd, p.polpermissive, p.polroles::regrole[],
	               pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
	   FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE ` + scope("c.relname"),

	`SELECT format('view %I.%I: %s', n.nspname, c.relname, pg_get_viewdef(c.oid))
	   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE c.relkind IN ('v', 'm') AND ` + scope("c.relname"),

	`SELECT format('sequence %I.%I type=%s start=%s increment=%s cycle=%s', s.schemaname, s.sequencename,
	               s.data_type, s.start_value, s.increment_by, s.cycle)
	   FROM pg_sequences s WHERE s.schemaname = 'pgshadow'`,

	`SELECT format('trigger %s on %s: %s', t.tgname, t.tgrelid::regclass, pg_get_triggerdef(t.oid))
	   FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE NOT t.tgisinternal AND ` + scope("c.relname"),

	`SELECT format('event trigger %s on %s executes %s enabled=%s tags=%s', e.evtname, e.evtevent,
	               e.evtfoid::regprocedure, e.evtenabled, e.evttags)
	   FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid JOIN pg_namespace n ON n.oid = p.pronamespace
	  WHERE n.nspname = 'pgshadow' OR e.evtname LIKE 'pgshadow%'`,

	// types other than the row types of tables and their arrays
	`SELECT format('type %I.%I kind=%s', n.nspname, t.typname, t.typtype)
	   FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
	   LEFT JOIN pg_class c ON c.oid = t.typrelid
	  WHERE n.nspname = 'pgshadow' AND t.typelem = 0 AND (c.oid IS NULL OR c.relkind = 'c')`,
}

// Inventory lists every object a pgshadow install made in db, one line per
// object, sorted.
func Inventory(t testing.TB, db *pgtest.DB) []string {
	t.Helper()
	var lines []string
	for _, q := range inventoryQueries {
		lines = append(lines, db.QueryStrings(t, q)...)
	}
	sort.Strings(lines)
	return lines
}

// leftoverQuery lists what of pgshadow is still in a database after an
// uninstall: its schema, API functions and views, capture triggers on user
// tables, the drop-watch event trigger and the extension itself.
const leftoverQuery = `
SELECT 'schema pgshadow' FROM pg_namespace WHERE nspname = 'pgshadow'
UNION ALL
SELECT 'extension pgshadow' FROM pg_extension WHERE extname = 'pgshadow'
UNION ALL
SELECT format('function %s', p.oid::regprocedure)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND (p.proname LIKE 'shadow\_%' OR n.nspname = 'pgshadow')
UNION ALL
SELECT format('relation %s (kind %s)', c.oid::regclass, c.relkind)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND (c.relname LIKE 'shadow\_%' OR n.nspname = 'pgshadow')
UNION ALL
SELECT format('trigger %s on %s', t.tgname, t.tgrelid::regclass)
  FROM pg_trigger t
 WHERE t.tgname LIKE 'pgshadow%'
    OR t.tgfoid IN (SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'pgshadow')
UNION ALL
SELECT format('event trigger %s', e.evtname) FROM pg_event_trigger e WHERE e.evtname LIKE 'pgshadow%'`

// Leftovers lists what of pgshadow is still in db.
func Leftovers(t testing.TB, db *pgtest.DB) []string {
	t.Helper()
	return db.QueryStrings(t, leftoverQuery)
}

// AssertNothingLeft fails the test, listing the leftovers, unless the
// uninstall that just ran (named by what) removed all of pgshadow.
func AssertNothingLeft(t testing.TB, db *pgtest.DB, what string) {
	t.Helper()
	if left := Leftovers(t, db); len(left) > 0 {
		t.Fatalf("after %s, pgshadow objects are left in %s:\n  %s", what, db.Name, strings.Join(left, "\n  "))
	}
}

// RepoRoot is the repository's top directory: the nearest parent of the
// test's working directory holding pgshadow.control.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "pgshadow.control")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no pgshadow.control above the test's directory")
		}
		dir = parent
	}
}
