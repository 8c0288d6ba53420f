// The privileges README.md lists ("Privileges", under Security) are the
// tested facts: roles that have exactly those grants, and nothing more, run
// every mode end to end, and taking any one grant away makes the operation
// fail with an error that names the missing privilege's object (and the
// target), losing nothing: granted again, the next run catches up.
package security

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// privScene: on the source, alice owns orders (batch), events (async),
// sorders (sync) and forders (file mode); sam writes sorders. alice's and
// sam's user mappings log in on the target as tw; ti imports files there.
// Every role has exactly the grants README.md lists.
type privScene struct {
	Src, Dst           *pgtest.DB
	alice, sam, tw, ti string
	asAlice, asSam     *pgx.Conn
	asTI               *pgx.Conn
	outbox             string
}

func newPrivScene(t *testing.T) *privScene {
	t.Helper()
	s := &privScene{
		Src:    pgtest.NewDBWithExtension(t, pgtest.Server("source")),
		Dst:    pgtest.NewDB(t, pgtest.Server("target")),
		outbox: t.TempDir(),
	}
	s.tw = pgtest.NewRole(t, s.Dst, "tw", "")
	s.ti, s.asTI = newLoginRole(t, s.Dst, "ti")
	// the target: schema app, owned by its administrator, not by tw or ti
	s.Dst.Exec(t, fmt.Sprintf(`
		REVOKE CREATE ON SCHEMA public FROM PUBLIC;
		REVOKE CREATE ON DATABASE %[1]s FROM PUBLIC;
		CREATE SCHEMA app;
		CREATE TABLE app.orders (id int PRIMARY KEY, v text);
		CREATE TABLE app.events (id int PRIMARY KEY, v text);
		CREATE TABLE app.sorders (id int PRIMARY KEY, v text);
		CREATE TABLE app.forders (id int PRIMARY KEY, v text);
		GRANT USAGE ON SCHEMA app TO %[2]s, %[3]s;
		GRANT SELECT, INSERT, DELETE ON app.orders, app.events, app.sorders TO %[2]s;
		GRANT TRUNCATE ON app.sorders TO %[2]s;                 -- sync replicates TRUNCATE as TRUNCATE
		GRANT SELECT, INSERT, DELETE ON app.forders TO %[3]s;   -- a full copy deletes, never truncates
		GRANT CREATE ON DATABASE %[1]s TO %[3]s                 -- the first import creates its ledger`,
		pgtest.Ident(s.Dst.Name), pgtest.Ident(s.tw), pgtest.Ident(s.ti)))

	s.alice, s.asAlice = newLoginRole(t, s.Src, "alice")
	s.sam, s.asSam = newLoginRole(t, s.Src, "sam")
	s.Src.Exec(t, fmt.Sprintf(`
		CREATE SERVER tgt FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %[1]s, port %[2]s, dbname %[3]s);
		GRANT USAGE ON FOREIGN SERVER tgt TO %[4]s, %[5]s;
		CREATE USER MAPPING FOR %[4]s SERVER tgt OPTIONS (user %[6]s, password %[7]s);
		CREATE USER MAPPING FOR %[5]s SERVER tgt OPTIONS (user %[6]s, password %[7]s);
		CREATE TABLE orders (id int PRIMARY KEY, v text);
		CREATE TABLE events (id int PRIMARY KEY, v text);
		CREATE TABLE sorders (id int PRIMARY KEY, v text);
		CREATE TABLE forders (id int PRIMARY KEY, v text);
		INSERT INTO orders SELECT g, 'o' || g FROM generate_series(1, 50) g;
		INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 50) g;
		INSERT INTO forders SELECT g, 'f' || g FROM generate_series(1, 50) g;
		ALTER TABLE orders OWNER TO %[4]s;
		ALTER TABLE events OWNER TO %[4]s;
		ALTER TABLE sorders OWNER TO %[4]s;
		ALTER TABLE forders OWNER TO %[4]s;
		GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON sorders TO %[5]s`,
		pgtest.Lit(s.Dst.Server.Host), pgtest.Lit(fmt.Sprint(s.Dst.Server.Port)), pgtest.Lit(s.Dst.Name),
		pgtest.Ident(s.alice), pgtest.Ident(s.sam), pgtest.Lit(s.tw), pgtest.Lit(pgtest.RolePassword)))
	t.Cleanup(func() {
		for _, r := range []string{s.alice, s.sam} {
			_ = s.Src.ExecErr("DROP USER MAPPING IF EXISTS FOR " + pgtest.Ident(r) + " SERVER tgt")
		}
	})
	if n := s.Src.QueryInt(t, "SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2) AND (rolsuper OR rolbypassrls)", s.alice, s.sam) +
		s.Dst.QueryInt(t, "SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2) AND (rolsuper OR rolbypassrls)", s.tw, s.ti); n != 0 {
		t.Fatalf("scenario broken: test roles are superusers")
	}
	return s
}

