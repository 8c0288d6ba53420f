// Ship streams a file target's batch from the source into the target
// database with no files: it ends where export + import end, changes nothing
// when run again, leaves both sides as they were when it fails before the
// target commits, and continues the same batch chain as import.
package filemode_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// ShipErr ships the file target from the source into e.Files over fresh
// connections (or dst, when given).
func (e *env) ShipErr(t *testing.T, o filemode.ShipOptions, dst ...*pgx.Conn) (*filemode.ShipResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if o.Target == "" {
		o.Target = fileTarget
	}
	d := connect(t, e.Files)
	if len(dst) > 0 {
		d = dst[0]
	}
	return filemode.Ship(ctx, connect(t, e.Src), d, o)
}

// Ship ships the file target into e.Files, failing the test on error.
func (e *env) Ship(t *testing.T) *filemode.ShipResult {
	t.Helper()
	res, err := e.ShipErr(t, filemode.ShipOptions{})
	if err != nil {
		t.Fatalf("ship: %s", pgtest.Describe(err))
	}
	return res
}

// shipped renders a ship's tables as "dest batch n: outcome, keys/deleted/inserted".
func shipped(res *filemode.ShipResult) []string {
	var out []string
	for i, tb := range res.Manifest.Tables {
		r := res.Tables[i]
		out = append(out, fmt.Sprintf("%s batch %d: %s full=%t keys=%d deleted=%d inserted=%d",
			tb.Dest, tb.BatchNo, r.Outcome, tb.FullCopy, tb.Keys, r.Deleted, r.Inserted))
	}
	return out
}

