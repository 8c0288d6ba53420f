// Partitioned tables: tracking the parent captures every write, whichever
// member of the partition tree a statement names, and partitions created,
// attached, detached or truncated after tracking began.
package replication

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// partitionedDDL and partitionedSeed: table ev (see pgtest.PartitionedDDL).
const (
	partitionedDDL  = pgtest.PartitionedDDL
	partitionedSeed = pgtest.PartitionedSeed
)

// Every way of writing to a partitioned table reaches a target that is not
// partitioned: through the parent, straight into a leaf and into a
// sub-partitioned partition, key changes inside a partition and rows moved
// across partitions (by the parent and by a sub-partitioned partition), a
// partition created and one attached after tracking, a leaf truncated by
// itself, a detached partition (its rows leave the target) and a dropped
// one (refused until detached).
func TestPartitionedTableToPlainTarget(t *testing.T) {
	t.Parallel()
	p := subscribedPartitioned(t)
	p.Same(t, "ev", "ev")

	steps := []struct{ name, sql string }{
		{"insert through the parent", "INSERT INTO ev VALUES (1001, '2023-06-01', 'p'), (1002, '2024-06-01', 'p')"},
		{"insert into a leaf", "INSERT INTO ev_2023 VALUES (1003, '2023-07-01', 'leaf')"},
		{"insert into a sub-partitioned partition", "INSERT INTO ev_2024 VALUES (1004, '2024-07-01', 'mid'), (1005, '2024-07-02', 'mid')"},
		{"insert into a hash leaf", "INSERT INTO ev_2024_h0 SELECT id + 2000, day, 'h0' FROM ev_2024 WHERE satisfies_hash_partition('ev_2024'::regclass, 2, 0, id + 2000)"},
		{"update through the parent", "UPDATE ev SET v = v || '+p' WHERE id % 7 = 0"},
		{"update in a leaf", "UPDATE ev_2023 SET v = v || '+leaf' WHERE id % 5 = 0"},
		{"key change inside a leaf", "UPDATE ev_2023 SET id = id + 5000 WHERE id % 11 = 0"},
		{"rows moved across partitions by the parent", "UPDATE ev SET day = day + 365 WHERE day < '2023-04-01'"},
		{"rows moved between hash leaves by their parent", "UPDATE ev_2024 SET id = id + 1 WHERE id % 13 = 0"},
		{"rows moved and updated in one statement", "UPDATE ev SET day = day - 300, v = 'back' WHERE id % 17 = 0 AND day >= '2024-01-01'"},
		{"delete in a leaf", "DELETE FROM ev_2024_h1 WHERE id % 3 = 0"},
		{"delete through the parent", "DELETE FROM ev WHERE id % 19 = 0"},
	}
	for _, s := range steps {
		p.Src.Exec(t, s.sql)
		p.Export(t)
		if diff := pgtestDiff(t, p, "ev", "ev"); diff != "" {
			t.Fatalf("after %s: source (-) vs target (+):\n%s", s.name, diff)
		}
	}

	// a partition created after tracking, written directly and through the parent
	p.Src.ExecEach(t,
		"CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
		"INSERT INTO ev_2025 VALUES (3001, '2025-02-01', 'new leaf')",
		"INSERT INTO ev VALUES (3002, '2025-03-01', 'new via parent')",
		"UPDATE ev SET day = '2025-04-01' WHERE id = 1001",
		// a table with rows attached after tracking: its rows join the table
		"CREATE TABLE ev_2026 (id int, day date, v text, PRIMARY KEY (id, day))",
		"INSERT INTO ev_2026 SELECT g, date '2026-01-01' + g % 100, 'attached' FROM generate_series(4001, 4020) g",
		"ALTER TABLE ev ATTACH PARTITION ev_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
	p.Ship(t, "ev", "UPDATE ev_2026 SET v = 'attached+' WHERE id = 4001")
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM ev WHERE v LIKE 'attached%'"); n != 20 {
		t.Fatalf("target has %d attached rows, want 20", n)
	}

	// a leaf truncated by itself loses only its own rows on the target
	p.Ship(t, "ev", "TRUNCATE ev_2024_h0")
	// TRUNCATE of the parent empties the target; rows written after it in
	// the same transaction, then a leaf truncated, still arrive right
	p.Ship(t, "ev", "BEGIN; TRUNCATE ev; INSERT INTO ev VALUES (1, '2023-01-02', 'a'), (2, '2025-01-02', 'b'); TRUNCATE ev_2025; INSERT INTO ev VALUES (3, '2025-01-03', 'c'); COMMIT")
	p.Src.Exec(t, partitionedSeed+" ON CONFLICT DO NOTHING")
	p.Ship(t, "ev", "INSERT INTO ev SELECT g, date '2025-01-01' + g, 'x' FROM generate_series(1, 30) g")

	// detached: its rows leave the table, on the target too; the detached
	// table is plain again, and writing to it fails nothing and ships nothing
	before := p.Dst.QueryInt(t, "SELECT count(*) FROM ev WHERE day >= '2025-01-01' AND day < '2026-01-01'")
	if before == 0 {
		t.Fatal("scenario broken: nothing in 2025 to detach")
	}
	p.Src.Exec(t, "ALTER TABLE ev DETACH PARTITION ev_2025")
	p.Src.Exec(t, "INSERT INTO ev_2025 VALUES (9999, '2025-05-05', 'after detach')")
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ev_2025'::regclass AND tgname LIKE 'pgshadow%'"); n != 0 {
		t.Errorf("detached table keeps %d capture triggers", n)
	}
	p.Export(t)
	p.Same(t, "ev", "ev")
	if n := p.Dst.QueryInt(t, "SELECT count(*) FROM ev WHERE day >= '2025-01-01' AND day < '2026-01-01'"); n != 0 {
		t.Fatalf("target keeps %d rows of the detached partition", n)
	}

	// dropping a partition is refused (its rows would stay on the target)
	err := p.Src.ExecErr("DROP TABLE ev_2026")
	if err == nil || !strings.Contains(err.Error(), "DETACH PARTITION") && !strings.Contains(pgtest.Describe(err), "DETACH PARTITION") {
		t.Fatalf("DROP TABLE of a partition: want a refusal pointing to DETACH, got %v", pgtest.Describe(err))
	}
	p.Src.Exec(t, "ALTER TABLE ev DETACH PARTITION ev_2026")
	p.Ship(t, "ev", "DROP TABLE ev_2026, ev_2025")
}