// same fails unless source table tbl and target table app.<tbl> hold the same rows.
func (s *privScene) same(t *testing.T, tbl string) {
	t.Helper()
	pgtest.AssertSameRows(t, s.Src, tbl, s.Dst, "app."+tbl)
}

// export runs shadow_export('replica') as alice and returns each table's
// error ("" for a table that shipped); when the call fails as a whole (every
// table failed), every table named in its message gets that message.
func (s *privScene) export(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	rows, err := s.asAlice.Query(ctx(t), "SELECT tbl::text, coalesce(error, '') FROM shadow_export('replica')")
	if err == nil {
		for rows.Next() {
			var tbl, e string
			if err := rows.Scan(&tbl, &e); err != nil {
				t.Fatal(err)
			}
			out[tbl] = e
		}
		err = rows.Err()
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			t.Fatalf("shadow_export as alice: %s", pgtest.Describe(err))
		}
		for _, tbl := range []string{"orders", "events"} {
			if strings.Contains(pgErr.Message, "public."+tbl+" ") {
				out[tbl] = pgErr.Message
			}
		}
	}
	return out
}

// exportOK exports and fails the test on any table's error.
func (s *privScene) exportOK(t *testing.T) {
	t.Helper()
	for tbl, e := range s.export(t) {
		if e != "" {
			t.Fatalf("shadow_export: %s: %s", tbl, e)
		}
	}
}

// fileExport writes alice's pending file batch and returns its directory.
func (s *privScene) fileExport(t *testing.T) string {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := filemode.Export(c, s.asAlice, filemode.ExportOptions{Target: "offsite", Dir: s.outbox})
	if err != nil {
		t.Fatalf("pgshadow export as alice: %s", pgtest.Describe(err))
	}
	if res.BatchDir == "" {
		t.Fatalf("pgshadow export as alice wrote no batch")
	}
	return res.BatchDir
}

// fileImport applies dir on the target as ti.
func (s *privScene) fileImport(dir string) error {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := filemode.Import(c, s.asTI, filemode.ImportOptions{Dir: dir})
	return err
}

// wantDenied fails unless err (or, for a string, the error text) is a
// permission error whose text holds every one of parts.
func wantDenied(t *testing.T, what string, err any, parts ...string) {
	t.Helper()
	var msg string
	switch e := err.(type) {
	case nil:
		t.Fatalf("%s succeeded, want a permission error naming %q", what, parts)
	case string:
		if e == "" {
			t.Fatalf("%s succeeded, want a permission error naming %q", what, parts)
		}
		msg = e
	case error:
		var pgErr *pgconn.PgError
		if errors.As(e, &pgErr) && pgErr.Code != "42501" {
			t.Fatalf("%s: want SQLSTATE 42501, got %s", what, pgtest.Describe(e))
		}
		msg = e.Error()
		if pgErr != nil {
			msg = pgErr.Message + " " + pgErr.Detail
		}
	}
	for _, p := range append([]string{"permission denied"}, parts...) {
		if !strings.Contains(msg, p) {
			t.Fatalf("%s: error %q does not name %q", what, msg, p)
		}
	}
}

