package capture_test

// Tracking starts and ends cleanly: track and untrack are idempotent, dropping
// a tracked table or the extension leaves nothing of pgshadow behind.

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/tests/install"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// trackingState is everything tracking t creates: pgshadow's objects, the
// triggers on t and t's catalog row.
func trackingState(t *testing.T, db *pgtest.DB, tbl string) []string {
	t.Helper()
	state := install.Inventory(t, db)
	state = append(state, captureTriggers(t, db, tbl)...)
	state = append(state, db.QueryStrings(t, `
		SELECT format('tracked %s shadow=%s keys=%s types=%s by=%s at=%s', tbl, shadow, key_cols, key_types,
		              tracked_by, tracked_at)
		  FROM pgshadow.tracked WHERE tbl = to_regclass($1)`, tbl)...)
	return state
}

func assertSameState(t *testing.T, what string, want, got []string) {
	t.Helper()
	if diff := pgtest.DiffRows(want, got); diff != "" {
		t.Fatalf("%s: objects before (-) and after (+) differ:\n%s", what, diff)
	}
}

func TestTrackTwiceCreatesNothingNew(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	first := db.QueryString(t, "SELECT shadow_track('t')::text")
	once := trackingState(t, db, "t")
	if n := len(captureTriggers(t, db, "t")); n != 5 {
		t.Fatalf("after shadow_track, t has %d capture triggers, want 5 (insert, update, key update, delete, truncate)", n)
	}
	second := db.QueryString(t, "SELECT shadow_track('t')::text")
	if first != second {
		t.Errorf("shadow_track returned %s the first time and %s the second", first, second)
	}
	assertSameState(t, "shadow_track twice", once, trackingState(t, db, "t"))
}

func TestTrackAgainKeepsPendingKeys(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); SELECT shadow_track('t')")
	db.Exec(t, "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
	db.Exec(t, "SELECT shadow_track('t')")
	db.Exec(t, "UPDATE t SET v = 'c' WHERE id = 1")
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(1,I)", "(2,I)", "(1,U)"}, "")
}

func TestUntrackRemovesTriggersShadowTableAndCatalogRow(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	before := trackingState(t, db, "t")
	db.Exec(t, "SELECT shadow_track('t'); INSERT INTO t VALUES (1, 'a')")
	shadow := shadowOf(t, db, "t")
	db.Exec(t, "SELECT shadow_untrack('t')")
	if got := db.QueryString(t, "SELECT coalesce(to_regclass($1)::text, 'gone')", shadow); got != "gone" {
		t.Errorf("after shadow_untrack, shadow table %s still exists", shadow)
	}
	assertSameState(t, "shadow_track then shadow_untrack", before, trackingState(t, db, "t"))
	db.Exec(t, "INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'c'; DELETE FROM t; TRUNCATE t")
}

func TestUntrackTwiceIsANoOp(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	before := trackingState(t, db, "t")
	db.Exec(t, "SELECT shadow_track('t')")
	db.Exec(t, "SELECT shadow_untrack('t')")
	if err := db.ExecErr("SELECT shadow_untrack('t')"); err != nil {
		t.Fatalf("second shadow_untrack failed: %s", pgtest.Describe(err))
	}
	assertSameState(t, "shadow_untrack twice", before, trackingState(t, db, "t"))
}

func TestUntrackOfANeverTrackedTableIsANoOp(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	before := trackingState(t, db, "t")
	if err := db.ExecErr("SELECT shadow_untrack('t')"); err != nil {
		t.Fatalf("shadow_untrack of an untracked table failed: %s", pgtest.Describe(err))
	}
	assertSameState(t, "shadow_untrack of an untracked table", before, trackingState(t, db, "t"))
}

