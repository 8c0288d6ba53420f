package continuity

import (
	"context"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// shadow_export inside a REPEATABLE READ or SERIALIZABLE transaction: a
// change another session commits meanwhile is invisible to the export's
// snapshot. Its purge must not take the partition holding it for shipped.
func TestPushExportInsideSnapshotIsolation(t *testing.T) {
	for _, level := range []string{"REPEATABLE READ", "SERIALIZABLE"} {
		t.Run(level, func(t *testing.T) {
			e := newEnv(t, pgtest.Server("old"))
			e.Src.Exec(t, tableDDL)
			e.Push.Exec(t, tableDDL)
			e.Src.Exec(t, "SELECT shadow_subscribe($1, 'tbl')", pushTarget)
			e.Src.Exec(t, "INSERT INTO tbl VALUES (1, 'shipped by the old snapshot')")

			a := connect(t, e.Src)
			mustExec(t, a, "BEGIN ISOLATION LEVEL "+level)
			mustExec(t, a, "SELECT 1") // the snapshot is taken here
			e.Src.Exec(t, "INSERT INTO tbl VALUES (2, 'committed during the export')")
			mustExec(t, a, "SELECT count(*) FROM shadow_export($1)", pushTarget)
			mustExec(t, a, "COMMIT")

			e.pushExport(t)
			pgtest.AssertSameRows(t, e.Src, "tbl", e.Push, "tbl")
			// and a READ COMMITTED export purges what is shipped
			e.pushExport(t)
			if held := heldKeys(t, e.Src); held != 0 {
				t.Errorf("%d keys still held after everything shipped under READ COMMITTED", held)
			}
		})
	}
}

// `pgshadow export` runs in one REPEATABLE READ transaction. Changes
// committed while it writes its files (here with a push export to the other
// target in between) reach the file target with the next export.
func TestFileExportKeepsChangesCommittedDuringTheRun(t *testing.T) {
	e := newEnv(t, pgtest.Server("old"))
	e.setup(t)
	e.Src.Exec(t, "INSERT INTO tbl VALUES (1001, 'r0')")
	e.pushExport(t)
	e.Src.Exec(t, "INSERT INTO tbl VALUES (1002, 'r1')")
	e.pushExport(t)

	res, err := e.fileExportErr(t, filemode.ExportOptions{BeforeDone: func(string) error {
		e.Src.Exec(t, "INSERT INTO tbl VALUES (1003, 'committed during the file export')")
		e.pushExport(t)
		return nil
	}})
	if err != nil {
		t.Fatalf("pgshadow export: %s", pgtest.Describe(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := filemode.Import(ctx, connect(t, e.Files), filemode.ImportOptions{Dir: res.BatchDir}); err != nil {
		t.Fatalf("import: %s", pgtest.Describe(err))
	}
	e.sync(t)
	e.same(t)
	// the export purged after its commit: nothing shipped everywhere is held
	if held := heldKeys(t, e.Src); held != 0 {
		t.Errorf("%d keys still held after everything shipped", held)
	}
}