// Push (batch and async), sync, compare with repair and file mode, each run
// by roles holding exactly the README's grants.
func TestPrivilegesAsDocumentedSuffice(t *testing.T) {
	t.Parallel()
	s := newPrivScene(t)

	// the table owner tracks and subscribes (initial copies over tw)
	run(t, s.asAlice, `SELECT shadow_add_target('replica', 'tgt')`)
	for _, tbl := range []string{"orders", "events", "sorders", "forders"} {
		run(t, s.asAlice, "SELECT shadow_track($1)", tbl)
	}
	run(t, s.asAlice, `SELECT shadow_subscribe('replica', 'orders', dest => 'app.orders')`)
	run(t, s.asAlice, `SELECT shadow_subscribe('replica', 'events', dest => 'app.events', mode => 'async')`)
	run(t, s.asAlice, `SELECT shadow_subscribe('replica', 'sorders', dest => 'app.sorders', mode => 'sync')`)
	run(t, s.asAlice, `SELECT shadow_add_target('offsite', NULL)`)
	run(t, s.asAlice, `SELECT shadow_subscribe('offsite', 'forders', dest => 'app.forders')`)
	s.same(t, "orders")
	s.same(t, "events")

	// batch: inserts, updates, deletes, then a TRUNCATE (a full copy by
	// DELETE: tw has no TRUNCATE on app.orders)
	run(t, s.asAlice, `INSERT INTO orders SELECT g, 'o' || g FROM generate_series(51, 80) g;
		UPDATE orders SET v = v || '!' WHERE id % 3 = 0; DELETE FROM orders WHERE id % 7 = 0`)
	s.exportOK(t)
	s.same(t, "orders")
	run(t, s.asAlice, `TRUNCATE orders; INSERT INTO orders VALUES (1, 'after truncate')`)
	s.exportOK(t)
	s.same(t, "orders")

	// async, shipped by shadow_run as the owner
	run(t, s.asAlice, `INSERT INTO events VALUES (100, 'e100'); UPDATE events SET v = 'x' WHERE id < 5; DELETE FROM events WHERE id > 45 AND id < 100`)
	run(t, s.asAlice, `CALL shadow_run('replica')`)
	s.same(t, "events")

	// sync: sam's writes, TRUNCATE included, applied with his own mapping
	run(t, s.asSam, `INSERT INTO sorders SELECT g, 's' || g FROM generate_series(1, 20) g`)
	run(t, s.asSam, `UPDATE sorders SET v = 'u' WHERE id < 5; DELETE FROM sorders WHERE id > 15`)
	s.same(t, "sorders")
	run(t, s.asSam, `TRUNCATE sorders; INSERT INTO sorders VALUES (7, 'seven')`)
	s.same(t, "sorders")

	// resync, then compare finds a difference made on the target and repairs it
	run(t, s.asAlice, `SELECT shadow_resync('replica', 'orders')`)
	s.same(t, "orders")
	s.Dst.Exec(t, `INSERT INTO app.orders VALUES (9999, 'stray'); UPDATE app.orders SET v = 'edited' WHERE id = 1`)
	if n := count(t, s.asAlice, `SELECT count(*) FROM shadow_compare('replica', 'orders', repair => true)`); n == 0 {
		t.Fatalf("shadow_compare found no difference")
	}
	s.same(t, "orders")
	if n := count(t, s.asAlice, `SELECT count(*) FROM shadow_compare('replica', 'orders')`); n != 0 {
		t.Fatalf("shadow_compare after repair: %d ranges differ", n)
	}

	// file mode: the first import (a full copy, by TRUNCATE) creates the
	// ledger; CREATE on the database is not needed after that
	if err := s.fileImport(s.fileExport(t)); err != nil {
		t.Fatalf("first import as ti: %s", pgtest.Describe(err))
	}
	s.same(t, "forders")
	s.Dst.Exec(t, fmt.Sprintf("REVOKE CREATE ON DATABASE %s FROM %s", pgtest.Ident(s.Dst.Name), pgtest.Ident(s.ti)))
	run(t, s.asAlice, `INSERT INTO forders VALUES (100, 'f100'); UPDATE forders SET v = 'u' WHERE id < 5; DELETE FROM forders WHERE id > 45 AND id < 100`)
	if err := s.fileImport(s.fileExport(t)); err != nil {
		t.Fatalf("import as ti: %s", pgtest.Describe(err))
	}
	s.same(t, "forders")
}

