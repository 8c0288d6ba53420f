package capture_test

// Each tracked table's own capture function (pgshadow.<shadow>_fn): who owns
// it and with whose rights it runs, that it serves its own table only, that
// schema changes keep it right, loop prevention, and the conversion of a
// table tracked by the generic capture of earlier versions.

import (
	"fmt"
	"strings"
	"testing"
)

func TestCaptureFunctionBelongsToTheTableOwnerAndRunsWithHerRights(t *testing.T) {
	f := newPrivFixture(t)
	got := f.db.QueryString(t, `
		SELECT format('owner=%s secdef=%s config=%s public_execute=%s',
		              p.proowner::regrole, p.prosecdef, p.proconfig,
		              has_function_privilege('public', p.oid, 'EXECUTE'))
		  FROM pg_proc p WHERE p.oid = 'pgshadow.public__alice_orders_fn()'::regprocedure`)
	want := fmt.Sprintf("owner=%s secdef=t config={\"search_path=pg_catalog, pg_temp\"} public_execute=f", f.alice)
	if got != want {
		t.Errorf("capture function of alice_orders: %s\nwant %s", got, want)
	}
	// the owner may append to her own shadow, and nothing more
	for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"} {
		has := f.db.QueryVal(t, "SELECT has_table_privilege($1, 'pgshadow.public__alice_orders', $2)", f.alice, p).(bool)
		if want := p == "SELECT" || p == "INSERT"; has != want {
			t.Errorf("table owner %s has %s on her shadow table: %t, want %t", f.alice, p, has, want)
		}
		if f.db.QueryVal(t, "SELECT has_table_privilege($1, 'pgshadow.public__alice_log', $2)", f.bob, p).(bool) {
			t.Errorf("%s has %s on alice's shadow table", f.bob, p)
		}
	}
}

// A function that is SECURITY DEFINER for alice must not become a way for
// bob to write into alice's shadow table: he cannot attach it to his table
// (EXECUTE is revoked from PUBLIC), and alice's shadow is unchanged. The
// function itself makes no check of which table fired it (that was a
// catalog query per statement): only alice, for her own tables, or a
// superuser could attach it elsewhere (docs/DESIGN.md, Capture).
func TestCaptureFunctionServesItsOwnTableOnly(t *testing.T) {
	f := newPrivFixture(t)
	before := f.aliceState(t)
	err := runErr(t, f.asBob, `CREATE TRIGGER pgshadow_capture_ins AFTER INSERT ON bob_notes
		REFERENCING NEW TABLE AS pgshadow_new FOR EACH STATEMENT EXECUTE FUNCTION pgshadow.public__alice_orders_fn()`)
	assertError(t, err, f.bob+" attaching alice's capture function to his table", "42501", "public__alice_orders_fn")
	if n := f.db.QueryInt(t, "SELECT count(*) FROM pg_proc WHERE proname = 'public__alice_orders_fn' AND has_function_privilege('public', oid, 'EXECUTE')"); n != 0 {
		t.Errorf("PUBLIC may execute alice's capture function")
	}
	run(t, f.asBob, "INSERT INTO bob_notes VALUES (7, 'x')")
	f.assertAliceUnchanged(t, before, "bob's refused attempt to attach alice's capture function")
}

