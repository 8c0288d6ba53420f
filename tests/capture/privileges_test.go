package capture_test

// Who may do what: only a table's owner (or a member of the owning role)
// tracks it or touches its shadow, directly or through pgshadow's SECURITY
// DEFINER helpers; writers need no rights on the shadow; functions that run
// with raised rights pin search_path.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// privFixture: alice owns two tracked tables with pending changes,
// alice_orders (subscribed to the file target "files") and alice_log (not
// subscribed, so a purge would empty its shadow); bob is another login role
// with a table of his own.
type privFixture struct {
	db         *pgtest.DB
	alice, bob string
	asAlice    *pgx.Conn
	asBob      *pgx.Conn
	subID      string // alice_orders' subscription
}

func newPrivFixture(t *testing.T) *privFixture {
	t.Helper()
	f := &privFixture{db: newDB(t)}
	f.alice = newRole(t, f.db, "alice", "")
	f.bob = newRole(t, f.db, "bob", "")
	f.db.Exec(t, fmt.Sprintf(`
		CREATE TABLE alice_orders (id int PRIMARY KEY, v text); ALTER TABLE alice_orders OWNER TO %[1]s;
		CREATE TABLE alice_log (id int PRIMARY KEY, v text); ALTER TABLE alice_log OWNER TO %[1]s;
		CREATE TABLE bob_notes (id int PRIMARY KEY, v text); ALTER TABLE bob_notes OWNER TO %[2]s`, f.alice, f.bob))
	f.asAlice = connAs(t, f.db, f.alice)
	f.asBob = connAs(t, f.db, f.bob)
	// a file target is its owner's to subscribe to
	run(t, f.asAlice, "SELECT shadow_add_target('files', NULL), shadow_add_target('files2', NULL)")
	run(t, f.asAlice, "SELECT shadow_subscribe('files', 'alice_orders'), shadow_track('alice_log')")
	run(t, f.asAlice, "INSERT INTO alice_orders VALUES (1, 'a'), (2, 'b'); INSERT INTO alice_log VALUES (1, 'x')")
	f.subID = f.db.QueryString(t, "SELECT id::text FROM pgshadow.subscription WHERE tbl = 'alice_orders'::regclass")
	return f
}

// aliceState is everything of alice's that bob must not be able to change.
func (f *privFixture) aliceState(t *testing.T) []string {
	t.Helper()
	state := f.db.QueryStrings(t, `
		SELECT format('tracked %s shadow=%s by=%s keys=%s types=%s gen=%s notify=%s',
		              tbl, shadow, tracked_by, key_cols, key_types, gen, notify)
		  FROM pgshadow.tracked
		UNION ALL
		SELECT format('capture function %s owner=%s secdef=%s config=%s acl=%s body=%s',
		              p.oid::regprocedure, p.proowner::regrole, p.prosecdef, p.proconfig, p.proacl, md5(p.prosrc))
		  FROM pg_proc p WHERE p.pronamespace = 'pgshadow'::regnamespace AND p.proname LIKE '%\_fn'
		UNION ALL
		SELECT format('subscription %s %s -> %s.%s snapshot=%s copy=%s batches=%s shipped=%s error=%s mode=%s',
		              target, tbl, dest_schema, dest_table, snapshot, needs_copy, batch_no, keys_shipped, last_error, mode)
		  FROM pgshadow.subscription`)
	for _, tbl := range []string{"alice_orders", "alice_log"} {
		state = append(state, captureTriggers(t, f.db, tbl)...)
		for _, r := range f.db.TableRows(t, "pgshadow.public__"+tbl, "id", "shadow_op", "shadow_xid") {
			state = append(state, tbl+" shadow "+r)
		}
	}
	return state
}

func (f *privFixture) assertAliceUnchanged(t *testing.T, before []string, what string) {
	t.Helper()
	if diff := pgtest.DiffRows(before, f.aliceState(t)); diff != "" {
		t.Errorf("%s changed alice's tracking state, before (-) after (+):\n%s", what, diff)
	}
}

func TestNonOwnerCannotTrackATable(t *testing.T) {
	f := newPrivFixture(t)
	f.db.Exec(t, "CREATE TABLE alice_new (id int PRIMARY KEY); ALTER TABLE alice_new OWNER TO "+f.alice)
	err := runErr(t, f.asBob, "SELECT shadow_track('alice_new')")
	assertError(t, err, f.bob+": shadow_track('alice_new')", "42501", "alice_new")
	if n := f.db.QueryInt(t, "SELECT count(*) FROM pgshadow.tracked WHERE tbl = 'alice_new'::regclass"); n != 0 {
		t.Errorf("refused shadow_track left %d catalog rows", n)
	}
	if trigs := captureTriggers(t, f.db, "alice_new"); len(trigs) > 0 {
		t.Errorf("refused shadow_track left triggers: %v", trigs)
	}
}

