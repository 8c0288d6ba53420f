// Push mode without superuser: a table's owner tracks, subscribes and exports
// with its own foreign-server rights; other roles may write to the table but
// can neither export it nor read its pending keys.
package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// role creates a login role on s, dropped at cleanup. Call it before creating
// the databases its objects live in, so they are dropped first.
func role(t *testing.T, s *pgserver.Server, name, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.CreateRole(ctx, name, password); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), s.ConnString("postgres"))
		if err != nil {
			t.Errorf("drop role %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP ROLE "+ident(name)); err != nil {
			t.Errorf("drop role %s on %s: %v", name, s.Name, err)
		}
	})
}

// wantPermissionError fails unless err is SQLSTATE 42501 mentioning name.
func wantPermissionError(t *testing.T, what string, err error, name string) {
	t.Helper()
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		t.Errorf("%s succeeded, want a permission error naming %s", what, name)
	case !errors.As(err, &pgErr) || pgErr.Code != "42501":
		t.Errorf("%s failed with %s, want SQLSTATE 42501 naming %s", what, pgtest.Describe(err), name)
	case !strings.Contains(pgErr.Message+" "+pgErr.Detail, name):
		t.Errorf("%s: permission error %q does not name %s", what, pgErr.Message, name)
	}
}

// A role that is not superuser, owns its table and has USAGE on the foreign
// server plus a user mapping with a password can track, subscribe and export;
// another role can write the table (its changes are captured) but cannot
// export it or read its shadow table.
func TestNonSuperuserOwnerExportsAndOthersCannot(t *testing.T) {
	t.Parallel()
	srcServer, dstServer := pgtest.Server("source"), pgtest.Server("target")
	const ownerPw, otherPw, remotePw = "owner pw 'x'", "other-pw", "remote\\pw"
	role(t, srcServer, "repl_owner", ownerPw)
	role(t, srcServer, "repl_other", otherPw)
	role(t, dstServer, "repl_remote", remotePw)
	src := pgtest.NewDBWithExtension(t, srcServer)
	dst := pgtest.NewDB(t, dstServer)

	dst.Exec(t, "CREATE TABLE items (id int PRIMARY KEY, v text); ALTER TABLE items OWNER TO repl_remote")
	src.Exec(t, "GRANT CREATE ON SCHEMA public TO repl_owner")
	src.Exec(t, createServerSQL(dst))
	src.Exec(t, "GRANT USAGE ON FOREIGN SERVER tgt TO repl_owner, repl_other")
	if n := src.QueryInt(t, "SELECT count(*) FROM pg_roles WHERE rolname IN ('repl_owner', 'repl_other') AND (rolsuper OR rolbypassrls)"); n != 0 {
		t.Fatalf("scenario broken: test roles are superusers")
	}

	owner := src.ConnAs(t, "repl_owner", ownerPw)
	mustExec(t, owner, fmt.Sprintf("CREATE USER MAPPING FOR CURRENT_USER SERVER tgt OPTIONS (user 'repl_remote', password %s)", lit(remotePw)))
	pgtest.RunEach(t, owner,
		"CREATE TABLE items (id int PRIMARY KEY, v text)",
		"INSERT INTO items SELECT g, 'copied' FROM generate_series(1, 5) g",
		"SELECT shadow_add_target('t1', 'tgt')",
		"SELECT shadow_track('items')",
		"SELECT shadow_subscribe('t1', 'items')",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON items TO repl_other")

	other := src.ConnAs(t, "repl_other", otherPw)
	mustExec(t, other, fmt.Sprintf("CREATE USER MAPPING FOR CURRENT_USER SERVER tgt OPTIONS (user 'repl_remote', password %s)", lit(remotePw)))
	mustExec(t, owner, "UPDATE items SET v = 'by owner' WHERE id = 1")
	mustExec(t, other, "INSERT INTO items VALUES (6, 'by other')")
	mustExec(t, other, "DELETE FROM items WHERE id = 2")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// a role that does not own the table ships nothing of it: its export
	// skips the subscription, which stays for the owner to ship
	watermark := src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription")
	var shipped int64
	if err := other.QueryRow(ctx, "SELECT count(*) FROM shadow_export('t1')").Scan(&shipped); err != nil || shipped != 0 {
		t.Fatalf("shadow_export by a role that does not own the table: %d tables, error %v; want none shipped", shipped, err)
	}
	if w := src.QueryString(t, "SELECT snapshot::text FROM pgshadow.subscription"); w != watermark {
		t.Fatalf("a non-owner's export moved the watermark from %s to %s", watermark, w)
	}
	_, err := other.Exec(ctx, "SELECT * FROM pgshadow.public__items")
	wantPermissionError(t, "reading the shadow table as a role that does not own the table", err, "public__items")
	_, err = other.Exec(ctx, "SELECT shadow_unsubscribe('t1', 'items')")
	wantPermissionError(t, "shadow_unsubscribe by a role that does not own the table", err, "items")
	_, err = other.Exec(ctx, "UPDATE pgshadow.subscription SET snapshot = pg_current_snapshot()")
	wantPermissionError(t, "moving a watermark by hand as a role that does not own the table", err, "subscription")

	mustExec(t, owner, "SELECT * FROM shadow_export('t1')")
	wantRows(t, dst, "items", "(1,\"by owner\")", "(3,copied)", "(4,copied)", "(5,copied)", "(6,\"by other\")")
	pgtest.AssertSameRows(t, src, "items", dst, "items")
}