// The owner's code reachable from capture runs as the table owner, never as
// pgshadow's owner. Here: without the key watch (installs by a non-superuser
// have none) and after dropping the capture trigger that blocks a key type
// change, the owner changes her key from a domain to its base type, so
// capture casts each key into the shadow's domain and runs its CHECK.
func TestOwnersCastIntoTheOldKeyTypeRunsAsTheOwner(t *testing.T) {
	db := newDB(t)
	mallory := newRole(t, db, "mallory", "")
	writer := newRole(t, db, "writer", "")
	db.Exec(t, "GRANT CREATE ON SCHEMA public TO "+mallory+"; ALTER EVENT TRIGGER pgshadow_key_watch DISABLE")
	asMallory := connAs(t, db, mallory)
	run(t, asMallory, spyKeySQL+fmt.Sprintf(`
		DROP TRIGGER pgshadow_capture_key ON t;
		ALTER TABLE t ALTER COLUMN id TYPE int;
		TRUNCATE spy;
		GRANT INSERT, UPDATE, DELETE ON t TO %s`, writer))
	asWriter := connAs(t, db, writer)
	run(t, asWriter, "INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = 'b'; DELETE FROM t")
	got := db.QueryStrings(t, "SELECT DISTINCT format('%s super=%s', who, super) FROM spy ORDER BY 1")
	if len(got) == 0 {
		t.Fatalf("the domain CHECK never ran during capture: the spy does not work, the test proves nothing")
	}
	if len(got) != 1 || got[0] != mallory+" super=f" {
		t.Errorf("the shadow key domain's CHECK ran as %v during capture, want only the table owner %s", got, mallory)
	}
}

// Schema changes of a tracked table, in a session whose capture plans are
// cached (each write below runs in the same session as the ones before it).
func TestCaptureStaysRightAcrossSchemaChanges(t *testing.T) {
	db := newDB(t)
	c := session(t, db)
	run(t, c, `CREATE SCHEMA s1; CREATE TABLE s1.t (a int, id int, b text, PRIMARY KEY (id)); SELECT shadow_track('s1.t')`)
	steps := []struct{ ddl, write, row string }{
		{"", "INSERT INTO s1.t VALUES (0, 1, 'x')", "(1,I)"},
		{"ALTER TABLE s1.t ADD COLUMN c numeric DEFAULT 1", "INSERT INTO s1.t VALUES (0, 2, 'y', 5)", "(2,I)"},
		{"ALTER TABLE s1.t DROP COLUMN a", "UPDATE s1.t SET b = 'z' WHERE id = 1", "(1,U)"},
		{"ALTER TABLE s1.t DROP COLUMN b", "DELETE FROM s1.t WHERE id = 2", "(2,D)"},
		{"ALTER TABLE s1.t RENAME TO u", "INSERT INTO s1.u VALUES (3, 7)", "(3,I)"},
		{"ALTER SCHEMA s1 RENAME TO s2", "UPDATE s2.u SET id = 4 WHERE id = 3", "(4,U)"},
		{"CREATE SCHEMA s3; ALTER TABLE s2.u SET SCHEMA s3", "INSERT INTO s3.u VALUES (5, 1)", "(5,I)"},
	}
	var want []string
	for _, s := range steps {
		if s.ddl != "" {
			run(t, c, s.ddl)
		}
		run(t, c, s.write)
		want = append(want, s.row)
		if strings.HasPrefix(s.write, "UPDATE s2.u SET id") {
			want = append(want, "(3,D)")
		}
	}
	assertShadowRows(t, db, "s3.u", []string{"id"}, want, "")
	// tracking again under the new name changes nothing and still captures
	run(t, c, "SELECT shadow_track('s3.u'); INSERT INTO s3.u VALUES (6, 1)")
	assertShadowRows(t, db, "s3.u", []string{"id"}, append(want, "(6,I)"), "")
}

// The shadow table and capture function hold the key as tracked: a change
// of the key is refused with an error naming the table, by the event trigger
// the table owner cannot drop (not by the capture triggers she can drop).
func TestChangingATrackedTablesKeyIsRefused(t *testing.T) {
	for _, tc := range []struct{ name, ddl string }{
		{"type", "ALTER TABLE t ALTER COLUMN id TYPE bigint"},
		{"type_to_text", "ALTER TABLE t ALTER COLUMN id TYPE text"},
		{"rename_key_column", "ALTER TABLE t RENAME COLUMN id TO ident"},
		{"drop_key", "ALTER TABLE t DROP CONSTRAINT t_pkey"},
		{"other_key", "ALTER TABLE t DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (id, v)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			owner := newRole(t, db, "owner", "")
			db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL); ALTER TABLE t OWNER TO "+owner+"; GRANT CREATE ON SCHEMA public TO "+owner)
			asOwner := connAs(t, db, owner)
			run(t, asOwner, "SELECT shadow_track('t'); INSERT INTO t VALUES (1, 'a')")
			// the guard the owner controls goes first
			run(t, asOwner, "DROP TRIGGER pgshadow_capture_key ON t")
			err := runErr(t, asOwner, tc.ddl)
			assertError(t, err, tc.ddl, "55006", "primary key", "t")
			run(t, asOwner, "INSERT INTO t VALUES (2, 'b')")
			assertShadowRows(t, db, "t", []string{"id"}, []string{"(1,I)", "(2,I)"}, "")
		})
	}
}