func TestNonOwnerCannotUntrackATable(t *testing.T) {
	f := newPrivFixture(t)
	before := f.aliceState(t)
	err := runErr(t, f.asBob, "SELECT shadow_untrack('alice_log')")
	assertError(t, err, f.bob+": shadow_untrack('alice_log')", "42501", "alice_log")
	f.assertAliceUnchanged(t, before, "a refused shadow_untrack")
}

// helperCall is a direct call, by someone who does not own the table, of a
// SECURITY DEFINER helper on a privFixture table.
type helperCall struct{ name, sql, table string }

// ownerCheckedHelpers are called with the fixture's subscription id.
func ownerCheckedHelpers(id string) []helperCall {
	return []helperCall{
		{"_make_shadow", "SELECT pgshadow._make_shadow('alice_log')", "alice_log"},
		{"_drop_shadow", "SELECT pgshadow._drop_shadow('alice_log')", "alice_log"},
		{"_purge", "SELECT pgshadow._purge('alice_log')", "alice_log"},
		{"_advance", "SELECT pgshadow._advance(" + id + ", pg_current_snapshot(), 0, 1)", "alice_orders"},
		{"_reset", "SELECT pgshadow._reset(" + id + ", pg_current_snapshot(), true)", "alice_orders"},
		{"_lock_subscription", "SELECT pgshadow._lock_subscription(" + id + ")", "alice_orders"},
		{"_set_columns", "SELECT pgshadow._set_columns(" + id + ", ARRAY['id']::name[])", "alice_orders"},
		{"_add_subscription", `SELECT pgshadow._add_subscription('files2', 'alice_orders', 'public', 'copy',
			ARRAY['id', 'v']::name[], NULL, 'batch', 'source_wins', false)`, "alice_orders"},
		{"_drop_subscription", "SELECT pgshadow._drop_subscription('files', 'alice_orders')", "alice_orders"},
		{"file_done", "SELECT pgshadow.file_done(" + id + ", pg_current_snapshot(), 0)", "alice_orders"},
		{"_refresh_notify", "SELECT pgshadow._refresh_notify('alice_orders')", "alice_orders"},
		{"_record_failure", "SELECT pgshadow._record_failure(" + id + ", '08006', 'fake')", "alice_orders"},
		{"_clear_failure", "SELECT pgshadow._clear_failure(" + id + ")", "alice_orders"},
		{"_log_skip", "SELECT pgshadow._log_skip(" + id + ", pg_current_snapshot(), pg_current_snapshot(), 0, 'fake')",
			"alice_orders"},
		{"_log_conflict", `SELECT pgshadow._log_conflict('alice_orders', '{"id": 1}', 'elsewhere', 'source_wins',
			'applied', now(), now(), '{}', '{}')`, "alice_orders"},
		{"_versions", "SELECT pgshadow._versions('alice_orders')", "alice_orders"},
		{"_peer_gate", "SELECT pgshadow._peer_gate('alice_orders', 'files')", "alice_orders"},
		{"_grant_export", "SELECT pgshadow._grant_export('alice_orders', current_user::regrole, true)", "alice_orders"},
		{"_owner_logs_in_as", "SELECT pgshadow._owner_logs_in_as(" + id + ", current_user)", "alice_orders"},
	}
}

// targetWideHelpers act on every subscription of a target and must skip the
// tables the caller does not own.
var targetWideHelpers = []helperCall{
	{"_record_error", "SELECT pgshadow._record_error('files', 'fake')", ""},
	{"_retry_now", "SELECT pgshadow._retry_now('files')", ""},
}

