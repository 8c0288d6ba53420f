// Sync mode: each statement is applied on the target inside the writing
// transaction, the remote transaction commits at local pre-commit, and any
// remote failure aborts the local statement with an error naming the target.
package modes

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// newSyncPair is a source on a and a target on dst with table kv subscribed
// in sync mode; extraDst is extra DDL for the target's copy of kv.
func newSyncPair(t *testing.T, dst *pgtest.DB, extraDst string) *pair {
	t.Helper()
	p := &pair{Src: pgtest.NewDBWithExtension(t, pgtest.Server("a")), Dst: dst}
	link(t, p.Src, p.Dst, target)
	p.Both(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	if extraDst != "" {
		p.Dst.Exec(t, extraDst)
	}
	p.Subscribe(t, "kv", "mode => 'sync'")
	return p
}

// newSyncWriter is newSyncPair with a plain target database on server b,
// and w, a writing session of its own on the source.
func newSyncWriter(t *testing.T) (p *pair, w *pgx.Conn) {
	t.Helper()
	p = newSyncPair(t, pgtest.NewDB(t, pgtest.Server("b")), "")
	return p, p.Src.Conn(t)
}

// The target sees a sync statement's change when the local transaction
// commits, not before, and nothing is left for shadow_export to ship.
func TestSyncAppliesAtCommitOfTheWritingTransaction(t *testing.T) {
	t.Parallel()
	p, w := newSyncWriter(t)
	pgtest.Begin(t, w, "INSERT INTO kv VALUES (1, 'one'), (2, 'two')", "UPDATE kv SET v = 'uno' WHERE k = 1", "DELETE FROM kv WHERE k = 2")
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM kv"); n != 0 {
		t.Fatalf("target shows %d rows before the local COMMIT, want 0 (remote transaction still open)", n)
	}
	mustExec(t, w, "COMMIT")
	wantRows(t, p.Dst, "kv", "(1,uno)")

	// autocommit statements, and a key update
	p.Src.Exec(t, "INSERT INTO kv VALUES (3, 'three')")
	p.Src.Exec(t, "UPDATE kv SET k = 4 WHERE k = 3")
	wantRows(t, p.Dst, "kv", "(1,uno)", "(4,three)")
	p.Same(t, "kv")

	if n := p.Src.QueryInt(t, "SELECT count(*) FROM shadow_export($1)", target); n != 0 {
		t.Errorf("shadow_export listed %d tables for a target with only sync subscriptions, want 0", n)
	}
}

// A statement the target refuses (a constraint only the target has) fails
// locally with an error naming the target; nothing of it remains on either
// side, in autocommit and inside a transaction, and the session's next
// statements replicate normally.
func TestSyncTargetErrorAbortsTheLocalStatement(t *testing.T) {
	t.Parallel()
	p := newSyncPair(t, pgtest.NewDB(t, pgtest.Server("b")),
		"ALTER TABLE kv ADD CONSTRAINT no_bad CHECK (v <> 'bad')")
	w := p.Src.Conn(t)

	err := execErr(w, "INSERT INTO kv VALUES (1, 'ok'), (2, 'bad')")
	wantError(t, "autocommit insert refused by the target", err, `target "t1"`, "no_bad")
	wantRows(t, p.Src, "kv")
	wantRows(t, p.Dst, "kv")

	pgtest.Begin(t, w, "INSERT INTO kv VALUES (3, 'ok')")
	err = execErr(w, "UPDATE kv SET v = 'bad' WHERE k = 3")
	wantError(t, "update refused by the target inside a transaction", err, `target "t1"`, "no_bad")
	if err := execErr(w, "COMMIT"); err != nil {
		t.Fatalf("COMMIT of the aborted transaction: %s", pgtest.Describe(err))
	}
	wantRows(t, p.Src, "kv")
	wantRows(t, p.Dst, "kv")

	// the same session (its remote connection saw the failure) goes on
	mustExec(t, w, "INSERT INTO kv VALUES (5, 'five')")
	pgtest.Begin(t, w, "INSERT INTO kv VALUES (6, 'six')")
	mustExec(t, w, "COMMIT")
	wantRows(t, p.Dst, "kv", "(5,five)", "(6,six)")
	p.Same(t, "kv")
}

