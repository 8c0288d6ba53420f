// Readers of a file target are never locked out by an import: a full copy
// replaces the rows by DELETE inside the import's transaction, as push mode
// does, so a second session keeps reading the old rows until it commits.
package filemode_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// An import of a large full copy is held mid-load (a row trigger on the
// destination waits for an advisory lock the test holds); meanwhile a second
// session reads the table under a lock timeout: it must see the old rows at
// once, not wait for the import's commit.
func TestFullCopyImportKeepsTargetReadable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.SrcAndFiles(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	e.fillLarge(t, "t", 200000)
	e.SubscribeFiles(t, "t")
	dir := e.Export(t)

	e.Files.Exec(t, "INSERT INTO t SELECT g, 'old' FROM generate_series(1, 1000) g")
	e.Files.Exec(t, `CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
		BEGIN
		    IF NEW.id = 100000 THEN PERFORM pg_advisory_xact_lock(4711); END IF;
		    RETURN NEW;
		END $$`)
	e.Files.Exec(t, "CREATE TRIGGER hold BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION public.hold()")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	holder := connect(t, e.Files)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(4711)"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.ImportErr(t, dir)
		done <- err
	}()
	// the import is mid-load once it waits for the advisory lock
	pgtest.Eventually(t, time.Minute, func() (bool, string) {
		n := e.Files.QueryInt(t, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
		return n == 1, "the import does not wait in the destination's trigger"
	})

	reader := connect(t, e.Files)
	if _, err := reader.Exec(ctx, "SET lock_timeout = '5s'"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var n int64
	var v string
	err := reader.QueryRow(ctx, "SELECT count(*), min(v) FROM t").Scan(&n, &v)
	wait := time.Since(start)
	t.Logf("read during the import took %v", wait)
	if err != nil {
		t.Errorf("read during the import: %s", pgtest.Describe(err))
	} else if n != 1000 || v != "old" {
		t.Errorf("read during the import saw %d rows (min %q), want the 1000 old rows", n, v)
	}

	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock(4711)"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("import: %s", pgtest.Describe(err))
	}
	e.Files.Exec(t, "DROP TRIGGER hold ON t")
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}