// securityDefinerWithoutOwnerCheck: the SECURITY DEFINER functions of schema
// pgshadow that no one needs to own a table to call, and why that is safe.
var securityDefinerWithoutOwnerCheck = map[string]string{
	"capture":         "trigger function: TestCaptureTriggerOnAnUntrackedTableCannotWriteAnyShadow",
	"sync_commit":     "constraint trigger on pgshadow.sync_open: commits only the calling session's own dblink connection",
	"_on_drop":        "event trigger function: cannot be called directly",
	"_on_alter":       "event trigger function: cannot be called directly",
	"_on_partition":   "event trigger function: cannot be called directly",
	"_truncated_here": "read-only: whether the caller's own transaction truncated a table",
	"_gc":             "takes no argument: forgets only tables that no longer exist",
	"_pending":        "read-only: counts of pending keys, public by design (shadow_status)",
	"_has_pending":    "read-only: whether keys are pending, public by design",
	"_add_target":     "creates a target owned by the caller",
	"_forget":         "EXECUTE revoked from PUBLIC: only other definer functions call it (TestForgetIsNotCallable)",
	"_system_id":      "read-only: the cluster's system identifier, which pg_control_system() shows everyone anyway",
	"_history_break":  "read-only: whether the watermarks belong to another xid history, public by design (shadow_status)",
	"_check_history": "changes nothing on a continuous history; after a move it only makes more keys pending, never fewer " +
		"(tests/continuity TestAnyoneMayCheckTheHistory)",
	"_export_granted": "read-only: whether the caller itself holds an export grant (false when asked about another role; " +
		"tests/security TestExportGrantLetsASchedulerExportOnlyThat)",
	"_stamp": "EXECUTE revoked from PUBLIC: a fresh stamp would hide a move (tests/continuity TestAnyoneMayCheckTheHistory)",
	"_learn_peer": "records what a target reaches only for a member of the target's owner " +
		"(TestNonOwnerCannotRecordWhatATargetReaches)",
	"_alter_target": "alters a target only for a member of the target's owner (TestNonOwnerCannotAlterATarget)",
}

// Whether a target ships consistently changes every role's export of it:
// only its owner may set it.
func TestNonOwnerCannotAlterATarget(t *testing.T) {
	f := newPrivFixture(t)
	setting := func() string {
		return f.db.QueryString(t, "SELECT consistent::text FROM pgshadow.target WHERE name = 'files'")
	}
	for _, sql := range []string{"SELECT pgshadow._alter_target('files', true)", "SELECT shadow_alter_target('files', true)"} {
		err := runErr(t, f.asBob, sql)
		assertError(t, err, f.bob+": "+sql, "42501", `target "files"`)
	}
	if got := setting(); got != "false" {
		t.Errorf("bob made alice's target consistent: %s", got)
	}
	// alice may alter her own target; a file target is refused for what it
	// already is (one snapshot per batch, one import transaction)
	run(t, f.asAlice, "SELECT shadow_alter_target('files', consistent => false)")
	err := runErr(t, f.asAlice, "SELECT shadow_alter_target('files', consistent => true)")
	assertError(t, err, f.alice+": shadow_alter_target('files', true)", "42809", "is a file target")
	if got := setting(); got != "false" {
		t.Errorf("a file target was made consistent: %s", got)
	}
}

// A mesh node finds a peer's unshipped changes, for every table, by the
// node its targets reach (pgshadow.target.peer_id): bob may not declare
// what alice's target reaches, by the helper or by shadow_learn_peer.
func TestNonOwnerCannotRecordWhatATargetReaches(t *testing.T) {
	f := newPrivFixture(t)
	peer := func() string {
		return f.db.QueryString(t, "SELECT format('%s %s %s', peer_id, peer_node, peer_at) FROM pgshadow.target WHERE name = 'files'")
	}
	before := peer()
	if got := text(t, f.asBob, "SELECT pgshadow._learn_peer('files', gen_random_uuid(), 'forged')::text"); got != "false" {
		t.Errorf("bob's _learn_peer on alice's target returned %s, want false", got)
	}
	err := runErr(t, f.asBob, "SELECT * FROM shadow_learn_peer('files')")
	assertError(t, err, f.bob+": shadow_learn_peer('files')", "42501", `target "files"`)
	if after := peer(); after != before {
		t.Errorf("bob changed what alice's target 'files' reaches: %q -> %q", before, after)
	}
	if got := text(t, f.asAlice, "SELECT pgshadow._learn_peer('files', '00000000-0000-0000-0000-000000000001', 'n1')::text"); got != "true" {
		t.Errorf("alice's _learn_peer on her own target returned %s, want true", got)
	}
}