// A column added on the source of a sync subscription to all columns ships
// with each statement: while the target lacks it, writes fail there naming
// it (and nothing of them remains on either side); once it has it, they ship
// with the column.
func TestSyncShipsAColumnAddedOnTheSource(t *testing.T) {
	t.Parallel()
	p, w := newSyncWriter(t)
	mustExec(t, w, "INSERT INTO kv VALUES (1, 'one')")
	p.Src.Exec(t, "ALTER TABLE kv ADD COLUMN n int")
	err := execErr(w, "UPDATE kv SET n = 5 WHERE k = 1")
	wantError(t, "a write of a column the target lacks", err, `target "t1"`, `"n"`)
	wantRows(t, p.Src, "kv", "(1,one,)")
	p.Dst.Exec(t, "ALTER TABLE kv ADD COLUMN n int")
	mustExec(t, w, "UPDATE kv SET n = 5 WHERE k = 1")
	mustExec(t, w, "INSERT INTO kv VALUES (2, 'two', 7)")
	p.Same(t, "kv")
}

// A local ROLLBACK leaves nothing on the target, and does not leave the key
// locked there: another session writing the same key goes through.
func TestSyncRollbackLeavesNothingOnTheTarget(t *testing.T) {
	t.Parallel()
	p, w := newSyncWriter(t)
	pgtest.Begin(t, w, "INSERT INTO kv VALUES (1, 'rolled back')")
	mustExec(t, w, "ROLLBACK")
	wantRows(t, p.Src, "kv")
	wantRows(t, p.Dst, "kv")

	// w stays idle (a pooled session would); another writer takes the key
	other := p.Src.Conn(t)
	mustExec(t, other, "SET statement_timeout = '5s'")
	start := time.Now()
	if err := execErr(other, "INSERT INTO kv VALUES (1, 'second writer')"); err != nil {
		t.Fatalf("after a rolled-back sync insert of key 1 in an idle session, another session's insert of key 1 failed after %s "+
			"(the rolled-back remote transaction still holds the key on the target): %s",
			time.Since(start).Round(time.Millisecond), pgtest.Describe(err))
	}
	wantRows(t, p.Dst, "kv", "(1,\"second writer\")")
}

// A local transaction that idles between sync writes longer than
// pgshadow.sync_idle_timeout loses its remote transaction; its COMMIT then
// fails naming the target instead of committing locally only.
func TestSyncIdleTransactionFailsAtCommit(t *testing.T) {
	t.Parallel()
	p, w := newSyncWriter(t)
	mustExec(t, w, "SET pgshadow.sync_idle_timeout = '300ms'")
	pgtest.Begin(t, w, "INSERT INTO kv VALUES (1, 'idle too long')")
	time.Sleep(time.Second)
	wantError(t, "COMMIT after idling past pgshadow.sync_idle_timeout", execErr(w, "COMMIT"), `target "t1"`)
	wantRows(t, p.Src, "kv")
	wantRows(t, p.Dst, "kv")
	mustExec(t, w, "INSERT INTO kv VALUES (2, 'next')")
	p.Same(t, "kv")
}

// A deferred constraint queued up to the last replicated statement fails at
// COMMIT before the remote transaction commits, so the target gets nothing.
// (One queued after the last replicated statement is a documented limit.)
func TestSyncDeferredConstraintFailingAtCommitLeavesNothing(t *testing.T) {
	t.Parallel()
	p := newSyncPair(t, pgtest.NewDB(t, pgtest.Server("b")), "")
	p.Src.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)`)
	w := p.Src.Conn(t)
	pgtest.Begin(t, w, "INSERT INTO kv VALUES (1, 'first')")
	mustExec(t, w, "INSERT INTO child VALUES (99)") // fails at COMMIT
	mustExec(t, w, "INSERT INTO kv VALUES (2, 'last replicated')")
	wantError(t, "COMMIT with a failing deferred foreign key", execErr(w, "COMMIT"), "child_id_fkey")
	wantRows(t, p.Src, "kv")
	wantRows(t, p.Dst, "kv")
}

// TRUNCATE is applied on the target in the same transaction, also followed
// by inserts.
func TestSyncTruncate(t *testing.T) {
	t.Parallel()
	p := newSyncPair(t, pgtest.NewDB(t, pgtest.Server("b")), "")
	p.Src.Exec(t, "INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, 100) g")
	p.Src.Exec(t, "TRUNCATE kv")
	wantRows(t, p.Dst, "kv")

	p.Src.Exec(t, "INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, 10) g")
	p.Src.Exec(t, "BEGIN; TRUNCATE kv; INSERT INTO kv VALUES (42, 'after truncate'); COMMIT")
	wantRows(t, p.Dst, "kv", "(42,\"after truncate\")")

	p.Same(t, "kv")

	// a rolled-back TRUNCATE leaves the target's rows, and its table readable
	w := p.Src.Conn(t)
	pgtest.Begin(t, w, "TRUNCATE kv")
	mustExec(t, w, "ROLLBACK")
	reader := p.Dst.Conn(t)
	mustExec(t, reader, "SET lock_timeout = '5s'")
	if err := execErr(reader, "SELECT count(*) FROM kv"); err != nil {
		t.Fatalf("after a sync TRUNCATE was rolled back locally (its session now idle), the target's table cannot be read: %s", pgtest.Describe(err))
	}
	wantRows(t, p.Dst, "kv", "(42,\"after truncate\")")
}

// stmtCountSQL counts, on the target, statement-level trigger firings per
// operation into an untracked side table.
const stmtCountSQL = `
CREATE TABLE stmt_log (op text, n bigint);
CREATE FUNCTION count_stmt() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $f$
BEGIN
    INSERT INTO stmt_log VALUES (TG_OP, (SELECT count(*) FROM changed));
    RETURN NULL;