func TestDropTrackedTableDropsItsShadowAndCatalogRow(t *testing.T) {
	db := newDB(t)
	before := install.Inventory(t, db)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); SELECT shadow_track('t');
		INSERT INTO t VALUES (1, 'a')`)
	db.Exec(t, "DROP TABLE t")
	if n := db.QueryInt(t, "SELECT count(*) FROM pgshadow.tracked"); n != 0 {
		t.Errorf("after DROP TABLE of the only tracked table, pgshadow.tracked has %d rows", n)
	}
	assertSameState(t, "track, then DROP TABLE", before, install.Inventory(t, db))
}

// Installs by a non-superuser have no event trigger: the next shadow_track
// forgets tables dropped meanwhile.
func TestDroppedTableIsForgottenWithoutTheEventTrigger(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `ALTER EVENT TRIGGER pgshadow_drop_watch DISABLE;
		CREATE TABLE gone (id int PRIMARY KEY); SELECT shadow_track('gone');
		INSERT INTO gone VALUES (1);
		DROP TABLE gone`)
	if n := db.QueryInt(t, "SELECT count(*) FROM pgshadow.tracked"); n != 1 {
		t.Fatalf("with the event trigger disabled, DROP TABLE left %d catalog rows, want the stale one", n)
	}
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY); SELECT shadow_track('t')")
	got := db.QueryStrings(t, `
		SELECT format('tracked %s', shadow) FROM pgshadow.tracked
		UNION ALL
		SELECT format('table %s', relname) FROM pg_class
		 WHERE relnamespace = 'pgshadow'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition
		   AND relname LIKE 'public\_\_%'
		 ORDER BY 1`)
	want := []string{"table public__t", "tracked public__t"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("after the next shadow_track: %v, want %v (the dropped table forgotten)", got, want)
	}
}

func TestDropExtensionCascadeLeavesNothing(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
		CREATE TABLE c (a text, b int, d date, PRIMARY KEY (a, b, d));
		SELECT shadow_track('t'), shadow_track('c');
		INSERT INTO t VALUES (1, 'a'); INSERT INTO c VALUES ('x', 1, '2024-01-01')`)
	db.Exec(t, "DROP EXTENSION pgshadow CASCADE")
	install.AssertNothingLeft(t, db, "DROP EXTENSION pgshadow CASCADE")
	// the user's tables stay, and take writes without capture
	db.Exec(t, "INSERT INTO t VALUES (2, 'b'); UPDATE c SET b = 2; TRUNCATE t")
	if n := db.QueryInt(t, "SELECT count(*) FROM c"); n != 1 {
		t.Errorf("after DROP EXTENSION, table c has %d rows, want 1", n)
	}
}

func TestDropExtensionAfterUntrackingEverythingNeedsNoCascade(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE u (id int PRIMARY KEY);
		SELECT shadow_track('t'), shadow_track('u');
		INSERT INTO t VALUES (1, 'a');
		SELECT shadow_untrack('t'), shadow_untrack('u')`)
	if err := db.ExecErr("DROP EXTENSION pgshadow"); err != nil {
		t.Fatalf("DROP EXTENSION pgshadow (no CASCADE) after untracking every table: %s", pgtest.Describe(err))
	}
	install.AssertNothingLeft(t, db, "DROP EXTENSION pgshadow")
}

// A table replicated both ways also has a versions table; it goes with the
// shadow table when the table is untracked or dropped.
func TestUntrackAndDropRemoveTheVersionsTable(t *testing.T) {
	db := newDB(t)
	for _, end := range []string{"SELECT shadow_untrack('t')", "DROP TABLE t"} {
		db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); SELECT shadow_track('t')")
		versions := db.QueryString(t, "SELECT 'pgshadow.' || quote_ident(pgshadow._versions('t'))")
		db.Exec(t, end)
		if got := db.QueryString(t, "SELECT coalesce(to_regclass($1)::text, 'gone')", versions); got != "gone" {
			t.Errorf("after %s, versions table %s still exists", end, versions)
		}
		db.Exec(t, "DROP TABLE IF EXISTS t")
	}
}

// Unsubscribing a table that never had a sync subscription says nothing about
// sync triggers that do not exist (0.1.1 sent four NOTICEs).
func TestUnsubscribeSendsNoNotices(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY); SELECT shadow_add_target('files', NULL)")
	cfg, err := pgx.ParseConfig(db.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	c, err := pgx.ConnectConfig(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx(t))
	run(t, c, "SELECT shadow_track('t')")
	run(t, c, "SELECT shadow_subscribe('files', 't')")
	run(t, c, "SELECT shadow_unsubscribe('files', 't')")
	run(t, c, "SELECT shadow_subscribe('files', 't')")
	if len(notices) != 0 {
		t.Fatalf("subscribe and unsubscribe sent notices: %q", notices)
	}
}