func TestTwoHundredTrackedTablesEachCaptureIntoTheirOwnShadow(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `DO $$ BEGIN
		FOR i IN 1 .. 200 LOOP
			EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i);
			PERFORM shadow_track(format('t%s', i)::regclass);
		END LOOP; END $$`)
	c := session(t, db)
	run(t, c, `DO $$ BEGIN
		FOR i IN 1 .. 200 LOOP
			EXECUTE format('INSERT INTO t%s VALUES (%s, ''x'')', i, i);
			EXECUTE format('UPDATE t%s SET v = ''y''', i);
		END LOOP; END $$`)
	if n := db.QueryInt(t, `SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgshadow'::regnamespace AND proname ~ '^public__t[0-9]+_fn$'`); n != 200 {
		t.Errorf("%d capture functions for 200 tracked tables", n)
	}
	for _, i := range []int{1, 77, 200} {
		assertShadowRows(t, db, fmt.Sprintf("t%d", i), []string{"id"}, []string{fmt.Sprintf("(%d,I)", i), fmt.Sprintf("(%d,U)", i)}, "")
	}
	if n := db.QueryInt(t, `SELECT count(DISTINCT shadow) FROM pgshadow.tracked`); n != 200 {
		t.Errorf("%d catalog rows with distinct shadow tables for 200 tracked tables", n)
	}
	db.Exec(t, `DO $$ BEGIN FOR i IN 1 .. 200 LOOP PERFORM shadow_untrack(format('t%s', i)::regclass); END LOOP; END $$`)
	if n := db.QueryInt(t, `SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgshadow'::regnamespace AND proname ~ '^public__t[0-9]+_fn$'`); n != 0 {
		t.Errorf("%d capture functions left after untracking all 200 tables", n)
	}
}

// Loop prevention has one rule: the session's role (SET ROLE, else the login
// role) must be a member of the table's owner. A writer calling the owner's
// SECURITY DEFINER function (current_user = owner inside) is still captured.
func TestOriginSkipsCaptureOnlyForTheSessionRoleOfTheOwner(t *testing.T) {
	f := newPrivFixture(t)
	writer := newRole(t, f.db, "writer", "")
	f.db.Exec(t, fmt.Sprintf(`
		CREATE FUNCTION public.alice_write(k int) RETURNS void LANGUAGE sql SECURITY DEFINER
		    SET search_path = pg_catalog, pg_temp AS 'INSERT INTO public.alice_orders VALUES (k, ''w'')';
		ALTER FUNCTION public.alice_write(int) OWNER TO %s;
		GRANT EXECUTE ON FUNCTION public.alice_write(int) TO %s`, f.alice, writer))
	asWriter := connAs(t, f.db, writer)
	run(t, asWriter, "SET pgshadow.origin = 'elsewhere'; SELECT public.alice_write(10)")
	// the owner's own session, and a superuser's SET ROLE to her, do skip
	run(t, f.asAlice, "SET pgshadow.origin = 'elsewhere'; INSERT INTO alice_orders VALUES (11, 'o'); RESET pgshadow.origin")
	c := session(t, f.db)
	run(t, c, fmt.Sprintf("SET ROLE %s; SET pgshadow.origin = 'elsewhere'; INSERT INTO alice_orders VALUES (12, 'r'); RESET pgshadow.origin; RESET ROLE", f.alice))
	assertShadowRows(t, f.db, "alice_orders", []string{"id"}, []string{"(1,I)", "(2,I)", "(10,I)"}, "")
	// the predicate itself, as the lead's sync capture and peer apply use it
	if got := text(t, asWriter, "SELECT pgshadow._origin_skips('alice_orders'::regclass)::text"); got != "false" {
		t.Errorf("_origin_skips for a writer with origin set: %s, want false", got)
	}
	run(t, f.asAlice, "SET pgshadow.origin = 'x'")
	if got := text(t, f.asAlice, "SELECT pgshadow._origin_skips('alice_orders'::regclass)::text"); got != "true" {
		t.Errorf("_origin_skips for the owner with origin set: %s, want true", got)
	}
}