// subscribedPartitioned is a pair with ev partitioned on the source, plain
// on the target, subscribed after 200 rows were written (and copied).
func subscribedPartitioned(t *testing.T) *pair {
	t.Helper()
	p := prepared(t, partitionedDDL, "CREATE TABLE ev (id int, day date, v text, PRIMARY KEY (id, day))", partitionedSeed)
	if n := p.Subscribe(t, "ev"); n != 200 {
		t.Fatalf("initial copy shipped %d rows, want 200", n)
	}
	return p
}

// pgtestDiff is the row difference of a source and a target table ("" when equal).
func pgtestDiff(t *testing.T, p *pair, srcTable, dstTable string) string {
	t.Helper()
	return pgtest.DiffRows(p.Src.TableRows(t, srcTable), p.Dst.TableRows(t, dstTable))
}

// A target partitioned differently (by hash of id, not by day)
// receives the same rows, including rows moved across the source's
// partitions, and a sub-partitioned partition tracked alone is refused,
// naming its parent.
func TestPartitionedTableToDifferentlyPartitionedTarget(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Src.Exec(t, partitionedDDL)
	p.Dst.Exec(t, `CREATE TABLE ev (id int, day date, v text, PRIMARY KEY (id, day)) PARTITION BY HASH (id);
		CREATE TABLE ev_0 PARTITION OF ev FOR VALUES WITH (MODULUS 3, REMAINDER 0);
		CREATE TABLE ev_1 PARTITION OF ev FOR VALUES WITH (MODULUS 3, REMAINDER 1);
		CREATE TABLE ev_2 PARTITION OF ev FOR VALUES WITH (MODULUS 3, REMAINDER 2)`)
	p.Src.Exec(t, partitionedSeed)

	for _, part := range []string{"ev_2023", "ev_2024", "ev_2024_h1"} {
		err := p.Src.ExecErr("SELECT shadow_track(" + lit(part) + ")")
		if err == nil || !strings.Contains(pgtest.Describe(err), "is a partition of public.ev") {
			t.Fatalf("shadow_track(%s): want a refusal naming its parent ev, got %v", part, pgtest.Describe(err))
		}
	}

	p.Subscribe(t, "ev")
	p.Same(t, "ev", "ev")
	p.Src.Exec(t, "UPDATE ev SET day = day + 365, id = id + 1 WHERE id % 4 = 0 AND day < '2024-01-01'")
	p.Src.Exec(t, "UPDATE ev_2024 SET id = id + 1000 WHERE id % 5 = 0")
	p.Src.Exec(t, "DELETE FROM ev_2023 WHERE id % 6 = 0")
	p.Ship(t, "ev", "INSERT INTO ev_2024_h0 SELECT g, '2024-02-02', 'h0' FROM generate_series(10000, 10020) g WHERE satisfies_hash_partition('ev_2024'::regclass, 2, 0, g)")
}

