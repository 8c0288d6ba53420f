package capture_test

// Capture costs one trigger call per statement, not per row.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h)
const (
	trigRow      = 1 << 0
	trigBefore   = 1 << 1
	trigInsert   = 1 << 2
	trigDelete   = 1 << 3
	trigUpdate   = 1 << 4
	trigTruncate = 1 << 5
	trigInstead  = 1 << 6
)

func TestCaptureTriggersAreAfterStatementTriggersWithTransitionTables(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); SELECT shadow_track('t')")
	type trig struct {
		event            int
		oldTable, newTab bool
		fn               string
	}
	want := map[string]trig{
		// the table's own capture function (pgshadow.<shadow>_fn)
		"pgshadow_capture_ins":   {trigInsert, false, true, "pgshadow.public__t_fn()"},
		"pgshadow_capture_upd":   {trigUpdate, false, true, "pgshadow.public__t_fn()"},
		"pgshadow_capture_del":   {trigDelete, true, false, "pgshadow.public__t_fn()"},
		"pgshadow_capture_trunc": {trigTruncate, false, false, "pgshadow.public__t_fn()"},
		// a row trigger WHEN a row's key changed: records the old key
		"pgshadow_capture_key": {trigUpdate, false, false, "pgshadow.public__t_fn()"},
	}
	rows := db.QueryStrings(t, `
		SELECT format('%s|%s|%s|%s|%s', tgname, tgtype, tgoldtable IS NOT NULL, tgnewtable IS NOT NULL, tgfoid::regprocedure)
		  FROM pg_trigger WHERE tgrelid = 't'::regclass AND NOT tgisinternal ORDER BY tgname`)
	if len(rows) != len(want) {
		t.Errorf("t has %d triggers, want the %d capture triggers: %v", len(rows), len(want), rows)
	}
	for _, r := range rows {
		f := strings.Split(r, "|")
		name, fn, hasOld, hasNew := f[0], f[4], f[2] == "t", f[3] == "t"
		tgtype, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("trigger row %q: tgtype: %v", r, err)
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected trigger %s on t", r)
			continue
		}
		if isRow, wantRow := tgtype&trigRow != 0, name == "pgshadow_capture_key"; isRow != wantRow {
			t.Errorf("%s: FOR EACH ROW is %t (tgtype %d), want %t", name, isRow, tgtype, wantRow)
		}
		if tgtype&(trigBefore|trigInstead) != 0 {
			t.Errorf("%s is not an AFTER trigger (tgtype %d)", name, tgtype)
		}
		if events := tgtype & (trigInsert | trigDelete | trigUpdate | trigTruncate); events != w.event {
			t.Errorf("%s fires on event bits %b, want %b", name, events, w.event)
		}
		if hasOld != w.oldTable || hasNew != w.newTab {
			t.Errorf("%s: old transition table %t, new %t; want %t, %t", name, hasOld, hasNew, w.oldTable, w.newTab)
		}
		if fn != w.fn {
			t.Errorf("%s executes %s, want %s", name, fn, w.fn)
		}
	}
}

const millionRows = 1_000_000

func TestMillionRowUpdateIsCapturedByOneTriggerCall(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the 1M-row update takes 10 to 25 s on a loaded 2-core machine")
	}
	db := newDB(t)
	db.Exec(t, fmt.Sprintf(`CREATE TABLE big (id int PRIMARY KEY, v int);
		INSERT INTO big SELECT g, g FROM generate_series(1, %d) g;
		SELECT shadow_track('big')`, millionRows))
	c := session(t, db)
	run(t, c, "SET track_functions = 'pl'")
	calls := func() int64 {
		run(t, c, "SELECT pg_stat_clear_snapshot()")
		n, _ := strconv.ParseInt(text(t, c, `SELECT coalesce(
			(SELECT calls FROM pg_stat_user_functions WHERE funcid = 'pgshadow.public__big_fn()'::regprocedure), 0)::text`), 10, 64)
		return n
	}
	before := calls()

	run(t, c, "BEGIN")
	start := time.Now()
	run(t, c, "UPDATE big SET v = v + 1")
	took := time.Since(start)
	inTx := text(t, c, `SELECT coalesce(
		(SELECT calls FROM pg_stat_xact_user_functions WHERE funcid = 'pgshadow.public__big_fn()'::regprocedure), 0)::text`)
	xid := text(t, c, "SELECT pg_current_xact_id()::text")
	run(t, c, "COMMIT")
	t.Logf("UPDATE of %d rows with capture took %s", millionRows, took)

	if inTx != "1" {
		t.Errorf("pgshadow.public__big_fn() was called %s times in the updating transaction, want 1", inTx)
	}
	if limit := 60 * time.Second; took > limit {
		t.Errorf("UPDATE of %d tracked rows took %s, want under %s", millionRows, took, limit)
	}
	got := db.QueryString(t, `SELECT format('%s rows, %s distinct keys, ops %s, xids %s',
		count(*), count(DISTINCT id), string_agg(DISTINCT shadow_op::text, ','), string_agg(DISTINCT shadow_xid::text, ','))
		FROM pgshadow.public__big`)
	want := fmt.Sprintf("%d rows, %d distinct keys, ops U, xids %s", millionRows, millionRows, xid)
	if got != want {
		t.Errorf("shadow table after the UPDATE: %s; want %s", got, want)
	}

	// cumulative statistics arrive when the session flushes them, at most a
	// second or so after the transaction (PostgreSQL 13 and 14 have no
	// pg_stat_force_next_flush: their sessions send statistics to the
	// collector when idle, which the polling below makes them be)
	if text(t, c, "SELECT (current_setting('server_version_num')::int >= 150000)::text") == "true" {
		run(t, c, "SELECT pg_stat_force_next_flush()")
	}
	var after int64
	pgtest.Eventually(t, 15*time.Second, func() (bool, string) {
		after = calls()
		return after != before, fmt.Sprintf("pg_stat_user_functions.calls for pgshadow.public__big_fn() still %d", after)
	})
	if after != before+1 {
		t.Errorf("pg_stat_user_functions.calls for pgshadow.public__big_fn() went from %d to %d for one UPDATE of %d rows, want +1",
			before, after, millionRows)
	}
}
