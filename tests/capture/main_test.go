// Capture tests: what the statement-level triggers record in shadow tables,
// how tracking starts and ends, which tables are refused, and who may do what.
// Set install.FromVersionEnv to run them against an upgraded install.
package capture_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/install"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, "source")
}

// newDB is a fresh database with pgshadow installed.
func newDB(t *testing.T) *pgtest.DB {
	t.Helper()
	return install.NewDBWithExtension(t, pgtest.Server("source"))
}

// session is a dedicated superuser connection, for transactions, session
// settings and temporary tables.
func session(t *testing.T, db *pgtest.DB) *pgx.Conn {
	t.Helper()
	return db.ConnAs(t, db.Server.User, db.Server.Password)
}

// newRole makes a login role (see pgtest.NewRole), dropped at cleanup.
var newRole = pgtest.NewRole

// connAs connects to db as a role made by newRole.
func connAs(t *testing.T, db *pgtest.DB, role string) *pgx.Conn {
	t.Helper()
	return db.ConnAs(t, role, pgtest.RolePassword)
}

// Short names for the pgtest helpers the many statements here use.
var (
	ctx    = pgtest.Ctx
	run    = pgtest.Run
	runErr = pgtest.RunErr
)

// text returns the one value of a one-row query on c, as text.
func text(t *testing.T, c *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var v *string
	if err := c.QueryRow(ctx(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("as %s: %s\nSQL: %s", c.Config().User, pgtest.Describe(err), sql)
	}
	if v == nil {
		return "<NULL>"
	}
	return *v
}

// assertError fails unless err is a server error with SQLSTATE code (any
// code if empty) whose message contains every string in mentions.
func assertError(t *testing.T, err error, what, code string, mentions ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want an error (SQLSTATE %s) mentioning %q", what, code, mentions)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("%s failed with a non-server error: %v", what, err)
	}
	if code != "" && pe.Code != code {
		t.Errorf("%s: SQLSTATE %s, want %s; error: %s", what, pe.Code, code, pgtest.Describe(err))
	}
	for _, m := range mentions {
		if !strings.Contains(pe.Message, m) {
			t.Errorf("%s: message does not name %q: %s", what, m, pgtest.Describe(err))
		}
	}
}

// commitXid runs stmts in one transaction on c and returns that
// transaction's pg_current_xact_id(), read inside it just before COMMIT.
func commitXid(t *testing.T, c *pgx.Conn, stmts ...string) string {
	t.Helper()
	pgtest.Begin(t, c, stmts...)
	xid := text(t, c, "SELECT pg_current_xact_id()::text")
	run(t, c, "COMMIT")
	return xid
}

// shadowOf is the shadow table of tbl according to the catalog, or "" if
// tbl is not tracked.
func shadowOf(t *testing.T, db *pgtest.DB, tbl string) string {
	t.Helper()
	rows := db.QueryStrings(t, "SELECT format('pgshadow.%I', shadow) FROM pgshadow.tracked WHERE tbl = $1::regclass", tbl)
	if len(rows) == 0 {
		return ""
	}
	return rows[0]
}

// assertShadowRows compares the rows of tbl's shadow table, as (key columns,
// shadow_op), with want (sorted), and checks that all carry xid if set.
func assertShadowRows(t *testing.T, db *pgtest.DB, tbl string, keys []string, want []string, xid string) {
	t.Helper()
	shadow := shadowOf(t, db, tbl)
	if shadow == "" {
		t.Fatalf("%s is not in pgshadow.tracked", tbl)
	}
	got := db.TableRows(t, shadow, append(append([]string{}, keys...), "shadow_op")...)
	if diff := pgtest.DiffRows(want, got); diff != "" {
		t.Errorf("shadow rows of %s: want (-), got (+):\n%s", tbl, diff)
	}
	if xid == "" {
		return
	}
	xids := db.QueryStrings(t, "SELECT DISTINCT shadow_xid::text FROM "+shadow+" ORDER BY 1")
	if len(got) > 0 && (len(xids) != 1 || xids[0] != xid) {
		t.Errorf("shadow rows of %s carry shadow_xid %v, want all = %s (the writing transaction's pg_current_xact_id())",
			tbl, xids, xid)
	}
}

// captureTriggers lists the triggers of tbl that run a pgshadow function or
// are named like pgshadow's, as "name: definition".
func captureTriggers(t *testing.T, db *pgtest.DB, tbl string) []string {
	t.Helper()
	return db.QueryStrings(t, `
		SELECT format('%s: %s', tgname, pg_get_triggerdef(oid)) FROM pg_trigger
		 WHERE tgrelid = $1::regclass AND NOT tgisinternal
		   AND (tgname LIKE 'pgshadow%' OR tgfoid IN (SELECT oid FROM pg_proc WHERE pronamespace = 'pgshadow'::regnamespace))
		 ORDER BY tgname`, tbl)
}