// Re-tracking a partitioned table changes nothing (its plan is empty), and
// untracking removes the capture triggers from every member of the tree.
func TestPartitionedTableRetrackAndUntrack(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Src.Exec(t, partitionedDDL)
	// without the partition watch, a partition created later would go uncaptured
	p.Src.Exec(t, "ALTER EVENT TRIGGER pgshadow_partition_watch DISABLE")
	err := p.Src.ExecErr("SELECT shadow_track('ev')")
	if err == nil || !strings.Contains(pgtest.Describe(err), "pgshadow_partition_watch") {
		t.Fatalf("tracking without the partition watch: want a refusal naming it, got %v", pgtest.Describe(err))
	}
	p.Src.Exec(t, "ALTER EVENT TRIGGER pgshadow_partition_watch ENABLE")
	p.Src.Exec(t, "SELECT shadow_track('ev')")
	// five capture triggers on the root, four statement triggers and a
	// clone of the key trigger on each partition
	counts := p.Src.QueryStrings(t, `SELECT c.relname || ' ' || count(*) FROM pg_partition_tree('ev') m
		JOIN pg_class c ON c.oid = m.relid JOIN pg_trigger g ON g.tgrelid = m.relid AND g.tgname LIKE 'pgshadow_capture_%'
		GROUP BY c.relname ORDER BY c.relname`)
	want := []string{"ev 5", "ev_2023 5", "ev_2024 5", "ev_2024_h0 5", "ev_2024_h1 5"}
	if strings.Join(counts, ",") != strings.Join(want, ",") {
		t.Fatalf("capture triggers per member: got %v, want %v", counts, want)
	}
	retrackIsNoop(t, p)
	p.Src.Exec(t, "SELECT shadow_untrack('ev')")
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgshadow%'"); n != 0 {
		t.Fatalf("%d capture triggers left after untrack", n)
	}
	p.Src.Exec(t, "INSERT INTO ev VALUES (1, '2023-01-02', 'after untrack')")
	p.Src.Exec(t, "INSERT INTO ev_2024_h0 SELECT 2, '2024-01-02', 'after untrack'")
	p.Src.Exec(t, "SELECT shadow_track('ev')")
	retrackIsNoop(t, p)
	// a tracked plain table cannot become a partition: of an untracked
	// table (writes through it would not be captured), nor of a tracked one
	p.Src.Exec(t, "CREATE TABLE ev_2030 (id int, day date, v text, PRIMARY KEY (id, day))")
	p.Src.Exec(t, "SELECT shadow_track('ev_2030')")
	p.Src.Exec(t, "CREATE TABLE other (id int, day date, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)")
	err = p.Src.ExecErr("ALTER TABLE other ATTACH PARTITION ev_2030 FOR VALUES FROM ('2030-01-01') TO ('2031-01-01')")
	if err == nil || !strings.Contains(pgtest.Describe(err), "cannot become a partition") {
		t.Fatalf("attaching a tracked table: want a refusal, got %v", pgtest.Describe(err))
	}
	if err := p.Src.ExecErr("ALTER TABLE ev ATTACH PARTITION ev_2030 FOR VALUES FROM ('2030-01-01') TO ('2031-01-01')"); err == nil {
		t.Fatal("a tracked table was attached to a tracked partitioned table")
	}
}

