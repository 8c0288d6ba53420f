package security

// Rule 3: nobody reads through pgshadow what they cannot SELECT. Row filters,
// error texts (which quote values) and conflict rows are shown only to roles
// that may SELECT the table they are about.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// quotingRows counts what a role sees of what pgshadow keeps that quotes a
// table's values: error texts, skips and conflicting rows (views and catalog
// tables).
var quotingRows = []string{
	"SELECT count(*) FROM shadow_errors",
	"SELECT count(*) FROM shadow_conflicts",
	"SELECT count(*) FROM pgshadow.error",
	"SELECT count(*) FROM pgshadow.conflict",
	"SELECT count(*) FROM pgshadow.skipped",
}

// visibleRows counts what a role sees of everything pgshadow keeps about
// tables: its views and its catalog tables. The first four are what a role
// sees once it may SELECT the table.
var visibleRows = append(append([]string{
	"SELECT count(*) FROM shadow_status",
	"SELECT count(*) FROM pgshadow.subscription",
}, quotingRows...),
	// %[1]s: the subscription's id, which an outsider can guess
	"SELECT count(*) FROM pgshadow._pending(%[1]s) WHERE pending_keys IS NOT NULL",
)

// logRowsQuoting records on db, for the only subscription (of table orders
// to target replica), a failure whose text quotes value, a skip quoting it,
// and a conflict on key 1 whose rows hold remote and local as column v.
func logRowsQuoting(t *testing.T, db *pgtest.DB, value, remote, local string) {
	t.Helper()
	quoted := `"` + value + `"`
	db.Exec(t, fmt.Sprintf(`
		INSERT INTO pgshadow.error (sub_id, sqlstate, message, first_seen, last_seen, attempts, next_retry)
		SELECT id, '22P02', %s, now(), now(), 1, now() FROM pgshadow.subscription;
		INSERT INTO pgshadow.skipped (target, tbl, from_snapshot, to_snapshot, keys, error, reason, skipped_by)
		VALUES ('replica', 'orders', pg_current_snapshot(), pg_current_snapshot(), 1, %s, 'test', 'x');
		INSERT INTO pgshadow.conflict (tbl, key, origin, node, policy, resolution, remote_row, local_row)
		VALUES ('orders', '[1]', 'peer', 'here', 'latest', 'local_kept', %s, %s)`,
		pgtest.Lit("invalid input syntax for type numeric: "+quoted), pgtest.Lit(quoted),
		pgtest.Lit(`{"v": "`+remote+`"}`), pgtest.Lit(`{"v": "`+local+`"}`)))
}

// On 0.1.1 an outsider read row filters, error texts quoting values, and both
// versions of conflicting rows, all granted to PUBLIC.
func TestOutsiderSeesNothingOfTablesItCannotSelect(t *testing.T) {
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	reader := s.Src.ConnAs(t, s.wally, "pgshadow_test_pw") // wally may SELECT orders
	run(t, s.asAlice, `SELECT shadow_subscribe('replica', 'orders', row_filter => 'v <> ''secret''')`)
	run(t, s.asAlice, "INSERT INTO orders VALUES (1, 'card 6011-0000-0000-0012')")
	// a failure whose text quotes a value, a skip, and a conflict logged here
	s.Src.Exec(t, `UPDATE pgshadow.subscription SET last_error = 'invalid input syntax for type numeric: "6011-0000-0000-0012"', last_error_at = now()`)
	logRowsQuoting(t, s.Src, "6011-0000-0000-0012", "card 6011", "card 6012")

	id := s.Src.QueryString(t, "SELECT id::text FROM pgshadow.subscription")
	for _, q := range visibleRows {
		q = strings.ReplaceAll(q, "%[1]s", id)
		if n := count(t, s.asOlga, q); n != 0 {
			t.Errorf("outsider %s sees %d rows: %s", s.olga, n, q)
		}
		if n := count(t, reader, q); n != 1 {
			t.Errorf("%s, who may SELECT orders, sees %d rows, want 1: %s", s.wally, n, q)
		}
		if n := count(t, s.asAlice, q); n != 1 {
			t.Errorf("owner %s sees %d rows, want 1: %s", s.alice, n, q)
		}
	}
	// nor through the functions that run with raised rights
	if n := count(t, s.asOlga, "SELECT count(*) FROM pgshadow._has_pending("+id+") h WHERE h"); n != 0 {
		t.Errorf("outsider learns through _has_pending that orders has pending keys")
	}
	err := runErr(t, s.asOlga, "SELECT * FROM pgshadow.public__orders")
	assertError(t, err, "outsider reads the shadow table", "42501", "public__orders")

	// losing SELECT hides it again
	s.Src.Exec(t, "REVOKE SELECT ON orders FROM "+pgtest.Ident(s.wally))
	for _, q := range visibleRows[:4] {
		if n := count(t, reader, q); n != 0 {
			t.Errorf("%s, no longer allowed to SELECT orders, still sees %d rows: %s", s.wally, n, q)
		}
	}
}
