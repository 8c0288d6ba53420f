// Export grants: a table's owner lets a scheduler role export her table's
// subscriptions without owning the table (shadow_grant_export). The
// scheduler ships only the granted tables, only with a user mapping that
// logs in as the target role the owner's does, and can neither drop, alter,
// resync, skip, compare nor untrack the table, nor read through pgshadow
// what it may not SELECT.
package security

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestExportGrantLetsASchedulerExportOnlyThat(t *testing.T) {
	t.Parallel()
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	cron, asCron := newLoginRole(t, s.Src, "cron")
	s.letUseTarget(t, cron)
	tw2 := pgtest.NewRole(t, s.Dst, "tw2", "")
	s.Dst.Exec(t, fmt.Sprintf("GRANT SELECT, INSERT, DELETE ON orders, payroll TO %s, %s", pgtest.Ident(tw2), pgtest.Ident(s.tw)))
	s.Src.Exec(t, fmt.Sprintf(`CREATE TABLE payroll (id int PRIMARY KEY, v text);
		ALTER TABLE payroll OWNER TO %[1]s;
		GRANT SELECT ON orders TO %[2]s`, pgtest.Ident(s.alice), pgtest.Ident(cron)))
	for _, tbl := range []string{"orders", "payroll"} {
		run(t, s.asAlice, "SELECT shadow_track($1)", tbl)
		run(t, s.asAlice, "SELECT shadow_subscribe('replica', $1)", tbl)
	}
	s.Dst.Exec(t, "DELETE FROM payroll")

	// only the owner grants, and only to a role that may SELECT the table
	assertError(t, runErr(t, asCron, "SELECT shadow_grant_export('orders', $1)", cron),
		"a non-owner grants itself", "42501", "permission denied for table public.orders")
	assertError(t, runErr(t, s.asAlice, "SELECT shadow_grant_export('payroll', $1)", cron),
		"grant to a role without SELECT", "42501", "may not SELECT", "payroll")
	run(t, s.asAlice, "SELECT shadow_grant_export('orders', $1)", cron)
	// the grants are not everyone's to list: a role asks only about itself
	if n := count(t, s.asOlga, "SELECT count(*) FROM pgshadow.export_grant"); n != 0 {
		t.Fatalf("olga sees %d export grants of a table she may not SELECT", n)
	}
	if n := count(t, s.asOlga, "SELECT count(*) WHERE pgshadow._export_granted($1, 'orders')", cron); n != 0 {
		t.Fatalf("olga learns of cron's grant")
	}

	// the scheduler ships orders, not payroll
	run(t, s.asAlice, "INSERT INTO orders VALUES (1, 'a'), (2, 'b'); INSERT INTO payroll VALUES (1, 'salary')")
	if n := count(t, asCron, "SELECT count(*) FROM shadow_export('replica') WHERE error IS NULL AND tbl = 'orders'::regclass"); n != 1 {
		t.Fatalf("cron's export shipped %d rows for orders, want 1", n)
	}
	pgtest.AssertSameRows(t, s.Src, "orders", s.Dst, "orders")
	if n := s.Dst.QueryInt(t, "SELECT count(*) FROM payroll"); n != 0 {
		t.Fatalf("cron's export shipped payroll (%d rows on the target)", n)
	}
	if n := count(t, s.asAlice, `SELECT pending_keys FROM shadow_status WHERE "table" = 'payroll'::regclass`); n != 1 {
		t.Fatalf("payroll pending after cron's export: %d keys, want 1", n)
	}
	// status of orders, nothing of payroll; payroll's shadow table stays closed
	if n := count(t, asCron, `SELECT count(*) FROM shadow_status WHERE "table" = 'orders'::regclass AND last_export IS NOT NULL`); n != 1 {
		t.Fatalf("cron sees %d status rows of orders, want 1", n)
	}
	if n := count(t, asCron, `SELECT count(*) FROM shadow_status WHERE "table" = 'payroll'::regclass`); n != 0 {
		t.Fatalf("cron sees payroll's status")
	}
	assertError(t, runErr(t, asCron, "SELECT * FROM pgshadow.public__payroll"), "cron reads payroll's shadow", "42501", "permission denied")

	// async too: shadow_run ships what cron may export
	run(t, s.asAlice, "UPDATE orders SET v = 'c' WHERE id = 1")
	run(t, asCron, "CALL shadow_run()")
	run(t, asCron, "SELECT * FROM shadow_export('replica')")
	pgtest.AssertSameRows(t, s.Src, "orders", s.Dst, "orders")

	// file mode too: pgshadow export as cron writes the granted table only
	run(t, s.asAlice, "SELECT shadow_add_target('offsite', NULL)")
	run(t, s.asAlice, "SELECT shadow_subscribe('offsite', 'orders')")
	run(t, s.asAlice, "SELECT shadow_subscribe('offsite', 'payroll')")
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := filemode.Export(c, asCron, filemode.ExportOptions{Target: "offsite", Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("pgshadow export as cron: %s", pgtest.Describe(err))
	}
	if res.Manifest == nil || len(res.Manifest.Tables) != 1 || res.Manifest.Tables[0].SourceTable != "public.orders" ||
		res.Manifest.Tables[0].Rows != 2 {
		t.Fatalf("cron's file export wrote %+v, want the 2 rows of public.orders only", res.Manifest)
	}
	if got := s.Src.QueryStrings(t, `SELECT tbl::text || ' ' || batch_no FROM pgshadow.subscription
		WHERE target = 'offsite' ORDER BY tbl::text`); fmt.Sprint(got) != "[orders 1 payroll 0]" {
		t.Fatalf("offsite batches after cron's file export: %v, want orders 1, payroll 0", got)
	}

	// nothing but exporting
	for _, sql := range []string{
		"DROP TABLE orders",
		"ALTER TABLE orders ADD COLUMN x int",
		"SELECT shadow_resync('replica', 'orders')",
		"SELECT shadow_skip('replica', 'orders', 'cron')",
		"SELECT * FROM shadow_compare('replica', 'orders', repair => true)",
		"SELECT shadow_unsubscribe('replica', 'orders')",
		"SELECT shadow_untrack('orders')",
		"SELECT shadow_grant_export('orders', current_user::regrole)",
		"SELECT shadow_revoke_export('orders', current_user::regrole)",
	} {
		assertError(t, runErr(t, asCron, sql), "cron: "+sql, "42501")
	}
	if n := s.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.export_grant"); n != 1 {
		t.Fatalf("export grants after cron's attempts: %d, want 1", n)
	}

	// the batches are applied only as the target role the owner's mapping
	// names: cron's mapping pointing at another target role is refused
	s.Src.Exec(t, fmt.Sprintf("ALTER USER MAPPING FOR %s SERVER tgt OPTIONS (SET user %s)", pgtest.Ident(cron), pgtest.Lit(tw2)))
	run(t, s.asAlice, "UPDATE orders SET v = 'd' WHERE id = 2")
	assertError(t, runErr(t, asCron, "SELECT * FROM shadow_export('replica')"), "export as another target role",
		"42501", "only as the target role", tw2)
	if got := s.Dst.QueryString(t, "SELECT v FROM orders WHERE id = 2"); got != "b" {
		t.Fatalf("orders 2 on the target is %q after the refused export, want b", got)
	}
	s.Src.Exec(t, fmt.Sprintf("ALTER USER MAPPING FOR %s SERVER tgt OPTIONS (SET user %s)", pgtest.Ident(cron), pgtest.Lit(s.tw)))

	// row policies that hide rows from cron: refused, not shipped as deletes
	s.Src.Exec(t, fmt.Sprintf(`ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
		CREATE POLICY cron_sees_some ON orders FOR SELECT TO %s USING (id = 1)`, pgtest.Ident(cron)))
	assertError(t, runErr(t, asCron, "SELECT * FROM shadow_export('replica')"), "export through row policies",
		"42501", "row security", "orders")
	if got := s.Dst.QueryString(t, "SELECT v FROM orders WHERE id = 2"); got != "b" {
		t.Fatalf("orders 2 on the target is %q after the refused export, want b", got)
	}
	s.Src.Exec(t, "DROP POLICY cron_sees_some ON orders; ALTER TABLE orders DISABLE ROW LEVEL SECURITY")

	// revoked: cron ships nothing and its shadow access goes
	run(t, s.asAlice, "SELECT shadow_revoke_export('orders', $1)", cron)
	if n := count(t, asCron, "SELECT count(*) FROM shadow_export('replica')"); n != 0 {
		t.Fatalf("cron's export after the revoke shipped %d tables", n)
	}
	assertError(t, runErr(t, asCron, "SELECT * FROM pgshadow.public__orders"), "cron reads orders' shadow after the revoke", "42501", "permission denied")
	run(t, s.asAlice, "SELECT * FROM shadow_export('replica')")
	pgtest.AssertSameRows(t, s.Src, "orders", s.Dst, "orders")
}
