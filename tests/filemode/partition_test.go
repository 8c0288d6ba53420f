package filemode_test

import (
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// A partitioned table ships through files like through push mode: the
// initial copy, writes to every member of its tree, rows moved across
// partitions, a partition attached with rows and one detached. The file
// target is partitioned like the source, the push target is a plain table.
func TestFileModePartitionedTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ddl := pgtest.PartitionedDDL + `;
		CREATE TABLE ev_2026 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');`
	e.SrcAndFiles(t, ddl)
	e.Push.Exec(t, "CREATE TABLE ev (id int, day date, v text, PRIMARY KEY (id, day))")
	e.Src.Exec(t, pgtest.PartitionedSeed)
	e.Src.Exec(t, "SELECT shadow_track('ev')")
	e.Subscribe(t, "ev")
	e.Sync(t)
	e.Same(t, "ev")

	for _, w := range pgtest.PartitionedWrites {
		e.Src.Exec(t, w)
	}
	e.Sync(t)
	e.Same(t, "ev")

	for _, sql := range pgtest.AttachPartitionWithRows(2025) {
		e.Src.Exec(t, sql)
	}
	e.Files.Exec(t, "CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')")
	e.Src.Exec(t, "ALTER TABLE ev DETACH PARTITION ev_2023")
	e.Sync(t)
	e.Same(t, "ev")
	if n := e.Files.QueryInt(t, "SELECT count(*) FROM ev_2023"); n != 0 {
		t.Fatalf("file target keeps %d rows of the detached partition", n)
	}
}
