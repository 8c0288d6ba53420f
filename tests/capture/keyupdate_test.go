package capture_test

// Capture records old keys only for rows whose key changed (the key trigger,
// a row trigger whose WHEN compares OLD and NEW keys); these tests pin every
// way a key can change.

import "testing"

func TestNonKeyUpdateRecordsOnlyTheNewKeys(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'); SELECT shadow_track('t')")
	db.Exec(t, "UPDATE t SET v = 'x'")
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(1,U)", "(2,U)"}, "")
}

func TestKeyUpdateNamedInSetRecordsOldAndNewKeys(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (a int, b int, v text, PRIMARY KEY (a, b)); INSERT INTO t VALUES (1, 1, 'a'), (2, 2, 'b'); SELECT shadow_track('t')")
	// only the second key column is named; the old key must still be recorded
	db.Exec(t, "UPDATE t SET b = b + 10 WHERE a = 1")
	// and a later non-key update in the same transaction is still right
	db.Exec(t, "BEGIN; UPDATE t SET a = 5 WHERE a = 2; UPDATE t SET v = 'z' WHERE a = 5; COMMIT")
	assertShadowRows(t, db, "t", []string{"a", "b"},
		[]string{"(1,11,U)", "(1,1,D)", "(5,2,U)", "(2,2,D)", "(5,2,U)"}, "")
}

func TestKeyChangedByBeforeTriggerRecordsTheOldKey(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
		CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.id := NEW.id + 100; RETURN NEW; END $$;
		CREATE TRIGGER bump BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION bump();
		SELECT shadow_track('t')`)
	db.Exec(t, "UPDATE t SET v = 'moved'") // the SET list names no key column
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(101,U)", "(1,D)"}, "")
}

func TestKeyChangedByUpsertRecordsTheOldKey(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'); SELECT shadow_track('t')")
	db.Exec(t, "INSERT INTO t VALUES (1, 'b') ON CONFLICT (id) DO UPDATE SET id = 7")
	assertShadowRows(t, db, "t", []string{"id"}, []string{"(7,U)", "(1,D)"}, "")
}

// Key changes in two tables of one transaction each record their old keys.
func TestKeyUpdatesOfTwoTablesInOneTransaction(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
		INSERT INTO a VALUES (1, 'a'), (2, 'b'); INSERT INTO b VALUES (1, 'a');
		SELECT shadow_track('a'), shadow_track('b')`)
	db.Exec(t, `BEGIN; UPDATE a SET id = id + 10; UPDATE b SET id = 5; UPDATE a SET id = 30 WHERE id = 11; COMMIT`)
	assertShadowRows(t, db, "a", []string{"id"}, []string{"(11,U)", "(12,U)", "(1,D)", "(2,D)", "(30,U)", "(11,D)"}, "")
	assertShadowRows(t, db, "b", []string{"id"}, []string{"(5,U)", "(1,D)"}, "")
}