func wantShipped(t *testing.T, what string, res *filemode.ShipResult, want ...string) {
	t.Helper()
	if got := shipped(res); !slices.Equal(got, want) {
		t.Errorf("%s shipped\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// bookkeeping is the target's record of applied batches, row by row.
func bookkeeping(t *testing.T, d *pgtest.DB) []string {
	t.Helper()
	return d.QueryStrings(t, `SELECT dest || ' ' || batch_no || ' ' || new_snapshot || ' ' || manifest_sha256 || ' ' || batch_dir
		FROM pgshadow_import.batches ORDER BY dest`)
}

// Inserts, updates, deletes and key updates in two tables (one with a
// composite key in another order than its columns) ship into the target
// and leave it equal to the source; a second ship changes nothing.
func TestShipReplicatesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnvWithT(t, 100)
	e.SrcAndFiles(t, "CREATE TABLE lines (order_id bigint, line int, item text, PRIMARY KEY (line, order_id))")
	e.Src.Exec(t, "INSERT INTO lines SELECT o, l, 'item ' || l FROM generate_series(1, 10) o, generate_series(1, 3) l")
	e.SubscribeFiles(t, "lines")

	wantShipped(t, "first ship", e.Ship(t),
		"public.t batch 1: applied full=true keys=0 deleted=0 inserted=100",
		"public.lines batch 1: applied full=true keys=0 deleted=0 inserted=30")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
	pgtest.AssertSameRows(t, e.Src, "lines", e.Files, "lines")

	e.Src.Exec(t, `INSERT INTO t VALUES (101, 'new'), (102, NULL);
		UPDATE t SET v = 'upd' WHERE id BETWEEN 10 AND 19;
		DELETE FROM t WHERE id BETWEEN 50 AND 54;
		UPDATE t SET id = id + 1000 WHERE id IN (1, 2, 3);
		UPDATE lines SET line = line + 10 WHERE order_id = 4;
		DELETE FROM lines WHERE order_id = 5`)
	// t: 2 inserted + 10 updated + 5 deleted + 3 keys moved (old and new)
	// = 23 keys, 18 of them on the target, 15 live; lines: 3 moved (6 keys)
	// + 3 deleted
	wantShipped(t, "second ship", e.Ship(t),
		"public.t batch 2: applied full=false keys=23 deleted=18 inserted=15",
		"public.lines batch 2: applied full=false keys=9 deleted=6 inserted=3")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
	pgtest.AssertSameRows(t, e.Src, "lines", e.Files, "lines")

	versions, lineVersions, books := rowVersions(t, e.Files, "t"), rowVersions(t, e.Files, "lines"), bookkeeping(t, e.Files)
	before := e.watermark(t, "t")
	res := e.Ship(t)
	if len(res.Manifest.Tables) != 0 || !slices.Equal(res.Unchanged, []string{"public.t", "public.lines"}) {
		t.Errorf("ship with nothing pending shipped %v, unchanged %v; want nothing shipped and both tables unchanged", shipped(res), res.Unchanged)
	}
	if got := rowVersions(t, e.Files, "t"); !slices.Equal(got, versions) {
		t.Errorf("ship with nothing pending rewrote rows of t")
	}
	if got := rowVersions(t, e.Files, "lines"); !slices.Equal(got, lineVersions) {
		t.Errorf("ship with nothing pending rewrote rows of lines")
	}
	if got := bookkeeping(t, e.Files); !slices.Equal(got, books) {
		t.Errorf("ship with nothing pending changed pgshadow_import.batches from %v to %v", books, got)
	}
	if got := e.watermark(t, "t"); got != before {
		t.Errorf("ship with nothing pending moved the watermark from %s to %s", before, got)
	}

	// one table changed: only it ships, the other keeps its batch number
	e.Src.Exec(t, "UPDATE lines SET item = 'x' WHERE order_id = 1")
	wantShipped(t, "ship of one changed table", e.Ship(t), "public.lines batch 3: applied full=false keys=3 deleted=3 inserted=3")
	if got := e.watermark(t, "t"); got != before {
		t.Errorf("ship of lines moved t's watermark from %s to %s", before, got)
	}
	pgtest.AssertSameRows(t, e.Src, "lines", e.Files, "lines")
}

// shipFixture is a source with tables t and big shipped once into the
// target, then changed: the pending batch 2 of each is what the failure
// tests ship.
func shipFixture(t *testing.T) *env {
	t.Helper()
	e := newEnvWithT(t, 50)
	e.SrcAndFiles(t, "CREATE TABLE big (id int PRIMARY KEY, pad text)")
	e.Src.Exec(t, "INSERT INTO big SELECT g, repeat('p', 400) FROM generate_series(1, 50000) g")
	e.SubscribeFiles(t, "big")
	e.Ship(t)
	e.Src.Exec(t, "UPDATE t SET v = 'changed' WHERE id <= 10; DELETE FROM t WHERE id = 50; UPDATE big SET pad = 'q' || pad")
	return e
}

// shipsFixtureBatch ships shipFixture's pending batch 2 whole and checks
// the target ends equal to the source.
func (e *env) shipsFixtureBatch(t *testing.T, what string) {
	t.Helper()
	wantShipped(t, what, e.Ship(t),
		"public.t batch 2: applied full=false keys=11 deleted=11 inserted=10",
		"public.big batch 2: applied full=false keys=50000 deleted=50000 inserted=50000")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
	pgtest.AssertSameRows(t, e.Src, "big", e.Files, "big")
}

// unchangedBy runs act and fails unless the target's tables and bookkeeping are what they
// were and the source's watermarks did not move.
func (e *env) unchangedBy(t *testing.T, what string, act func()) {
	t.Helper()
	tv, bv, books := rowVersions(t, e.Files, "t"), rowVersions(t, e.Files, "big"), bookkeeping(t, e.Files)
	wt, wb := e.watermark(t, "t"), e.watermark(t, "big")
	act()
	if !slices.Equal(rowVersions(t, e.Files, "t"), tv) || !slices.Equal(rowVersions(t, e.Files, "big"), bv) {
		t.Errorf("%s changed rows on the target", what)
	}
	if got := bookkeeping(t, e.Files); !slices.Equal(got, books) {
		t.Errorf("%s changed pgshadow_import.batches from %v to %v", what, books, got)
	}
	if e.watermark(t, "t") != wt || e.watermark(t, "big") != wb {
		t.Errorf("%s moved a watermark on the source", what)
	}
}

// A destination table that is missing fails the ship naming the table; the
// target and the watermarks stay as they were (checked once the table is
// back under its name), the cause shows in shadow_status, and then the next
// ship converges.
func TestShipMissingTableChangesNothing(t *testing.T) {
	t.Parallel()
	e := shipFixture(t)
	e.unchangedBy(t, "a ship into a target without big", func() {
		e.Files.Exec(t, "ALTER TABLE big RENAME TO big_away")
		_, err := e.ShipErr(t, filemode.ShipOptions{})
		if err == nil || !strings.Contains(err.Error(), "public.big") || !strings.Contains(err.Error(), `relation "public.big" does not exist`) ||
			!strings.Contains(err.Error(), "stays pending") {
			t.Errorf("ship into a target without big returned %v, want an error naming public.big and its cause", err)
		}
		e.Files.Exec(t, "ALTER TABLE big_away RENAME TO big")
	})
	if msg := e.Src.QueryString(t, "SELECT coalesce(max(last_error), '<none>') FROM shadow_status WHERE target = $1", fileTarget); !strings.Contains(msg, "pgshadow ship:") || !strings.Contains(msg, "does not exist") {
		t.Errorf("shadow_status.last_error after the failed ship is %q, want the cause", msg)
	}

	e.shipsFixtureBatch(t, "ship after the fix")
}

// The target's connection is terminated while big's rows stream (a trigger
// holds the COPY at its first row, the source waits to send the rest): the
// ship fails naming the table, the target and the watermarks are unchanged,
// the source connection is still usable, and the next ship converges.
func TestShipTargetConnectionKilledMidStream(t *testing.T) {
	t.Parallel()
	e := shipFixture(t)
	e.Files.Exec(t, `CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		    IF current_setting('stall.done', true) IS DISTINCT FROM 'yes' THEN
		        PERFORM set_config('stall.done', 'yes', true);
		        PERFORM pg_sleep(60);
		    END IF;
		    RETURN NEW;
		END $$;
		CREATE TRIGGER stall BEFORE INSERT ON big FOR EACH ROW EXECUTE FUNCTION stall()`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src, dst := connect(t, e.Src), connect(t, e.Files)
	e.unchangedBy(t, "a ship whose target connection was killed", func() {
		done := make(chan error, 1)
		go func() {
			_, err := filemode.Ship(ctx, src, dst, filemode.ShipOptions{Target: fileTarget})
			done <- err
		}()
		pid := dst.PgConn().PID()
		pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
			ev := e.Files.QueryString(t, "SELECT coalesce(max(wait_event), '<none>') FROM pg_stat_activity WHERE pid = $1", pid)
			return ev == "PgSleep", "the ship's COPY into big waits on " + ev + ", want PgSleep"
		})
		// 20 MB of rows do not fit in the sockets' buffers: a source still
		// waiting to send them shows the two COPYs run at once
		pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
			st := e.Src.QueryString(t, "SELECT coalesce(max(state || ' ' || coalesce(wait_event, '-') || ' ' || left(query, 4)), '<none>') FROM pg_stat_activity WHERE pid = $1",
				src.PgConn().PID())
			return st == "active ClientWrite COPY", "the source's backend is " + st + ", want active ClientWrite COPY (streaming)"
		})
		e.Files.Exec(t, "SELECT pg_terminate_backend($1)", pid)
		err := <-done
		if err == nil || !strings.Contains(err.Error(), "public.big") || !strings.Contains(err.Error(), "write to the destination") {
			t.Fatalf("ship with its target connection killed returned %v, want an error naming public.big and the destination", err)
		}
		t.Logf("failed as expected: %v", err)
	})
	var one int
	if err := src.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("the source connection is unusable after the target failed mid-stream: %v", err)
	}

	e.Files.Exec(t, "DROP TRIGGER stall ON big")
	e.shipsFixtureBatch(t, "ship after the kill")
}