func TestEverySecurityDefinerHelperIsCoveredByAPrivilegeTest(t *testing.T) {
	db := newDB(t)
	covered := map[string]bool{}
	for _, h := range append(ownerCheckedHelpers("0"), targetWideHelpers...) {
		covered[h.name] = true
	}
	for name := range securityDefinerWithoutOwnerCheck {
		covered[name] = true
	}
	var missing []string
	for _, fn := range db.QueryStrings(t, `SELECT DISTINCT proname FROM pg_proc
		WHERE prosecdef AND pronamespace = 'pgshadow'::regnamespace ORDER BY 1`) {
		if !covered[fn] {
			missing = append(missing, "pgshadow."+fn)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("SECURITY DEFINER functions not called by a non-owner in TestNonOwnerCannotUseTheSecurityDefinerHelpers"+
			"OnAnotherOwnersTable (add them to ownerCheckedHelpers, or with a reason to securityDefinerWithoutOwnerCheck):\n  %s",
			strings.Join(missing, "\n  "))
	}
}

func TestNonOwnerCannotUseTheSecurityDefinerHelpersOnAnotherOwnersTable(t *testing.T) {
	f := newPrivFixture(t)
	for _, tc := range ownerCheckedHelpers(f.subID) {
		t.Run(tc.name, func(t *testing.T) {
			before := f.aliceState(t)
			err := runErr(t, f.asBob, tc.sql)
			assertError(t, err, f.bob+": "+tc.sql, "42501", tc.table)
			f.assertAliceUnchanged(t, before, f.bob+"'s call of pgshadow."+tc.name)
		})
	}
	for _, tc := range targetWideHelpers {
		t.Run(tc.name, func(t *testing.T) {
			before := f.aliceState(t)
			_ = runErr(t, f.asBob, tc.sql) // refusing is fine too; changing alice's state is not
			f.assertAliceUnchanged(t, before, f.bob+"'s call of pgshadow."+tc.name)
		})
	}
}

func TestNonOwnerCannotReadOrWriteAnotherTablesShadow(t *testing.T) {
	f := newPrivFixture(t)
	shadow := "pgshadow.public__alice_orders"
	for _, tc := range []struct{ name, sql string }{
		{"select", "SELECT * FROM " + shadow},
		{"insert", "INSERT INTO " + shadow + " (id, shadow_op) VALUES (9, 'I')"},
		{"update", "UPDATE " + shadow + " SET shadow_op = 'D'"},
		{"delete", "DELETE FROM " + shadow},
		{"truncate", "TRUNCATE " + shadow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.aliceState(t)
			err := runErr(t, f.asBob, tc.sql)
			assertError(t, err, f.bob+": "+tc.sql, "42501", "public__alice_orders")
			f.assertAliceUnchanged(t, before, f.bob+"'s "+tc.name)
		})
	}
}

// Capture functions trust the catalog (which shadow table, which generation);
// whoever could write it would redirect other tables' keys.
func TestTableOwnerCannotWriteThePgshadowCatalog(t *testing.T) {
	f := newPrivFixture(t)
	for _, tc := range []struct{ name, sql string }{
		{"tracked", "UPDATE pgshadow.tracked SET shadow = 'public__alice_log' WHERE tbl = 'alice_orders'::regclass"},
		{"subscription", "UPDATE pgshadow.subscription SET snapshot = pg_current_snapshot()"},
		{"target", "DELETE FROM pgshadow.target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.aliceState(t)
			err := runErr(t, f.asAlice, tc.sql)
			assertError(t, err, f.alice+": "+tc.sql, "42501", tc.name)
			f.assertAliceUnchanged(t, before, f.alice+"'s direct catalog write")
		})
	}
}

func TestNonOwnerCannotCreateObjectsInSchemaPgshadow(t *testing.T) {
	f := newPrivFixture(t)
	// a table made under a future shadow's name would be adopted by shadow_track
	err := runErr(t, f.asBob, "CREATE TABLE pgshadow.public__bob_notes (id int, shadow_op \"char\", shadow_xid xid8)")
	assertError(t, err, f.bob+": CREATE TABLE in schema pgshadow", "42501", "pgshadow")
	err = runErr(t, f.asBob, "CREATE FUNCTION pgshadow.capture(int) RETURNS int LANGUAGE sql AS 'SELECT 1'")
	assertError(t, err, f.bob+": CREATE FUNCTION in schema pgshadow", "42501", "pgshadow")
}