// Each grant of the README's list, revoked, makes its operation fail naming
// the object (and, for pgshadow's remote applies, the target); granted back,
// the next run ships what is pending.
func TestPrivilegesEachGrantIsNeeded(t *testing.T) {
	t.Parallel()
	s := newPrivScene(t)
	run(t, s.asAlice, `SELECT shadow_add_target('replica', 'tgt')`)
	for _, tbl := range []string{"orders", "sorders", "forders"} {
		run(t, s.asAlice, "SELECT shadow_track($1)", tbl)
	}
	run(t, s.asAlice, `SELECT shadow_subscribe('replica', 'orders', dest => 'app.orders')`)
	run(t, s.asAlice, `SELECT shadow_subscribe('replica', 'sorders', dest => 'app.sorders', mode => 'sync')`)
	run(t, s.asAlice, `SELECT shadow_add_target('offsite', NULL)`)
	run(t, s.asAlice, `SELECT shadow_subscribe('offsite', 'forders', dest => 'app.forders')`)

	tw, ti := pgtest.Ident(s.tw), pgtest.Ident(s.ti)
	step := 0
	change := func() {
		step++
		run(t, s.asAlice, fmt.Sprintf(`UPDATE orders SET v = 'step %[1]d' WHERE id = %[1]d; DELETE FROM orders WHERE id = 40 + %[1]d;
			INSERT INTO orders VALUES (100 + %[1]d, 'new')`, step))
	}

	// push: the target role's grants on the destination
	for _, c := range []struct{ revoke, grant, object string }{
		{"REVOKE USAGE ON SCHEMA app FROM " + tw, "GRANT USAGE ON SCHEMA app TO " + tw, "schema app"},
		{"REVOKE SELECT ON app.orders FROM " + tw, "GRANT SELECT ON app.orders TO " + tw, "table orders"},
		{"REVOKE INSERT ON app.orders FROM " + tw, "GRANT INSERT ON app.orders TO " + tw, "table orders"},
		{"REVOKE DELETE ON app.orders FROM " + tw, "GRANT DELETE ON app.orders TO " + tw, "table orders"},
	} {
		change()
		s.Dst.Exec(t, c.revoke)
		wantDenied(t, c.revoke+": shadow_export", s.export(t)["orders"], c.object, `target "replica"`)
		s.Dst.Exec(t, c.grant)
		s.exportOK(t)
		s.same(t, "orders")
	}

	// the initial copy and resync need DELETE and INSERT (no SELECT, no TRUNCATE)
	s.Dst.Exec(t, "REVOKE SELECT ON app.orders FROM "+tw)
	run(t, s.asAlice, `SELECT shadow_resync('replica', 'orders')`)
	s.same(t, "orders")
	s.Dst.Exec(t, "GRANT SELECT ON app.orders TO "+tw)
	for _, priv := range []string{"DELETE", "INSERT"} {
		s.Dst.Exec(t, fmt.Sprintf("REVOKE %s ON app.orders FROM %s", priv, tw))
		wantDenied(t, "resync without "+priv, runErr(t, s.asAlice, `SELECT shadow_resync('replica', 'orders')`),
			"table orders", `target "replica"`)
		s.Dst.Exec(t, fmt.Sprintf("GRANT %s ON app.orders TO %s", priv, tw))
	}

	// compare reads with SELECT; its repair writes with DELETE and INSERT
	s.Dst.Exec(t, `UPDATE app.orders SET v = 'edited' WHERE id = 1`)
	s.Dst.Exec(t, "REVOKE SELECT ON app.orders FROM "+tw)
	wantDenied(t, "compare without SELECT", runErr(t, s.asAlice, `SELECT * FROM shadow_compare('replica', 'orders')`),
		"table orders", `target "replica"`)
	s.Dst.Exec(t, "GRANT SELECT ON app.orders TO "+tw)
	s.Dst.Exec(t, "REVOKE DELETE ON app.orders FROM "+tw)
	wantDenied(t, "repair without DELETE", runErr(t, s.asAlice, `SELECT * FROM shadow_compare('replica', 'orders', repair => true)`),
		"table orders", `target "replica"`)
	s.Dst.Exec(t, "GRANT DELETE ON app.orders TO "+tw)
	run(t, s.asAlice, `SELECT * FROM shadow_compare('replica', 'orders', repair => true)`)
	s.same(t, "orders")

	// the source side: the owner's USAGE on the foreign server, the sync
	// writer's USAGE, and TRUNCATE on the target for a synced TRUNCATE
	change()
	s.Src.Exec(t, "REVOKE USAGE ON FOREIGN SERVER tgt FROM "+pgtest.Ident(s.alice))
	wantDenied(t, "export without USAGE on the server", runErr(t, s.asAlice, `SELECT * FROM shadow_export('replica')`),
		"foreign server tgt", `target "replica"`)
	s.Src.Exec(t, "GRANT USAGE ON FOREIGN SERVER tgt TO "+pgtest.Ident(s.alice))
	s.exportOK(t)
	s.same(t, "orders")

	s.Src.Exec(t, "REVOKE USAGE ON FOREIGN SERVER tgt FROM "+pgtest.Ident(s.sam))
	wantDenied(t, "sync write without USAGE on the server", runErr(t, s.asSam, `INSERT INTO sorders VALUES (1, 'one')`),
		"foreign server tgt", `target "replica"`)
	s.Src.Exec(t, "GRANT USAGE ON FOREIGN SERVER tgt TO "+pgtest.Ident(s.sam))
	run(t, s.asSam, `INSERT INTO sorders VALUES (1, 'one'), (2, 'two')`)
	for _, priv := range []string{"INSERT", "TRUNCATE"} {
		s.Dst.Exec(t, fmt.Sprintf("REVOKE %s ON app.sorders FROM %s", priv, tw))
		stmt := map[string]string{"INSERT": `INSERT INTO sorders VALUES (3, 'three')`, "TRUNCATE": `TRUNCATE sorders`}[priv]
		wantDenied(t, "sync "+stmt+" without "+priv, runErr(t, s.asSam, stmt), "table sorders", `target "replica"`)
		s.Dst.Exec(t, fmt.Sprintf("GRANT %s ON app.sorders TO %s", priv, tw))
	}
	s.same(t, "sorders")

	// file mode: CREATE on the database for the first import (the ledger),
	// then the grants on the destination
	dir := s.fileExport(t)
	s.Dst.Exec(t, fmt.Sprintf("REVOKE CREATE ON DATABASE %s FROM %s", pgtest.Ident(s.Dst.Name), ti))
	wantDenied(t, "first import without CREATE on the database", s.fileImport(dir), "database "+s.Dst.Name)
	s.Dst.Exec(t, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s", pgtest.Ident(s.Dst.Name), ti))
	s.Dst.Exec(t, "REVOKE DELETE ON app.forders FROM "+ti)
	wantDenied(t, "full-copy import without DELETE", s.fileImport(dir), "table forders")
	s.Dst.Exec(t, "GRANT DELETE ON app.forders TO "+ti)
	if err := s.fileImport(dir); err != nil {
		t.Fatalf("import as ti: %s", pgtest.Describe(err))
	}
	s.same(t, "forders")
	s.Dst.Exec(t, fmt.Sprintf("REVOKE CREATE ON DATABASE %s FROM %s", pgtest.Ident(s.Dst.Name), ti))
	fstep := 0
	for _, c := range []struct{ revoke, grant, object string }{
		{"REVOKE USAGE ON SCHEMA app FROM " + ti, "GRANT USAGE ON SCHEMA app TO " + ti, "schema app"},
		{"REVOKE SELECT ON app.forders FROM " + ti, "GRANT SELECT ON app.forders TO " + ti, "table forders"},
		{"REVOKE INSERT ON app.forders FROM " + ti, "GRANT INSERT ON app.forders TO " + ti, "table forders"},
		{"REVOKE DELETE ON app.forders FROM " + ti, "GRANT DELETE ON app.forders TO " + ti, "table forders"},
	} {
		fstep++
		run(t, s.asAlice, fmt.Sprintf(`UPDATE forders SET v = 'step %[1]d' WHERE id = %[1]d; DELETE FROM forders WHERE id = 40 + %[1]d`, fstep))
		dir := s.fileExport(t)
		s.Dst.Exec(t, c.revoke)
		wantDenied(t, c.revoke+": import", s.fileImport(dir), c.object)
		s.Dst.Exec(t, c.grant)
		if err := s.fileImport(dir); err != nil {
			t.Fatalf("import as ti after %s: %s", c.grant, pgtest.Describe(err))
		}
		s.same(t, "forders")
	}
}

// Bidirectional: the role a peer's user mapping logs in as must own the
// table there (pgshadow.apply honours pgshadow.origin, and keeps versions
// and conflicts, only for the table's owner); SELECT, INSERT and DELETE are
// not enough, and the refusal names the table and the target.
func TestPrivilegesPeerMappingOwnsTheTable(t *testing.T) {
	t.Parallel()
	a := pgtest.NewDBWithExtension(t, pgtest.Server("source"))
	b := pgtest.NewDBWithExtension(t, pgtest.Server("target"))
	alice, asAlice := newLoginRole(t, a, "alice")
	bob, asBob := newLoginRole(t, b, "bob")
	carol := pgtest.NewRole(t, b, "carol", "")
	// node names are the database names (pgshadow.node_name's default), and
	// each target is named after the peer it points at
	for _, l := range []struct {
		from, to  *pgtest.DB
		owner, as string
	}{{a, b, alice, bob}, {b, a, bob, alice}} {
		l.from.Exec(t, fmt.Sprintf(`
			CREATE TABLE items (id int PRIMARY KEY, v text);
			ALTER TABLE items OWNER TO %[1]s;
			CREATE SERVER peer FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %[2]s, port %[3]s, dbname %[4]s);
			GRANT USAGE ON FOREIGN SERVER peer TO %[1]s;
			CREATE USER MAPPING FOR %[1]s SERVER peer OPTIONS (user %[5]s, password %[6]s)`,
			pgtest.Ident(l.owner), pgtest.Lit(l.to.Server.Host), pgtest.Lit(fmt.Sprint(l.to.Server.Port)), pgtest.Lit(l.to.Name),
			pgtest.Lit(l.as), pgtest.Lit(pgtest.RolePassword)))
		owner := l.owner
		from := l.from
		t.Cleanup(func() { _ = from.ExecErr("DROP USER MAPPING IF EXISTS FOR " + pgtest.Ident(owner) + " SERVER peer") })
	}
	b.Exec(t, "GRANT SELECT, INSERT, DELETE ON items TO "+pgtest.Ident(carol))
	for _, n := range []struct {
		c    *pgx.Conn
		peer string
	}{{asAlice, b.Name}, {asBob, a.Name}} {
		run(t, n.c, "SELECT shadow_add_target($1, 'peer')", n.peer)
		run(t, n.c, "SELECT shadow_track('items')")
		run(t, n.c, "SELECT shadow_subscribe($1, 'items', initial_copy => false, on_conflict => 'latest')", n.peer)
	}
	exchange := func() {
		run(t, asAlice, "SELECT * FROM shadow_export($1)", b.Name)
		run(t, asBob, "SELECT * FROM shadow_export($1)", a.Name)
	}
	run(t, asAlice, "INSERT INTO items SELECT g, 'a' || g FROM generate_series(1, 10) g")
	run(t, asBob, "INSERT INTO items SELECT g, 'b' || g FROM generate_series(11, 20) g")
	exchange()
	run(t, asAlice, "UPDATE items SET v = 'a-upd' WHERE id IN (2, 12); DELETE FROM items WHERE id IN (3, 13)")
	run(t, asBob, "UPDATE items SET v = 'b-upd' WHERE id IN (5, 15)")
	exchange()
	exchange()
	pgtest.AssertSameRows(t, a, "items", b, "items")
	if n := a.QueryInt(t, "SELECT count(*) FROM items"); n != 18 {
		t.Fatalf("items: %d rows, want 18", n)
	}

	// alice's mapping logs in as carol, who may write items on b but does not own it
	a.Exec(t, fmt.Sprintf("ALTER USER MAPPING FOR %s SERVER peer OPTIONS (SET user %s)", pgtest.Ident(alice), pgtest.Lit(carol)))
	run(t, asAlice, "UPDATE items SET v = 'via carol' WHERE id = 1")
	wantDenied(t, "peer apply by a non-owner", runErr(t, asAlice, "SELECT * FROM shadow_export($1)", b.Name),
		"table public.items", fmt.Sprintf("target %q", b.Name), "not the owner")
	a.Exec(t, fmt.Sprintf("ALTER USER MAPPING FOR %s SERVER peer OPTIONS (SET user %s)", pgtest.Ident(alice), pgtest.Lit(bob)))
	exchange()
	pgtest.AssertSameRows(t, a, "items", b, "items")
}