// A failure after the target committed and before the source acknowledged
// leaves the batch pending; the next ship applies it again, superseding the
// first, and the chain goes on.
func TestShipFailureBetweenCommits(t *testing.T) {
	t.Parallel()
	e := shipFixture(t)
	before := e.watermark(t, "t")
	_, err := e.ShipErr(t, filemode.ShipOptions{BeforeDone: func() error { return errors.New("simulated crash") }})
	if err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("ship with a failing BeforeDone returned %v, want the simulated crash", err)
	}
	if got := e.watermark(t, "t"); got != before {
		t.Errorf("ship failing before the source acknowledged moved the watermark from %s to %s", before, got)
	}
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t") // the target did commit

	e.Src.Exec(t, "UPDATE t SET v = 'again' WHERE id = 20")
	wantShipped(t, "ship after the failure", e.Ship(t),
		"public.t batch 2: applied full=false keys=12 deleted=11 inserted=11",
		"public.big batch 2: applied full=false keys=50000 deleted=50000 inserted=50000")
	e.Src.Exec(t, "UPDATE t SET v = 'third' WHERE id = 30")
	wantShipped(t, "next ship", e.Ship(t), "public.t batch 3: applied full=false keys=1 deleted=1 inserted=1")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
	pgtest.AssertSameRows(t, e.Src, "big", e.Files, "big")
}

