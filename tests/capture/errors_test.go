package capture_test

// Tables pgshadow cannot track are refused with an error that names them,
// and a refused shadow_track leaves nothing behind.

import (
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// 63 bytes is PostgreSQL's identifier limit; these two make a derived shadow
// name (schema + "__" + table) of 30 + 2 + 32 = 64 bytes while each is legal.
const (
	longSchema = "schema_name_of_thirty_bytes_xx"
	longTable  = "table_name_of_thirty_two_bytes_x"
)

func TestTrackRefusesWhatItCannotCapture(t *testing.T) {
	if len(longSchema)+2+len(longTable) != 64 {
		t.Fatalf("test constants: derived name is %d bytes, want 64", len(longSchema)+2+len(longTable))
	}
	cases := []struct {
		name  string
		setup string
		table string // as passed to shadow_track
		code  string
		names string // what the message must contain
	}{
		{"no_primary_key", `CREATE TABLE nopk_t (id int UNIQUE NOT NULL, v text)`, "nopk_t", "42P16", "nopk_t"},
		{"temporary_table", `CREATE TEMP TABLE temp_t (id int PRIMARY KEY)`, "temp_t", "42809", "temp_t"},
		{"unlogged_table", `CREATE UNLOGGED TABLE unlogged_t (id int PRIMARY KEY)`, "unlogged_t", "42809", "unlogged_t"},
		{"shadow_name_too_long",
			`CREATE SCHEMA ` + longSchema + `; CREATE TABLE ` + longSchema + `.` + longTable + ` (id int PRIMARY KEY)`,
			longSchema + "." + longTable, "42622", longTable},
		{"sub-partitioned_partition", `CREATE TABLE parted_root (id int PRIMARY KEY) PARTITION BY RANGE (id);
			CREATE TABLE parted_t PARTITION OF parted_root FOR VALUES FROM (0) TO (100) PARTITION BY RANGE (id)`,
			"parted_t", "0A000", "parted_root"},
		{"partition", `CREATE TABLE parent_t (id int PRIMARY KEY) PARTITION BY RANGE (id);
			CREATE TABLE partition_t PARTITION OF parent_t FOR VALUES FROM (0) TO (100)`,
			"partition_t", "0A000", "partition_t"},
		{"view", `CREATE TABLE base_t (id int PRIMARY KEY); CREATE VIEW view_t AS SELECT * FROM base_t`,
			"view_t", "42809", "view_t"},
		{"materialized_view", `CREATE MATERIALIZED VIEW matview_t AS SELECT 1 AS id`, "matview_t", "42809", "matview_t"},
		{"sequence", `CREATE SEQUENCE seq_t`, "seq_t", "42809", "seq_t"},
		{"reserved_key_column_name", `CREATE TABLE reserved_t (shadow_xid int PRIMARY KEY)`,
			"reserved_t", "42P16", "reserved_t"},
		// schema "public__x" table "y" and schema "public" table "x__y" both
		// derive the shadow name public__x__y
		{"shadow_name_taken", `CREATE SCHEMA public__x; CREATE TABLE public__x.y (id int PRIMARY KEY);
			SELECT shadow_track('public__x.y');
			CREATE TABLE x__y (id int PRIMARY KEY)`, "x__y", "42P07", "x__y"},
	}
	db := newDB(t)
	c := session(t, db) // one session: temporary tables are private to it
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run(t, c, tc.setup)
			tracked := text(t, c, "SELECT count(*)::text FROM pgshadow.tracked")
			err := runErr(t, c, "SELECT shadow_track($1)", tc.table)
			assertError(t, err, "shadow_track('"+tc.table+"')", tc.code, tc.names)
			if got := text(t, c, "SELECT count(*)::text FROM pgshadow.tracked"); got != tracked {
				t.Errorf("refused shadow_track changed pgshadow.tracked from %s to %s rows", tracked, got)
			}
			trigs := text(t, c, `SELECT coalesce(string_agg(tgname, ', '), '') FROM pg_trigger
				WHERE tgrelid = $1::regclass AND tgname LIKE 'pgshadow%'`, tc.table)
			if trigs != "" {
				t.Errorf("refused shadow_track left triggers on %s: %s", tc.table, trigs)
			}
		})
	}
}

func TestTrackOfAMissingTableNamesIt(t *testing.T) {
	db := newDB(t)
	err := db.ExecErr("SELECT shadow_track('no_such_table')")
	assertError(t, err, "shadow_track('no_such_table')", "42P01", "no_such_table")
}

// Dropping a primary key column is refused by PostgreSQL itself while the
// shadow exists only as a name; a changed key must not silently keep the
// old capture statements.
func TestTrackAgainAfterThePrimaryKeyChangedIsRefused(t *testing.T) {
	db := newDB(t)
	// without the key watch (installs by a non-superuser have none)
	db.Exec(t, `ALTER EVENT TRIGGER pgshadow_key_watch DISABLE;
		CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL); SELECT shadow_track('t');
		ALTER TABLE t DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (id, k)`)
	err := db.ExecErr("SELECT shadow_track('t')")
	assertError(t, err, "shadow_track after the key changed", "", "t")
	if err != nil && !strings.Contains(err.Error(), "primary key") {
		t.Errorf("error does not say the primary key changed: %s", pgtest.Describe(err))
	}
}