// A table tracked by an earlier version (triggers calling the generic
// pgshadow.capture(), no function of its own, no INSERT grant) is converted
// in place: its pending keys stay, and capture goes on in the same shadow.
func TestInstallCaptureConvertsATableInPlace(t *testing.T) {
	f := newPrivFixture(t)
	// make alice_orders look as an earlier version left it
	f.db.Exec(t, fmt.Sprintf(`
		DROP FUNCTION pgshadow.public__alice_orders_fn() CASCADE;
		REVOKE INSERT ON pgshadow.public__alice_orders FROM %[1]s;
		CREATE TRIGGER pgshadow_capture_ins AFTER INSERT ON alice_orders REFERENCING NEW TABLE AS pgshadow_new
		    FOR EACH STATEMENT EXECUTE FUNCTION pgshadow.capture();
		CREATE TRIGGER pgshadow_capture_upd AFTER UPDATE ON alice_orders REFERENCING OLD TABLE AS pgshadow_old NEW TABLE AS pgshadow_new
		    FOR EACH STATEMENT EXECUTE FUNCTION pgshadow.capture();
		CREATE TRIGGER pgshadow_capture_del AFTER DELETE ON alice_orders REFERENCING OLD TABLE AS pgshadow_old
		    FOR EACH STATEMENT EXECUTE FUNCTION pgshadow.capture();
		CREATE TRIGGER pgshadow_capture_trunc AFTER TRUNCATE ON alice_orders
		    FOR EACH STATEMENT EXECUTE FUNCTION pgshadow.capture()`, f.alice))
	shadow := f.db.QueryString(t, "SELECT format('%s', 'pgshadow.public__alice_orders'::regclass::oid)")
	// until converted, writes are refused rather than lost
	err := runErr(t, f.asAlice, "INSERT INTO alice_orders VALUES (3, 'c')")
	assertError(t, err, "a write through the generic capture", "", "alice_orders", "no longer captures")

	f.db.Exec(t, "SELECT pgshadow._install_capture('alice_orders')")
	f.db.Exec(t, "SELECT pgshadow._install_capture('alice_orders')") // idempotent
	if got := f.db.QueryString(t, "SELECT format('%s', 'pgshadow.public__alice_orders'::regclass::oid)"); got != shadow {
		t.Errorf("the shadow table was replaced (oid %s, was %s)", got, shadow)
	}
	run(t, f.asAlice, "INSERT INTO alice_orders VALUES (3, 'c'); UPDATE alice_orders SET v = 'u' WHERE id = 1")
	assertShadowRows(t, f.db, "alice_orders", []string{"id"}, []string{"(1,I)", "(2,I)", "(3,I)", "(1,U)"}, "")
	trigs := captureTriggers(t, f.db, "alice_orders")
	if len(trigs) != 5 {
		t.Errorf("after _install_capture: %d capture triggers, want 5: %v", len(trigs), trigs)
	}
	for _, tr := range trigs {
		if strings.Contains(tr, "pgshadow.capture()") {
			t.Errorf("a trigger still calls the generic capture: %s", tr)
		}
	}
	if n := f.db.QueryInt(t, "SELECT count(*) FROM pgshadow.subscription WHERE tbl = 'alice_orders'::regclass AND id = $1::bigint", f.subID); n != 1 {
		t.Errorf("alice_orders' subscription is gone after _install_capture")
	}
}
