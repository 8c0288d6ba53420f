// Partitioned tables in sync and async mode, and shadow_compare of one.
package modes

import (
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// partitionedDDL: table ev (pgtest.PartitionedDDL) with 200 rows; the
// target gets a plain ev.
const partitionedDDL = pgtest.PartitionedDDL + ";" + pgtest.PartitionedSeed

func newPartitionedPair(t *testing.T, mode string) *pair {
	t.Helper()
	p := newPair(t, pgtest.Server("a"), pgtest.Server("b"))
	p.Src.Exec(t, partitionedDDL)
	p.Dst.Exec(t, "CREATE TABLE ev (id int, day date, v text, PRIMARY KEY (id, day))")
	p.Subscribe(t, "ev", "mode => "+lit(mode))
	p.Same(t, "ev")
	return p
}

// Sync mode applies writes to every member of the tree, and to a partition
// created after subscribing, inside the writing transaction; a partition
// truncated alone, or attached with rows, is refused rather than left
// unreplicated, while TRUNCATE of the whole table is applied.
func TestSyncPartitionedTable(t *testing.T) {
	t.Parallel()
	p := newPartitionedPair(t, "sync")
	for _, w := range pgtest.PartitionedWrites {
		p.Src.Exec(t, w)
		p.Same(t, "ev")
	}
	p.Src.Exec(t, "CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')")
	p.Src.Exec(t, "INSERT INTO ev_2025 VALUES (3001, '2025-02-01', 'new leaf')")
	p.Src.Exec(t, "UPDATE ev SET day = '2025-03-01' WHERE id = 1001")
	p.Same(t, "ev")

	wantError(t, "TRUNCATE of one partition with a sync subscription", p.Src.ExecErr("TRUNCATE ev_2023"), "cannot truncate partition")
	p.Src.Exec(t, "CREATE TABLE ev_2026 (id int, day date, v text, PRIMARY KEY (id, day))")
	p.Src.Exec(t, "INSERT INTO ev_2026 VALUES (4001, '2026-01-05', 'x')")
	wantError(t, "ATTACH of a table with rows", p.Src.ExecErr("ALTER TABLE ev ATTACH PARTITION ev_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"),
		"sync subscription")
	wantError(t, "DETACH", p.Src.ExecErr("ALTER TABLE ev DETACH PARTITION ev_2025"), "sync subscription")
	p.Same(t, "ev")

	p.Src.Exec(t, "BEGIN; TRUNCATE ev; INSERT INTO ev VALUES (1, '2024-01-02', 'after'); COMMIT")
	p.Same(t, "ev")
}

// Async mode (shadow_run) ships writes to every member, a partition
// created and one attached after subscribing, and a detach.
func TestAsyncPartitionedTable(t *testing.T) {
	t.Parallel()
	p := newPartitionedPair(t, "async")
	p.Src.ExecEach(t, pgtest.PartitionedWrites...)
	p.Src.Exec(t, "CALL shadow_run()")
	p.Same(t, "ev")
	p.Src.ExecEach(t,
		"CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
		"INSERT INTO ev_2025 VALUES (3001, '2025-02-01', 'new leaf')")
	p.Src.ExecEach(t, pgtest.AttachPartitionWithRows(2026)...)
	p.Src.ExecEach(t, "TRUNCATE ev_2024_h0")
	p.Src.Exec(t, "CALL shadow_run()")
	p.Same(t, "ev")
	p.Src.Exec(t, "ALTER TABLE ev DETACH PARTITION ev_2023")
	p.Src.Exec(t, "CALL shadow_run()")
	p.Same(t, "ev")
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM ev WHERE day < '2024-01-01'"); n != 0 {
		t.Fatalf("target keeps %d rows of the detached partition", n)
	}
}

// shadow_compare reads the whole partitioned table, finds a difference made
// on the target behind pgshadow's back, and repairs it.
func TestComparePartitionedTable(t *testing.T) {
	t.Parallel()
	p := newPartitionedPair(t, "batch")
	p.Dst.Exec(t, "DELETE FROM ev WHERE id IN (3, 150); UPDATE ev SET v = 'drift' WHERE id = 100")
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM shadow_compare($1, 'ev', chunk_rows => 20, repair => true)", target); n == 0 {
		t.Fatal("shadow_compare found no difference")
	}
	p.Same(t, "ev")
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM shadow_compare($1, 'ev', chunk_rows => 20)", target); n != 0 {
		t.Fatalf("shadow_compare after repair still reports %d ranges", n)
	}
}