func TestMemberOfTheOwningRoleCanTrackAndUntrack(t *testing.T) {
	db := newDB(t)
	team := newRole(t, db, "team", "NOLOGIN")
	carol := newRole(t, db, "carol", "IN ROLE "+team)
	db.Exec(t, "CREATE TABLE team_t (id int PRIMARY KEY, v text); ALTER TABLE team_t OWNER TO "+team)
	asCarol := connAs(t, db, carol)
	run(t, asCarol, "SELECT shadow_track('team_t')")
	run(t, asCarol, "INSERT INTO team_t VALUES (1, 'a')")
	assertShadowRows(t, db, "team_t", []string{"id"}, []string{"(1,I)"}, "")
	// the owning role, not only its member who tracked, reads the shadow
	if !db.QueryVal(t, "SELECT has_table_privilege($1, 'pgshadow.public__team_t', 'SELECT')", team).(bool) {
		t.Errorf("owning role %s cannot read the shadow of its table", team)
	}
	run(t, asCarol, "SELECT shadow_untrack('team_t')")
	if trigs := captureTriggers(t, db, "team_t"); len(trigs) > 0 || shadowOf(t, db, "team_t") != "" {
		t.Errorf("after the member's shadow_untrack: triggers %v, shadow %q", trigs, shadowOf(t, db, "team_t"))
	}
}

func TestWriterWithOnlyInsertAndUpdateIsCaptured(t *testing.T) {
	f := newPrivFixture(t)
	writer := newRole(t, f.db, "writer", "")
	f.db.Exec(t, fmt.Sprintf("GRANT INSERT, UPDATE ON alice_orders TO %s", writer))
	for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"} {
		if f.db.QueryVal(t, "SELECT has_table_privilege($1, 'pgshadow.public__alice_orders', $2)", writer, p).(bool) {
			t.Fatalf("writer %s has %s on the shadow table; the test needs a writer without rights on it", writer, p)
		}
	}
	asWriter := connAs(t, f.db, writer)
	run(t, asWriter, "INSERT INTO alice_orders VALUES (3, 'c')")
	run(t, asWriter, "UPDATE alice_orders SET v = 'w'")
	assertShadowRows(t, f.db, "alice_orders", []string{"id"},
		[]string{"(1,I)", "(2,I)", "(3,I)", "(1,U)", "(2,U)", "(3,U)"}, "")
}

// pgshadow.origin marks sessions that apply replicated changes; a plain
// writer setting it must not make its own writes invisible to replication.
func TestWriterCannotSkipCaptureBySettingOrigin(t *testing.T) {
	f := newPrivFixture(t)
	writer := newRole(t, f.db, "writer", "")
	f.db.Exec(t, fmt.Sprintf("GRANT INSERT ON alice_orders TO %s", writer))
	asWriter := connAs(t, f.db, writer)
	run(t, asWriter, "SET pgshadow.origin = 'elsewhere'")
	run(t, asWriter, "INSERT INTO alice_orders VALUES (3, 'c')")
	assertShadowRows(t, f.db, "alice_orders", []string{"id"}, []string{"(1,I)", "(2,I)", "(3,I)"}, "")
}

func TestCaptureTriggerOnAnUntrackedTableCannotWriteAnyShadow(t *testing.T) {
	f := newPrivFixture(t)
	for _, tc := range []struct{ name, args string }{
		{"no_arguments", ""},
		{"shadow_named_in_arguments", "'public__alice_orders'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.aliceState(t)
			run(t, f.asBob, fmt.Sprintf(`CREATE TRIGGER pgshadow_capture_ins AFTER INSERT ON bob_notes
				REFERENCING NEW TABLE AS pgshadow_new FOR EACH STATEMENT EXECUTE FUNCTION pgshadow.capture(%s)`, tc.args))
			t.Cleanup(func() { _ = runErr(t, f.asBob, "DROP TRIGGER IF EXISTS pgshadow_capture_ins ON bob_notes") })
			err := runErr(t, f.asBob, "INSERT INTO bob_notes VALUES (1, 'a')")
			assertError(t, err, f.bob+"'s INSERT into his untracked table with a capture trigger", "", "bob_notes")
			f.assertAliceUnchanged(t, before, "a capture trigger on bob's untracked table")
			run(t, f.asBob, "DROP TRIGGER pgshadow_capture_ins ON bob_notes")
		})
	}
}