// Ship and export + import feed one chain: they take turns on a target in
// any order; a ship after an export whose batch was not imported yet is
// refused without changing anything, and goes through once it is imported.
func TestShipAndImportShareTheChain(t *testing.T) {
	t.Parallel()
	e := newEnvWithT(t, 40)

	e.Import(t, e.Export(t)) // batch 1, full copy
	e.Src.Exec(t, "UPDATE t SET v = 'two' WHERE id <= 5")
	wantShipped(t, "ship after import", e.Ship(t), "public.t batch 2: applied full=false keys=5 deleted=5 inserted=5")
	e.Src.Exec(t, "DELETE FROM t WHERE id = 40")
	res := e.Import(t, e.Export(t))
	if r := res.Tables[0]; r.BatchNo != 3 || r.Outcome != filemode.Applied {
		t.Errorf("import after ship: batch %d %s, want batch 3 applied", r.BatchNo, r.Outcome)
	}
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")

	// batch 4 exported, not imported: the ship of batch 5 is refused
	e.Src.Exec(t, "UPDATE t SET v = 'four' WHERE id = 7")
	dir4 := e.Export(t)
	e.Src.Exec(t, "UPDATE t SET v = 'five' WHERE id = 8")
	before := e.watermark(t, "t")
	versions := rowVersions(t, e.Files, "t")
	_, err := e.ShipErr(t, filemode.ShipOptions{})
	wantRefused(t, err, "public.t batch 5", "expected batch 4")
	if got := e.watermark(t, "t"); got != before {
		t.Errorf("refused ship moved the watermark from %s to %s", before, got)
	}
	if !slices.Equal(rowVersions(t, e.Files, "t"), versions) {
		t.Errorf("refused ship changed rows on the target")
	}
	e.Import(t, dir4)
	wantShipped(t, "ship after importing batch 4", e.Ship(t), "public.t batch 5: applied full=false keys=1 deleted=1 inserted=1")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}

// ship through the binary: the source from PG* variables, the target by
// connection string; what it did on stdout, failures as one line.
func TestCLIShip(t *testing.T) {
	t.Parallel()
	e := newEnvWithT(t, 100)
	bin := pgshadowBinary(t)
	srcEnv, dst := pgEnv(e.Src), e.Files.ConnString()

	cli(t, bin, srcEnv, "ship", "-dest", dst, "-target", fileTarget).wantOK(t, "ship",
		`shipped target "files"`, "database "+e.Files.Name, "public.t -> public.t  batch 1: full copy: 100 rows")
	e.Src.Exec(t, "UPDATE t SET v = 'x' WHERE id <= 10; DELETE FROM t WHERE id = 100")
	cli(t, bin, srcEnv, "ship", "--dest", dst, "--target", fileTarget).wantOK(t, "second ship",
		"public.t -> public.t  batch 2: 11 changed keys, 11 rows deleted by key, 10 rows written")
	cli(t, bin, srcEnv, "ship", "-dest", dst, "-target", fileTarget).wantOK(t, "ship with nothing pending",
		`nothing pending for target "files": nothing shipped`, "public.t: nothing pending")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")

	e.Src.Exec(t, "UPDATE t SET v = 'y' WHERE id = 1")
	e.Files.Exec(t, "ALTER TABLE t RENAME TO t_away")
	cli(t, bin, srcEnv, "ship", "-dest", dst, "-target", fileTarget).wantFailure(t, "ship into a target without the table",
		"pgshadow ship: ship public.t to public.t batch 3:", `relation "public.t" does not exist`, "the batch stays pending")
	e.Files.Exec(t, "ALTER TABLE t_away RENAME TO t")
	cli(t, bin, srcEnv, "ship", "-dest", dst, "-target", fileTarget).wantOK(t, "ship after the fix", "batch 3: 1 changed keys")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")

	cli(t, bin, srcEnv, "ship", "-target", fileTarget).wantFailure(t, "ship without -dest", "-dest")
	cli(t, bin, srcEnv, "ship", "-dest", dst, "-target", "nope").wantFailure(t, "ship of an unknown target", `target "nope" does not exist`)
	cli(t, bin, srcEnv, "ship", "-dest", dst, "-target", pushTarget).wantFailure(t, "ship of a push target", "shadow_export('push')")
	cli(t, bin, srcEnv, "ship", "-dest", "host=127.0.0.1 port=1 connect_timeout=5", "-target", fileTarget).wantFailure(t, "ship to no server", "pgshadow ship: destination:")
}
