package security

// Rule 2: a subscription acts only with its owner's rights. Subscribing needs
// the right to use the target; an export ships only the subscriptions of
// tables the exporting role owns (or whose owning role it is an explicit
// member of), so nobody's batches travel with somebody else's user mapping,
// and nobody's subscription can make somebody else's export fail.

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// On 0.1.1 alice subscribed to the administrator's target without any right
// on its server.
func TestSubscribingNeedsUsageAndAUserMappingOnTheTargetsServer(t *testing.T) {
	s := newScene(t)
	err := runErr(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders', initial_copy => false)")
	assertError(t, err, "subscribe without USAGE", "42501", "USAGE", "tgt")

	s.Src.Exec(t, "GRANT USAGE ON FOREIGN SERVER tgt TO "+pgtest.Ident(s.alice))
	err = runErr(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders', initial_copy => false)")
	assertError(t, err, "subscribe without a user mapping", "42501", "user mapping", "tgt")

	// the internal helper is the gate, not just the public function
	err = runErr(t, s.asAlice, `SELECT pgshadow._add_subscription('replica', 'orders', 'public', 'orders',
		'{id,v}', NULL, 'batch', 'source_wins', false)`)
	assertError(t, err, "_add_subscription without a user mapping", "42501", "user mapping")
	if n := s.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.subscription"); n != 0 {
		t.Fatalf("refused subscriptions left %d catalog rows", n)
	}

	s.letUseTarget(t, s.alice)
	run(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders', initial_copy => false)")
}

// A file target belongs to the role that declared it.
func TestSubscribingToAnotherRolesFileTargetIsRefused(t *testing.T) {
	s := newScene(t)
	s.Src.Exec(t, "SELECT shadow_add_target('outbox', NULL)")
	err := runErr(t, s.asAlice, "SELECT shadow_subscribe('outbox', 'orders')")
	assertError(t, err, "subscribe to the administrator's file target", "42501", "outbox")
	run(t, s.asAlice, "SELECT shadow_add_target('alice_outbox', NULL)")
	run(t, s.asAlice, "SELECT shadow_subscribe('alice_outbox', 'orders')")
}

// On 0.1.1 alice aimed her subscription at the administrator's payroll table;
// the administrator's routine export then applied her batches (and her
// TRUNCATE) there with the administrator's user mapping.
func TestSuperusersExportNeverShipsAnotherRolesSubscription(t *testing.T) {
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	run(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders', dest => 'public.payroll', initial_copy => false)")
	run(t, s.asAlice, "INSERT INTO orders VALUES (1, 'evil'), (3, 'evil')")
	before := s.Dst.TableRows(t, "payroll")
	watermark := s.Src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription")

	// the administrator's export: alice's subscription is not its to ship
	if n := s.Src.QueryInt(t, "SELECT count(*) FROM shadow_export('replica')"); n != 0 {
		t.Fatalf("the superuser's export reported %d tables, want none (alice's is hers to ship)", n)
	}
	run(t, s.asAlice, "TRUNCATE orders")
	s.Src.Exec(t, "SELECT * FROM shadow_export('replica')")
	s.Src.Exec(t, "CALL shadow_run()")
	if diff := diffRows(before, s.Dst.TableRows(t, "payroll")); diff != "" {
		t.Fatalf("payroll changed by the administrator's export:\n%s", diff)
	}
	if w := s.Src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription"); w != watermark {
		t.Fatalf("alice's watermark moved from %s to %s without her shipping", watermark, w)
	}

	// alice ships with her own mapping: the target refuses, payroll stays
	err := runErr(t, s.asAlice, "SELECT * FROM shadow_export('replica')")
	assertError(t, err, "alice's own export to payroll", "42501", "payroll")
	if diff := diffRows(before, s.Dst.TableRows(t, "payroll")); diff != "" {
		t.Fatalf("payroll changed by alice's export with her own mapping:\n%s", diff)
	}
}

// On 0.1.1 any table owner who subscribed a table to your target made every
// export of yours fail ("permission denied for table ...").
func TestAnotherRolesSubscriptionDoesNotFailMyExport(t *testing.T) {
	s := newScene(t)
	s.Dst.Exec(t, "CREATE TABLE mine (id int PRIMARY KEY, v text)")
	s.Src.Exec(t, "CREATE TABLE mine (id int PRIMARY KEY, v text); SELECT shadow_subscribe('replica', 'mine')")
	s.letUseTarget(t, s.alice)
	run(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders')")
	run(t, s.asAlice, "INSERT INTO orders VALUES (1, 'a')")
	s.Src.Exec(t, "INSERT INTO mine VALUES (1, 'x'), (2, 'y')")

	rows := s.Src.QueryStrings(t, "SELECT format('%s %s %s', tbl, keys, error) FROM shadow_export('replica')")
	if len(rows) != 1 || rows[0] != "mine 2 " {
		t.Fatalf("the administrator's export returned %q, want only its own table shipped", rows)
	}
	pgtest.AssertSameRows(t, s.Src, "mine", s.Dst, "mine")

	// and alice's export ships hers alone, untroubled by the administrator's
	var tbl string
	var keys int64
	if err := s.asAlice.QueryRow(ctx(t), "SELECT tbl::text, keys FROM shadow_export('replica')").Scan(&tbl, &keys); err != nil {
		t.Fatalf("alice's export: %v", err)
	}
	if tbl != "orders" || keys != 1 {
		t.Fatalf("alice's export shipped %s (%d keys), want orders (1)", tbl, keys)
	}
	pgtest.AssertSameRows(t, s.Src, "orders", s.Dst, "orders")

	// file mode reads the same way: each role its own subscriptions
	run(t, s.asAlice, "SELECT shadow_add_target('alice_files', NULL); SELECT shadow_subscribe('alice_files', 'orders')")
	s.Src.Exec(t, "SELECT shadow_add_target('admin_files', NULL); SELECT shadow_subscribe('admin_files', 'mine')")
	admin := s.Src.ConnAs(t, s.Src.Server.User, s.Src.Server.Password)
	tx, err := admin.BeginTx(ctx(t), pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx(t))
	res, err := tx.Query(ctx(t), "SELECT tbl::text FROM pgshadow.file_batches('admin_files')")
	if err != nil {
		t.Fatal(pgtest.Describe(err))
	}
	got, err := pgx.CollectRows(res, pgx.RowTo[string])
	if err != nil {
		t.Fatal(pgtest.Describe(err))
	}
	if fmt.Sprint(got) != "[mine]" {
		t.Fatalf("file_batches('admin_files') = %v, want [mine]", got)
	}
}

func diffRows(a, b []string) string { return pgtest.DiffRows(a, b) }