END $f$;
CREATE TRIGGER count_ins AFTER INSERT ON kv REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION count_stmt();
CREATE TRIGGER count_del AFTER DELETE ON kv REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION count_stmt();
CREATE TRIGGER count_upd AFTER UPDATE ON kv REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION count_stmt();`

// A 1,000-row statement costs one apply on the target (one DELETE of the
// keys and one INSERT of the rows), not one per row.
func TestSyncOneRoundTripPerStatement(t *testing.T) {
	t.Parallel()
	p := newSyncPair(t, pgtest.NewDB(t, pgtest.Server("b")), stmtCountSQL)
	stmts := func() []string {
		return p.Dst.QueryStrings(t, "SELECT op || ' ' || n FROM stmt_log ORDER BY ctid")
	}

	p.Dst.Exec(t, "TRUNCATE stmt_log") // what the initial copy ran
	p.Src.Exec(t, "INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, 1000) g")
	got := stmts()
	if len(got) != 2 || got[0] != "DELETE 0" || got[1] != "INSERT 1000" {
		t.Fatalf("a 1000-row INSERT ... SELECT ran these statements on the target: %q, want [\"DELETE 0\" \"INSERT 1000\"] (one apply)", got)
	}

	p.Dst.Exec(t, "TRUNCATE stmt_log")
	p.Src.Exec(t, "UPDATE kv SET v = v || '!'")
	if got := stmts(); len(got) != 2 || got[0] != "DELETE 1000" || got[1] != "INSERT 1000" {
		t.Fatalf("a 1000-row UPDATE ran these statements on the target: %q, want [\"DELETE 1000\" \"INSERT 1000\"]", got)
	}
	p.Same(t, "kv")
}

// An unreachable target (its server stopped) aborts the write with an error
// naming the target, leaves nothing locally, and writes work again once it
// is back, also in a session whose remote connection died with it.
func TestSyncUnreachableTargetAbortsTheWrite(t *testing.T) {
	d := pgtest.Server("d")
	p := newSyncPair(t, pgtest.NewDB(t, d), "")
	restartAtCleanup(t, d)
	old := p.Src.Conn(t) // its sync connection to the target will die with the server
	mustExec(t, old, "INSERT INTO kv VALUES (1, 'before')")

	if err := d.Kill(); err != nil {
		t.Fatalf("%v", err)
	}
	start := time.Now()
	err := p.Src.ExecErr("INSERT INTO kv VALUES (2, 'while down')")
	wantError(t, "insert in a new session while the target is down", err, `target "t1"`)
	t.Logf("new session: %s (after %s)", pgtest.Describe(err), time.Since(start).Round(time.Millisecond))
	err = execErr(old, "INSERT INTO kv VALUES (3, 'while down')")
	wantError(t, "insert in a session whose remote connection died", err, `target "t1"`)
	t.Logf("old session: %s", pgtest.Describe(err))
	wantRows(t, p.Src, "kv", "(1,before)")

	if err := d.Restart(context.Background()); err != nil {
		t.Fatalf("%v", err)
	}
	p.Src.Exec(t, "INSERT INTO kv VALUES (4, 'after')")
	if err := execErr(old, "INSERT INTO kv VALUES (5, 'after')"); err != nil {
		t.Errorf("after the target came back, a session whose remote connection had died still cannot write: %s", pgtest.Describe(err))
	}
	p.Same(t, "kv")
}
