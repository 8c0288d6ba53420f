package capture_test

// The key trigger is column-specific (UPDATE OF the key columns) where no
// BEFORE UPDATE row trigger could change a key without the UPDATE naming
// it, so an UPDATE of other columns does not reach it (nor compile its
// WHEN); the trigger watch puts it back on every UPDATE as soon as such a
// trigger appears, in the table or anywhere in its partition tree.

import (
	"fmt"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// wantKeyTriggerOf fails the test unless tbl's key trigger is
// column-specific (UPDATE OF its key) exactly when want says, after what.
func wantKeyTriggerOf(t *testing.T, db *pgtest.DB, tbl string, want bool, after string) {
	t.Helper()
	got := db.QueryString(t, `SELECT (cardinality(tgattr::int2[]) > 0)::text FROM pg_trigger
		WHERE tgrelid = $1::regclass AND tgname = 'pgshadow_capture_key'`, tbl)
	if got != fmt.Sprint(want) {
		t.Fatalf("key trigger of %s %s: UPDATE OF its key = %s, want %v", tbl, after, got, want)
	}
}

func TestKeyTriggerFollowsBeforeUpdateTriggers(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'); SELECT shadow_track('t')")
	wantKeyTriggerOf(t, db, "t", true, "without BEFORE UPDATE triggers")
	// named keys and upserts are still recorded
	db.Exec(t, "UPDATE t SET id = 11 WHERE id = 1")
	db.Exec(t, "INSERT INTO t VALUES (2, 'c') ON CONFLICT (id) DO UPDATE SET id = 12")
	db.Exec(t, "UPDATE t SET v = 'x'")
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(11,U)", "(1,D)", "(12,U)", "(2,D)", "(11,U)", "(12,U)"}, "")

	// a BEFORE trigger that moves keys without the UPDATE naming them
	db.Exec(t, `TRUNCATE pgshadow.public__t;
		CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.id := NEW.id + 100; RETURN NEW; END $$;
		CREATE TRIGGER bump BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION bump()`)
	wantKeyTriggerOf(t, db, "t", false, "after a BEFORE UPDATE trigger was created")
	db.Exec(t, "UPDATE t SET v = 'y' WHERE id = 11")
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(111,U)", "(11,D)"}, "")

	// tracking again once it is gone makes it column-specific again
	db.Exec(t, "DROP TRIGGER bump ON t; SELECT shadow_track('t')")
	wantKeyTriggerOf(t, db, "t", true, "after the BEFORE trigger was dropped and the table tracked again")

	// without the trigger watch it fires on every UPDATE
	db.Exec(t, "ALTER EVENT TRIGGER pgshadow_trigger_watch DISABLE; SELECT shadow_untrack('t'); SELECT shadow_track('t')")
	defer db.Exec(t, "ALTER EVENT TRIGGER pgshadow_trigger_watch ENABLE")
	wantKeyTriggerOf(t, db, "t", false, "tracked with the trigger watch disabled")
}

// A partition that brings its own BEFORE UPDATE trigger, attached or
// created with one later, switches the root's key trigger.
func TestKeyTriggerFollowsBeforeTriggersOfPartitions(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
		INSERT INTO p VALUES (1, 'a');
		SELECT shadow_track('p');
		CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.id := NEW.id + 1; RETURN NEW; END $$;
		CREATE TABLE p2 (id int PRIMARY KEY, v text);
		CREATE TRIGGER bump BEFORE UPDATE ON p2 FOR EACH ROW EXECUTE FUNCTION bump();
		INSERT INTO p2 VALUES (1500, 'b')`)
	wantKeyTriggerOf(t, db, "p", true, "without BEFORE UPDATE triggers")
	db.Exec(t, "ALTER TABLE p ATTACH PARTITION p2 FOR VALUES FROM (1000) TO (2000)")
	wantKeyTriggerOf(t, db, "p", false, "after a partition with a BEFORE UPDATE trigger was attached")
	// through the leaf: the root's OLD TABLE (which sees re-keyed rows of
	// UPDATEs through the root) is not there, only the key trigger
	db.Exec(t, "TRUNCATE pgshadow.public__p; UPDATE p2 SET v = 'x' WHERE id = 1500")
	assertShadowRows(t, db, "p", []string{"id"}, []string{"(1501,U)", "(1500,D)"}, "")

	db.Exec(t, "ALTER TABLE p DETACH PARTITION p2; DROP TABLE p2; SELECT shadow_track('p')")
	wantKeyTriggerOf(t, db, "p", true, "after the partition left and the table was tracked again")
	db.Exec(t, "CREATE TRIGGER bump BEFORE UPDATE ON p1 FOR EACH ROW EXECUTE FUNCTION bump()")
	wantKeyTriggerOf(t, db, "p", false, "after a BEFORE UPDATE trigger was created on a partition")
}