// Listed: functions of the install that run with their owner's rights but
// take search_path from the caller.
func TestSecurityDefinerFunctionsPinSearchPath(t *testing.T) {
	db := newDB(t)
	n := db.QueryInt(t, `SELECT count(*) FROM pg_proc WHERE prosecdef AND pronamespace = 'pgshadow'::regnamespace`)
	if n == 0 {
		t.Fatalf("no SECURITY DEFINER function in schema pgshadow: the query below would check nothing")
	}
	offenders := db.QueryStrings(t, `
		SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
		 WHERE p.prosecdef
		   AND (ns.nspname = 'pgshadow' OR (ns.nspname NOT IN ('pg_catalog', 'information_schema') AND p.proname LIKE 'shadow\_%'))
		   AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
		 ORDER BY 1`)
	if len(offenders) > 0 {
		t.Fatalf("%d of %d SECURITY DEFINER functions do not pin search_path:\n  %s",
			len(offenders), n, strings.Join(offenders, "\n  "))
	}
}

// A pinned search_path protects only if no one else can create objects in
// its schemas: pg_catalog, pgshadow (its owner's) and pg_temp last.
func TestSecurityDefinerSearchPathsHoldOnlyTrustedSchemas(t *testing.T) {
	db := newDB(t)
	offenders := db.QueryStrings(t, `
		WITH paths AS (
			SELECT p.oid::regprocedure::text AS fn, substr(c, length('search_path=') + 1) AS path
			  FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace, unnest(p.proconfig) c
			 WHERE p.prosecdef AND c LIKE 'search\_path=%'
			   AND (ns.nspname = 'pgshadow' OR (ns.nspname NOT IN ('pg_catalog', 'information_schema') AND p.proname LIKE 'shadow\_%'))
		), elems AS (
			SELECT fn, path, trim(both ' "' from e) AS schema, ord, count(*) OVER (PARTITION BY fn) AS n
			  FROM paths, unnest(string_to_array(path, ',')) WITH ORDINALITY AS u(e, ord)
		)
		SELECT DISTINCT format('%s: search_path=%s', fn, path) FROM elems
		 WHERE NOT (schema IN ('pg_catalog', 'pgshadow') OR (schema = 'pg_temp' AND ord = n))
		 ORDER BY 1`)
	if len(offenders) > 0 {
		t.Fatalf("SECURITY DEFINER functions with a search_path beyond pg_catalog, pgshadow and a final pg_temp:\n  %s",
			strings.Join(offenders, "\n  "))
	}
}

// spyKeySQL, run by a table owner, creates table t keyed by domain spy_id
// and tracks it; the domain's CHECK function records in table spy which role
// ran it and whether as a superuser.
const spyKeySQL = `
		CREATE TABLE spy (who name, super boolean);
		GRANT INSERT ON spy TO PUBLIC;
		CREATE FUNCTION check_id(int) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO public.spy VALUES (current_user, current_setting('is_superuser')::boolean);
			RETURN true;
		END $$;
		CREATE DOMAIN spy_id AS int CHECK (public.check_id(VALUE));
		CREATE TABLE t (id spy_id PRIMARY KEY, v text);
		SELECT shadow_track('t');
`

// capture() inserts the keys with pgshadow's rights; a key whose domain CHECK
// calls the table owner's function must not run that function as pgshadow's
// owner (a superuser when installed with CREATE EXTENSION).
func TestKeyDomainCheckDoesNotRunWithPgshadowsRights(t *testing.T) {
	db := newDB(t)
	mallory := newRole(t, db, "mallory", "")
	db.Exec(t, "GRANT CREATE ON SCHEMA public TO "+mallory)
	asMallory := connAs(t, db, mallory)
	run(t, asMallory, spyKeySQL+`
		INSERT INTO t VALUES (1, 'a');
		UPDATE t SET id = 2;
		DELETE FROM t`)
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(1,I)", "(1,D)", "(2,U)", "(2,D)"}, "")
	if n := db.QueryInt(t, "SELECT count(*) FROM spy"); n == 0 {
		t.Fatalf("the domain CHECK never recorded a call: the spy does not work, the test proves nothing")
	}
	if who := db.QueryStrings(t, "SELECT DISTINCT who::text FROM spy WHERE who <> $1 OR super", mallory); len(who) > 0 {
		t.Fatalf("the key domain's CHECK function ran as %v (superuser or not %s) during capture", who, mallory)
	}
}

func TestForgetIsNotCallable(t *testing.T) {
	f := newPrivFixture(t)
	before := f.aliceState(t)
	err := runErr(t, f.asBob, "SELECT pgshadow._forget(t) FROM pgshadow.tracked t")
	assertError(t, err, f.bob+": pgshadow._forget", "42501", "_forget")
	f.assertAliceUnchanged(t, before, f.bob+"'s call of pgshadow._forget")
}
