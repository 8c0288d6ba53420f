package security

// What each kind of role can do through every public function and see through
// every view, on one table (alice's orders, subscribed to "replica").

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// outcome of one call: "ok", "denied" (SQLSTATE 42501), "hidden" (the
// subscription does not exist for this role: 42704), or for exports "skip"
// (the call succeeds and ships nothing of orders).
func outcome(t *testing.T, c *pgx.Conn, sql string) string {
	t.Helper()
	tx, err := c.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx(t)) // every call is undone: the next starts from the same state
	rows, err := tx.Query(ctx(t), sql)
	var got []string
	if err == nil {
		got, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			vals, err := r.Values()
			return fmt.Sprint(vals...), err
		})
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return "denied"
	case errors.As(err, &pgErr) && pgErr.Code == "42704":
		return "hidden"
	case err != nil:
		t.Fatalf("as %s: %s: unexpected %s", c.Config().User, sql, pgtest.Describe(err))
	case strings.Contains(sql, "shadow_export") && !strings.Contains(strings.Join(got, " "), "orders"):
		return "skip"
	}
	return "ok"
}

func TestWhatEachRoleMayDoWithATable(t *testing.T) {
	s := newScene(t)
	member := pgtest.NewRole(t, s.Src, "member", "IN ROLE "+pgtest.Ident(s.alice))
	s.letUseTarget(t, s.alice)
	s.letUseTarget(t, member)
	run(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders')")
	run(t, s.asAlice, "INSERT INTO orders VALUES (1, 'a'), (2, 'b')")
	conns := map[string]*pgx.Conn{
		"superuser": s.Src.ConnAs(t, s.Src.Server.User, s.Src.Server.Password),
		"owner":     s.asAlice,
		"member":    s.Src.ConnAs(t, member, pgtest.RolePassword),
		"writer":    s.asWally,
		"outsider":  s.asOlga,
	}
	roles := []string{"superuser", "owner", "member", "writer", "outsider"}
	cases := []struct {
		sql  string
		want []string // per role, in the order of roles
	}{
		{"SELECT shadow_track('orders')", []string{"ok", "ok", "ok", "denied", "denied"}},
		{"SELECT shadow_subscribe('replica', 'orders')", []string{"ok", "ok", "ok", "denied", "denied"}},
		{"SELECT shadow_unsubscribe('replica', 'orders')", []string{"ok", "ok", "ok", "denied", "denied"}},
		// shipping acts with the caller's rights: only the owner and its members
		{"SELECT tbl FROM shadow_export('replica')", []string{"skip", "ok", "ok", "skip", "skip"}},
		// an outsider cannot even see that the subscription exists
		{"SELECT shadow_skip('replica', 'orders')", []string{"denied", "ok", "ok", "denied", "hidden"}},
		{"SELECT shadow_resync('replica', 'orders')", []string{"denied", "ok", "ok", "denied", "hidden"}},
		{"SELECT * FROM shadow_compare('replica', 'orders')", []string{"denied", "ok", "ok", "denied", "hidden"}},
		{"SELECT * FROM shadow_compare('replica', 'orders', repair => true)", []string{"denied", "ok", "ok", "denied", "hidden"}},
		{"SELECT * FROM pgshadow.public__orders", []string{"ok", "ok", "ok", "denied", "denied"}},
	}
	for _, c := range cases {
		for i, role := range roles {
			if got := outcome(t, conns[role], c.sql); got != c.want[i] {
				t.Errorf("%s as %s: %s, want %s", c.sql, role, got, c.want[i])
			}
		}
	}
	// the procedures never fail on someone else's subscription
	for _, role := range roles {
		run(t, conns[role], "CALL shadow_run()")
	}
	// what each sees of orders in the views
	seen := map[string]int64{"superuser": 1, "owner": 1, "member": 1, "writer": 1, "outsider": 0}
	for _, view := range []string{"shadow_status"} {
		for _, role := range roles {
			if n := count(t, conns[role], "SELECT count(*) FROM "+view+" WHERE \"table\" = 'orders'::regclass"); n != seen[role] {
				t.Errorf("%s sees %d rows of orders in %s, want %d", role, n, view, seen[role])
			}
		}
	}
}

// Quotes, semicolons, parentheses, comments and unicode in every text
// argument are either refused with a clear error that changes nothing, or
// taken as the exact name they spell.
func TestHostileTextArgumentsAreRefusedOrQuoted(t *testing.T) {
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	hostile := []string{
		"x'; DROP TABLE payroll; --", `x"; DROP TABLE payroll; --`, "x) OR (true", "x /* c */", "x -- c",
		"ünï'cödé", "a.b.c", "", " ", "x\ny", `"unterminated`,
	}
	before := s.Dst.TableRows(t, "payroll")
	for _, h := range hostile {
		if h != "a.b.c" { // a valid target name (letters, digits, "_", ".", "-")
			err := runErr(t, s.asAlice, "SELECT shadow_add_target($1, 'tgt')", h)
			assertError(t, err, fmt.Sprintf("target name %q", h), "22023", "invalid target name")
		}

		err := runErr(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders', columns => ARRAY['id', $1])", h)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "42703" && pgErr.Code != "42701") {
			t.Errorf("column %q: want a clear undefined-column error, got %v", h, err)
		}

		// a dest is a name: refused, or taken literally (and then it simply
		// does not exist on the target)
		err = runErr(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders', dest => $1, initial_copy => false)", h)
		if err == nil {
			var schema, table string
			if err := s.asAlice.QueryRow(ctx(t), "SELECT dest_schema, dest_table FROM pgshadow.subscription").Scan(&schema, &table); err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(h, ".") && !strings.Contains(h, `"`) && schema == "public" {
				t.Errorf("dest %q: dots must split schema and table, got %s.%s", h, schema, table)
			}
			run(t, s.asAlice, "INSERT INTO orders VALUES (1, 'a') ON CONFLICT DO NOTHING")
			if _, err := s.asAlice.Exec(ctx(t), "SELECT * FROM shadow_export('replica')"); err == nil {
				t.Errorf("dest %q: export succeeded into a table that does not exist", h)
			}
			run(t, s.asAlice, "SELECT shadow_unsubscribe('replica', 'orders')")
		} else if !errors.As(err, &pgErr) || pgErr.Code != "42602" {
			t.Errorf("dest %q: want invalid_name (42602) or acceptance, got %v", h, pgtest.Describe(err))
		}
	}
	if diff := pgtest.DiffRows(before, s.Dst.TableRows(t, "payroll")); diff != "" {
		t.Fatalf("payroll changed:\n%s", diff)
	}
	if n := s.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.target"); n != 1 {
		t.Fatalf("%d targets exist, want only the scene's", n)
	}
}