// retrackIsNoop tracks ev again and fails unless that leaves nothing to do.
func retrackIsNoop(t *testing.T, p *pair) {
	t.Helper()
	p.Src.Exec(t, "SELECT shadow_track('ev')")
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM pgshadow.track_plan('ev')"); n != 0 {
		t.Fatalf("track_plan of a tracked partitioned table has %d steps, want none", n)
	}
}

// Writers insert, update, move rows across partitions and delete, through
// the parent and straight into partitions, while exports run alongside;
// after a final export both sides hold the same rows.
func TestPartitionedConcurrentWritersConverge(t *testing.T) {
	t.Parallel()
	p := subscribedPartitioned(t)
	ops := []string{
		"INSERT INTO ev VALUES ($1, date '2023-01-01' + $2::int, 'ins') ON CONFLICT DO NOTHING",
		"INSERT INTO ev_2023 VALUES ($1, date '2023-01-01' + $2::int % 365, 'leaf') ON CONFLICT DO NOTHING",
		"INSERT INTO ev_2024 VALUES ($1, date '2024-01-01' + $2::int % 365, 'mid') ON CONFLICT DO NOTHING",
		"UPDATE ev SET v = md5(random()::text) WHERE id BETWEEN $1 AND $1::int + $2::int % 4",
		"UPDATE ev SET day = day + 365 WHERE id = $1 AND day < '2024-01-01' AND $2::int >= 0",
		"UPDATE ev SET day = day - 365 WHERE id = $1 AND day >= '2024-01-01' AND $2::int >= 0",
		"UPDATE ev_2024 SET id = id + 1 WHERE id = $1 AND $2::int >= 0",
		"UPDATE ev_2023 SET id = $2::int + 600 WHERE id = $1",
		"DELETE FROM ev WHERE id = $1 AND $2::int >= 0",
		"DELETE FROM ev_2024_h1 WHERE id BETWEEN $1 AND $1::int + $2::int % 3",
	}
	runWorkload(t, p, ops)
	p.Export(t)
	p.Same(t, "ev", "ev")
	if n := p.Src.QueryInt(t, "SELECT count(*) FROM ev WHERE id > 600"); n == 0 {
		t.Errorf("scenario broken: no key update committed")
	}
}

// A writer with rights on partitions only, and none on pgshadow's tables,
// writes straight into them (a truncate included): everything is captured
// with the table owner's rights and reaches the target.
func TestPartitionWriterWithoutRightsOnTheRootIsCaptured(t *testing.T) {
	t.Parallel()
	p := subscribedPartitioned(t)
	w := pgtest.NewRole(t, p.Src, "writer", "")
	p.Src.Exec(t, fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ev_2023, ev_2024_h0 TO %s", ident(w)))
	c := p.Src.ConnAs(t, w, pgtest.RolePassword)
	mustExec(t, c, "INSERT INTO ev_2023 VALUES (5001, '2023-05-05', 'w')")
	mustExec(t, c, "UPDATE ev_2023 SET v = 'w+', id = id + 7000 WHERE id % 9 = 0")
	mustExec(t, c, "DELETE FROM ev_2023 WHERE id % 4 = 0")
	mustExec(t, c, "TRUNCATE ev_2024_h0")
	p.Export(t)
	p.Same(t, "ev", "ev")
}
