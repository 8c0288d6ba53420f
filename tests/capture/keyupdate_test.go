package capture_test

// Capture records old keys only for rows whose key changed (the key trigger,
// a row trigger whose WHEN compares OLD and NEW keys); these tests pin every
// way a key can change.

import "testing"

// Each case creates and tracks table t (setup), runs writes, each in a
// transaction of its own, and pins the shadow rows over the key columns.
func TestKeyChangesRecordTheRightKeys(t *testing.T) {
	for _, c := range []struct {
		name, setup string
		writes      []string
		key, want   []string
	}{{
		name:   "NonKeyUpdateRecordsOnlyTheNewKeys",
		setup:  "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')",
		writes: []string{"UPDATE t SET v = 'x'"},
		key:    []string{"id"},
		want:   []string{"(1,U)", "(2,U)"},
	}, {
		name:  "KeyUpdateNamedInSetRecordsOldAndNewKeys",
		setup: "CREATE TABLE t (a int, b int, v text, PRIMARY KEY (a, b)); INSERT INTO t VALUES (1, 1, 'a'), (2, 2, 'b')",
		writes: []string{
			// only the second key column is named; the old key must still be recorded
			"UPDATE t SET b = b + 10 WHERE a = 1",
			// and a later non-key update in the same transaction is still right
			"BEGIN; UPDATE t SET a = 5 WHERE a = 2; UPDATE t SET v = 'z' WHERE a = 5; COMMIT",
		},
		key:  []string{"a", "b"},
		want: []string{"(1,11,U)", "(1,1,D)", "(5,2,U)", "(2,2,D)", "(5,2,U)"},
	}, {
		name: "KeyChangedByBeforeTriggerRecordsTheOldKey",
		setup: `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
			CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.id := NEW.id + 100; RETURN NEW; END $$;
			CREATE TRIGGER bump BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION bump()`,
		writes: []string{"UPDATE t SET v = 'moved'"}, // the SET list names no key column
		key:    []string{"id"},
		want:   []string{"(101,U)", "(1,D)"},
	}, {
		name:   "KeyChangedByUpsertRecordsTheOldKey",
		setup:  "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')",
		writes: []string{"INSERT INTO t VALUES (1, 'b') ON CONFLICT (id) DO UPDATE SET id = 7"},
		key:    []string{"id"},
		want:   []string{"(7,U)", "(1,D)"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			db := newDB(t)
			db.Exec(t, c.setup+"; SELECT shadow_track('t')")
			db.ExecEach(t, c.writes...)
			assertShadowRows(t, db, "t", c.key, c.want, "")
		})
	}
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
