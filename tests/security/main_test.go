// Package security attacks pgshadow as each kind of role would: the extension
// owner (a superuser), a table owner, a plain writer of that table, an
// outsider with only CONNECT, and the roles user mappings log in as on the
// target. Each test is an attack that succeeded on 0.1.1, or a check that
// nobody sees through pgshadow what they may not SELECT.
package security

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, "source", "target")
}

// scene: a source database with pgshadow and a target database on another
// server. The source's superuser (the extension owner) has foreign server
// "tgt", a user mapping to the target's superuser, and target "replica".
// On the source: alice owns table orders; wally may write it; olga has
// nothing but CONNECT. On the target: tw may write orders (not payroll).
type scene struct {
	Src, Dst        *pgtest.DB
	alice, wally    string
	olga, tw        string
	asAlice, asOlga *pgx.Conn
	asWally         *pgx.Conn
}

func newScene(t *testing.T) *scene {
	t.Helper()
	s := &scene{
		Src: pgtest.NewDBWithExtension(t, pgtest.Server("source")),
		Dst: pgtest.NewDB(t, pgtest.Server("target")),
	}
	s.tw = pgtest.NewRole(t, s.Dst, "tw", "")
	s.Dst.Exec(t, fmt.Sprintf(`
		CREATE TABLE orders (id int PRIMARY KEY, v text);
		CREATE TABLE payroll (id int PRIMARY KEY, v text);
		INSERT INTO payroll VALUES (1, 'salary 1000'), (2, 'salary 2000');
		GRANT SELECT, INSERT, DELETE, TRUNCATE ON orders TO %s`, pgtest.Ident(s.tw)))
	s.alice, s.asAlice = newLoginRole(t, s.Src, "alice")
	s.wally, s.asWally = newLoginRole(t, s.Src, "wally")
	s.olga, s.asOlga = newLoginRole(t, s.Src, "olga")
	s.Src.AddPushTarget(t, "replica", "tgt", s.Dst)
	s.Src.Exec(t, fmt.Sprintf(`
		CREATE TABLE orders (id int PRIMARY KEY, v text);
		ALTER TABLE orders OWNER TO %s;
		GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO %s`, pgtest.Ident(s.alice), pgtest.Ident(s.wally)))
	return s
}

// newLoginRole creates a role that may log in (it has nothing else) and
// returns its name and a session of it on db.
func newLoginRole(t *testing.T, db *pgtest.DB, prefix string) (string, *pgx.Conn) {
	t.Helper()
	role := pgtest.NewRole(t, db, prefix, "")
	return role, db.ConnAs(t, role, pgtest.RolePassword)
}

// letUseTarget gives role USAGE on foreign server tgt and a user mapping that
// logs in on the target as tw.
func (s *scene) letUseTarget(t *testing.T, role string) {
	t.Helper()
	s.Src.Exec(t, fmt.Sprintf(`GRANT USAGE ON FOREIGN SERVER tgt TO %[1]s;
		CREATE USER MAPPING FOR %[1]s SERVER tgt OPTIONS (user %[2]s, password %[3]s)`,
		pgtest.Ident(role), pgtest.Lit(s.tw), pgtest.Lit(pgtest.RolePassword)))
	t.Cleanup(func() { _ = s.Src.ExecErr("DROP USER MAPPING IF EXISTS FOR " + pgtest.Ident(role) + " SERVER tgt") })
}

// Short names for the pgtest helpers the many statements here use.
var (
	ctx    = pgtest.Ctx
	run    = pgtest.Run
	runErr = pgtest.RunErr
)

// assertError fails unless err is a PostgreSQL error with SQLSTATE code whose
// message contains every one of parts.
func assertError(t *testing.T, err error, what, code string, parts ...string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("%s: want error %s, got %v", what, code, err)
	}
	if pgErr.Code != code {
		t.Fatalf("%s: want SQLSTATE %s, got %s", what, code, pgtest.Describe(err))
	}
	for _, p := range parts {
		if !strings.Contains(pgErr.Message, p) {
			t.Fatalf("%s: error %q does not mention %q", what, pgErr.Message, p)
		}
	}
}

// count runs a count query on c.
func count(t *testing.T, c *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(ctx(t), sql, args...).Scan(&n); err != nil {
		t.Fatalf("as %s: %s\nSQL: %s", c.Config().User, pgtest.Describe(err), sql)
	}
	return n
}
