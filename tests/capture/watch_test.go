package capture_test

// What the partition watch keeps whole beyond ATTACH and CREATE TABLE
// ... PARTITION OF: partitions made by CREATE SCHEMA, a dump and restore of
// a tracked partitioned table, and table inheritance, which capture cannot
// follow and is refused on either side of a tracked table.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// CREATE SCHEMA runs its elements under its own tag: a partition it
// creates gets the capture triggers all the same.
func TestPartitionCreatedByCreateSchemaIsCaptured(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
		SELECT shadow_track('p')`)
	db.Exec(t, `CREATE SCHEMA s CREATE TABLE leaf PARTITION OF public.p FOR VALUES FROM (1000) TO (2000)`)
	db.Exec(t, "INSERT INTO s.leaf VALUES (1500, 'a'); UPDATE s.leaf SET id = 1501")
	assertShadowRows(t, db, "p", []string{"id"}, []string{"(1500,I)", "(1501,U)", "(1500,D)"}, "")
}

// pg_restore adds constraints (ALTER TABLE, which fires the partition
// watch) after the catalog rows and before the triggers: the watch leaves
// a tree whose root has no capture triggers yet, so the restore's own
// CREATE TRIGGERs succeed, and capture works after it.
func TestDumpRestoreOfTrackedPartitionedTable(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000); INSERT INTO p VALUES (1, 'a'); SELECT shadow_track('p')`)
	n := dumpRestore(t, db, nil)
	n.Exec(t, "TRUNCATE pgshadow.public__p; UPDATE p SET id = 2; INSERT INTO p1 VALUES (3, 'b')")
	// (an UPDATE through the root records a re-keyed row's old key twice:
	// the root's OLD TABLE and the key trigger each see it)
	got := n.QueryStrings(t, "SELECT DISTINCT format('(%s,%s)', id, shadow_op) FROM pgshadow.public__p ORDER BY 1")
	if want := []string{"(1,D)", "(2,U)", "(3,I)"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("shadow rows after the restore: got %v, want %v", got, want)
	}
}

// A child's rows written through its parent fire the parent's statement
// triggers but not its key trigger, and writes to the child fire none of
// them: table inheritance is refused on either side of a tracked table, at
// tracking and afterwards.
func TestTableInheritanceOfTrackedTablesIsRefused(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY, v text); CREATE TABLE child () INHERITS (parent);
		CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE other (id int PRIMARY KEY, v text);
		CREATE TABLE loner (id int PRIMARY KEY, v text);
		SELECT shadow_track('t')`)
	refused := func(sql, want string) {
		t.Helper()
		err := db.ExecErr(sql)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error saying %q", sql, err, want)
		}
	}
	refused("SELECT shadow_track('parent')", "cannot track public.parent: it takes part in table inheritance (public.child inherits from public.parent)")
	refused("SELECT shadow_track('child')", "cannot track public.child: it takes part in table inheritance (public.child inherits from public.parent)")
	refused("CREATE TABLE c () INHERITS (t)", "tracked table public.t cannot take part in table inheritance (public.c inherits from public.t)")
	refused("ALTER TABLE other INHERIT t", "tracked table public.t cannot take part in table inheritance (public.other inherits from public.t)")
	refused("ALTER TABLE t INHERIT loner", "tracked table public.t cannot take part in table inheritance (public.t inherits from public.loner)")
	if n := db.QueryInt(t, "SELECT count(*) FROM pg_inherits WHERE inhparent = 't'::regclass OR inhrelid = 't'::regclass"); n != 0 {
		t.Errorf("%d inheritance links of tracked t were left in place", n)
	}
}

// trackRacing runs shadow_track(tbl) while another session holds ddl
// uncommitted, commits the DDL once shadow_track waits for its lock, and
// returns shadow_track's error. The DDL's own watch ran before tbl was
// tracked, so only tracking can see what it did.
func trackRacing(t *testing.T, db *pgtest.DB, ddl, tbl string) error {
	t.Helper()
	a, b := session(t, db), session(t, db)
	pgtest.Begin(t, a, ddl)
	var pid int
	if err := b.QueryRow(ctx(t), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pgtest.RunErr(t, b, "SELECT shadow_track($1)", tbl) }()
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		return db.QueryInt(t, "SELECT cardinality(pg_blocking_pids($1))", pid) > 0,
			"shadow_track(" + tbl + ") does not wait for the lock of the uncommitted " + ddl
	})
	run(t, a, "COMMIT")
	return <-done
}

// Tracking a table while another transaction, not yet committed, makes it
// an inheritance parent: tracking must see the committed link and refuse,
// or the child's rows go uncaptured.
func TestTrackRacingInheritIsRefused(t *testing.T) {
	db := newDB(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE c (id int PRIMARY KEY, v text)")
	err := trackRacing(t, db, "ALTER TABLE c INHERIT t", "t")
	assertError(t, err, "shadow_track racing ALTER TABLE c INHERIT t", "0A000", "takes part in table inheritance")
}

// Tracking a partitioned table while another transaction, not yet
// committed, creates a partition of it: the partition must get the
// statement triggers too, or writes naming it are lost.
func TestTrackRacingCreatePartitionCapturesIt(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000)`)
	if err := trackRacing(t, db, "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000)", "p"); err != nil {
		t.Fatalf("shadow_track: %s", pgtest.Describe(err))
	}
	db.Exec(t, "INSERT INTO p2 VALUES (1500, 'direct')")
	assertShadowRows(t, db, "p", []string{"id"}, []string{"(1500,I)"}, "")
}

// Under REPEATABLE READ and SERIALIZABLE, tracking reads the catalog with
// a snapshot older than its lock: an INHERIT committed after the snapshot
// (its watch ran while the table was not tracked) would go unseen. New tracking
// is refused there; tracking a tracked table again is not.
func TestTrackUnderSnapshotIsolation(t *testing.T) {
	for _, level := range []string{"REPEATABLE READ", "SERIALIZABLE"} {
		t.Run(level, func(t *testing.T) {
			db := newDB(t)
			db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE c (id int PRIMARY KEY, v text); CREATE TABLE u (id int PRIMARY KEY)")
			// the snapshot is taken before the INHERIT commits
			b := session(t, db)
			pgtest.Begin(t, b, "SET TRANSACTION ISOLATION LEVEL "+level, "SELECT 1")
			db.Exec(t, "ALTER TABLE c INHERIT t")
			err := runErr(t, b, "SELECT shadow_track('t')")
			run(t, b, "ROLLBACK")
			assertError(t, err, "shadow_track under "+level+" racing ALTER TABLE c INHERIT t", "25000",
				"cannot start tracking public.t in a "+level+" transaction", "inheritance or partitioning committed after it began")
			if n := db.QueryInt(t, "SELECT count(*) FROM pgshadow.tracked"); n != 0 {
				t.Errorf("%d tables tracked after the refusal", n)
			}
			db.Exec(t, "SELECT shadow_track('u')")
			a := session(t, db)
			pgtest.Begin(t, a, "SET TRANSACTION ISOLATION LEVEL "+level, "SELECT 1")
			if err := runErr(t, a, "SELECT shadow_track('u')"); err != nil {
				t.Errorf("tracking tracked table u again under %s: %s", level, pgtest.Describe(err))
			}
			run(t, a, "COMMIT")
		})
	}
}

// A DDL under REPEATABLE READ or SERIALIZABLE whose snapshot predates the
// tracking of the table it touches reads pgshadow.tracked without that
// table: its watch would leave a new partition without capture triggers,
// let an inheritance link or a key change through. It fails with a
// serialization failure instead, and the retry is watched as usual. DDL
// under the same levels that sees its tables' tracking is not disturbed.
func TestDDLUnderSnapshotIsolationSeesLaterTracking(t *testing.T) {
	for _, level := range []string{"REPEATABLE READ", "SERIALIZABLE"} {
		t.Run(level, func(t *testing.T) {
			db := newDB(t)
			db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
				CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE c (id int PRIMARY KEY, v text);
				CREATE TABLE k (id int PRIMARY KEY, v text NOT NULL)`)
			unseen := func(tbl, ddl string) {
				t.Helper()
				err := inSnapshotBefore(t, db, level, "SELECT shadow_track('"+tbl+"')", ddl)
				assertError(t, err, ddl+" in a "+level+" snapshot older than tracking "+tbl, "40001",
					"public."+tbl+" was tracked by a transaction that committed after this "+level+" transaction began")
			}
			partition := "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000)"
			unseen("p", partition)
			unseen("t", "ALTER TABLE c INHERIT t")
			unseen("k", "ALTER TABLE k DROP CONSTRAINT k_pkey, ADD PRIMARY KEY (id, v)")

			// retried, each is watched as under READ COMMITTED
			a := session(t, db)
			pgtest.Begin(t, a, "SET TRANSACTION ISOLATION LEVEL "+level, "SELECT 1", partition, "COMMIT")
			db.Exec(t, "INSERT INTO p2 VALUES (1500, 'direct')")
			assertShadowRows(t, db, "p", []string{"id"}, []string{"(1500,I)"}, "")
			for _, r := range []struct{ ddl, code, says string }{
				{"ALTER TABLE c INHERIT t", "55006", "tracked table public.t cannot take part in table inheritance"},
				{"ALTER TABLE k DROP CONSTRAINT k_pkey, ADD PRIMARY KEY (id, v)", "55006", "cannot change the primary key of tracked table public.k"},
			} {
				pgtest.Begin(t, a, "SET TRANSACTION ISOLATION LEVEL "+level, "SELECT 1")
				assertError(t, runErr(t, a, r.ddl), r.ddl+" retried under "+level, r.code, r.says)
				run(t, a, "ROLLBACK")
			}
			// DDL on untracked tables under the same level
			pgtest.Begin(t, a, "SET TRANSACTION ISOLATION LEVEL "+level, "SELECT 1",
				"CREATE TABLE q (id int PRIMARY KEY) PARTITION BY RANGE (id)",
				"CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (10)", "ALTER TABLE c ADD COLUMN w text", "COMMIT")
		})
	}
}

// The watch refuses inheritance and partitioning of tracked tables in the
// DDL that makes them; DDL on tables that have nothing to do with a tracked
// table must not fail because some tracked table is in such a state (made
// while the watch was disabled, or by the race above before it was fixed).
func TestUnrelatedDDLIgnoresInheritanceElsewhere(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE c (id int PRIMARY KEY, v text);
		SELECT shadow_track('t');
		ALTER EVENT TRIGGER pgshadow_partition_watch DISABLE;
		ALTER TABLE c INHERIT t;
		ALTER EVENT TRIGGER pgshadow_partition_watch ENABLE`)
	for _, sql := range []string{"CREATE TABLE unrelated (id int)", "ALTER TABLE unrelated ADD COLUMN v text",
		"CREATE SCHEMA s CREATE TABLE u2 (id int)"} {
		if err := db.ExecErr(sql); err != nil {
			t.Errorf("%s: %s", sql, pgtest.Describe(err))
		}
	}
	// DDL on either side of the link is still refused
	err := db.ExecErr("ALTER TABLE c ADD COLUMN w text")
	assertError(t, err, "ALTER TABLE c (an inheritance child of tracked t)", "55006", "cannot take part in table inheritance")
}

// pg_restore -j restores post-data items in parallel: the root's capture
// triggers can be created while a partition's primary key is still being
// built, and that partition's ALTER TABLE ... ADD CONSTRAINT fires the
// watch before the partitions' own capture triggers are restored. The
// watch must not create them (the restore's CREATE TRIGGER would then
// fail). Reproduced deterministically with a list (-L) in that order.
func TestRestoreWithRootTriggersBeforePartitionKeys(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
		CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000);
		INSERT INTO p VALUES (1, 'a'), (1001, 'b'); SELECT shadow_track('p')`)
	// the root's triggers right after the root's primary key
	n := dumpRestore(t, db, func(items []string) []string {
		var list, rootTriggers []string
		for _, l := range items {
			if strings.Contains(l, " TRIGGER public p pgshadow_") {
				rootTriggers = append(rootTriggers, l)
			}
		}
		for _, l := range items {
			if strings.Contains(l, " TRIGGER public p pgshadow_") {
				continue
			}
			list = append(list, l)
			if strings.Contains(l, " CONSTRAINT public p p_pkey ") {
				list = append(list, rootTriggers...)
			}
		}
		if len(rootTriggers) == 0 {
			t.Fatalf("no root triggers in the dump's list:\n%s", strings.Join(items, "\n"))
		}
		return list
	})
	n.Exec(t, "TRUNCATE pgshadow.public__p; INSERT INTO p2 VALUES (1002, 'c'); DELETE FROM p1")
	assertShadowRows(t, n, "p", []string{"id"}, []string{"(1,D)", "(1002,I)"}, "")
}

// pg_dump writes a NOT VALID check constraint apart from its table, in
// post-data with the primary key, and sorts the two by name: a restore
// adds a_chk (ALTER TABLE, which fires pgshadow_key_watch) while the
// tracked table has no primary key yet, and before its capture triggers.
// The key watch must leave that table alone, as the partition watch does.
func TestDumpRestoreOfTrackedTableWithNotValidCheck(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
		ALTER TABLE t ADD CONSTRAINT a_chk CHECK (v <> '') NOT VALID; SELECT shadow_track('t')`)
	n := dumpRestore(t, db, nil)
	n.Exec(t, "TRUNCATE pgshadow.public__t; INSERT INTO t VALUES (2, 'b')")
	assertShadowRows(t, n, "t", []string{"id"}, []string{"(2,I)"}, "")
	// the restored key watch still refuses a key change
	err := n.ExecErr("ALTER TABLE t DROP CONSTRAINT t_pkey")
	assertError(t, err, "dropping the restored table's primary key", "55006", "cannot change the primary key")
}

// dumpRestore dumps db (pg_dump -Fc) and restores it into a new database
// of the same server, returning it; reorder, if not nil, rewrites the
// dump's item list (pg_restore -l), which is then restored in its order
// (-L), as pg_restore -j may.
func dumpRestore(t *testing.T, db *pgtest.DB, reorder func(items []string) []string) *pgtest.DB {
	t.Helper()
	bin := os.Getenv("PGSHADOW_BINDIR")
	if bin == "" {
		t.Fatal("PGSHADOW_BINDIR (tests/pgroot) names the pg_dump and pg_restore to use: run the tests with make test")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "src.dump")
	if out, err := exec.Command(filepath.Join(bin, "pg_dump"), "-Fc", "-f", file, "-d", db.ConnString()).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	args := []string{"--exit-on-error"}
	if reorder != nil {
		out, err := exec.Command(filepath.Join(bin, "pg_restore"), "-l", file).Output()
		if err != nil {
			t.Fatalf("pg_restore -l: %v", err)
		}
		list := filepath.Join(dir, "list")
		if err := os.WriteFile(list, []byte(strings.Join(reorder(strings.Split(string(out), "\n")), "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-L", list)
	}
	n := pgtest.NewDB(t, db.Server)
	if out, err := exec.Command(filepath.Join(bin, "pg_restore"), append(args, "-d", n.ConnString(), file)...).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	return n
}

// A foreign table may inherit from a tracked table too, by CREATE FOREIGN
// TABLE ... INHERITS or ALTER FOREIGN TABLE ... INHERIT, commands of their
// own: refused like any other inheritance (rows written to it were not
// captured, and every UPDATE of the parent failed: a child foreign table
// cannot fill a transition table).
func TestForeignTableInheritingATrackedTableIsRefused(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); SELECT shadow_track('t');
		CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'nowhere');
		CREATE FOREIGN TABLE ft2 (id int NOT NULL, v text) SERVER elsewhere`)
	err := db.ExecErr("CREATE FOREIGN TABLE ft () INHERITS (t) SERVER elsewhere")
	assertError(t, err, "CREATE FOREIGN TABLE ft () INHERITS (t)", "55006", "cannot take part in table inheritance")
	err = db.ExecErr("ALTER FOREIGN TABLE ft2 INHERIT t")
	assertError(t, err, "ALTER FOREIGN TABLE ft2 INHERIT t", "55006", "cannot take part in table inheritance")
	if n := db.QueryInt(t, "SELECT count(*) FROM pg_inherits WHERE inhparent = 't'::regclass"); n != 0 {
		t.Errorf("%d inheritance children of tracked t were left in place", n)
	}
}

// A partition the watch gives capture triggers gets them enabled as the
// root's are (as PostgreSQL clones row triggers): an owner who made them
// fire ALWAYS (her applies run with session_replication_role = replica)
// captured those writes on every partition but a new one.
func TestNewPartitionTriggersFollowTheRootsEnabledState(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
		SELECT shadow_track('p');
		ALTER TABLE p ENABLE ALWAYS TRIGGER pgshadow_capture_ins; ALTER TABLE p1 ENABLE ALWAYS TRIGGER pgshadow_capture_ins;
		CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000)`)
	s := session(t, db)
	pgtest.RunEach(t, s, "SET session_replication_role = replica", "INSERT INTO p1 VALUES (1, 'a')", "INSERT INTO p2 VALUES (1001, 'b')")
	assertShadowRows(t, db, "p", []string{"id"}, []string{"(1,I)", "(1001,I)"}, "")
}

// inSnapshotBefore runs ddl in a session whose REPEATABLE READ or
// SERIALIZABLE snapshot was taken before stmt ran (and committed) in
// another, and returns its error; the transaction is committed if ddl
// succeeded, rolled back if not.
func inSnapshotBefore(t *testing.T, db *pgtest.DB, level, stmt, ddl string) error {
	t.Helper()
	a := session(t, db)
	pgtest.Begin(t, a, "SET TRANSACTION ISOLATION LEVEL "+level, "SELECT 1")
	db.Exec(t, stmt)
	err := runErr(t, a, ddl)
	if err != nil {
		run(t, a, "ROLLBACK")
	} else {
		run(t, a, "COMMIT")
	}
	return err
}

// ATTACH PARTITION is reported as a command on the parent: the table it
// attaches, tracked after the DDL's snapshot, must be probed too, or the
// watch does not see it tracked and lets it become a partition, whose rows
// written through the parent are not captured. (x has a trigger of its
// own, so tracking it leaves its pg_class row alone: an older version of
// that row, still in the snapshot, would show x as no partition and put
// it among the inheritance partners probed.)
func TestAttachUnderSnapshotIsolationSeesLaterTrackingOfThePartition(t *testing.T) {
	for _, level := range []string{"REPEATABLE READ", "SERIALIZABLE"} {
		t.Run(level, func(t *testing.T) {
			db := newDB(t)
			db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE x (id int PRIMARY KEY, v text);
				CREATE FUNCTION nothing() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
				CREATE TRIGGER mine AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION nothing()`)
			err := inSnapshotBefore(t, db, level, "SELECT shadow_track('x')",
				"ALTER TABLE p ATTACH PARTITION x FOR VALUES FROM (0) TO (1000)")
			assertError(t, err, "ATTACH of x in a "+level+" snapshot older than tracking x", "40001",
				"public.x was tracked by a transaction that committed after this "+level+" transaction began")
			if n := db.QueryInt(t, "SELECT count(*) FROM pg_inherits WHERE inhrelid = 'x'::regclass"); n != 0 {
				t.Errorf("tracked table x became a partition")
			}
		})
	}
}

// A change to a tracked table's catalog row that does not track or
// untrack it (a purge switching the generation writers append to, an
// async subscription switching notify) is no reason for a DDL on the
// table under REPEATABLE READ or SERIALIZABLE to fail; untracking it, or
// tracking it again, after the snapshot still is.
func TestDDLUnderSnapshotIsolationIgnoresOtherCatalogChanges(t *testing.T) {
	for _, level := range []string{"REPEATABLE READ", "SERIALIZABLE"} {
		t.Run(level, func(t *testing.T) {
			db := newDB(t)
			db.Exec(t, `CREATE TABLE k (id int PRIMARY KEY, v text NOT NULL);
				CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
				SELECT shadow_track('k'), shadow_track('p')`)
			for i, stmt := range []string{
				"UPDATE pgshadow.tracked SET gen = 1 - gen WHERE tbl = 'k'::regclass",
				"UPDATE pgshadow.tracked SET notify = NOT notify WHERE tbl = 'k'::regclass",
			} {
				if err := inSnapshotBefore(t, db, level, stmt, fmt.Sprintf("ALTER TABLE k ADD COLUMN w%d text", i)); err != nil {
					t.Errorf("ALTER TABLE k ADD COLUMN under %s after %s: %s", level, stmt, pgtest.Describe(err))
				}
			}
			if err := inSnapshotBefore(t, db, level, "UPDATE pgshadow.tracked SET gen = 1 - gen WHERE tbl = 'p'::regclass",
				"CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000)"); err != nil {
				t.Errorf("CREATE TABLE p2 PARTITION OF p under %s after a purge: %s", level, pgtest.Describe(err))
			}
			db.Exec(t, "INSERT INTO p2 VALUES (1500, 'direct')")
			assertShadowRows(t, db, "p", []string{"id"}, []string{"(1500,I)"}, "")
			// tracked again with another key after the snapshot: the old
			// catalog row the snapshot shows is not the table's tracking
			err := inSnapshotBefore(t, db, level,
				"SELECT shadow_untrack('k'); ALTER TABLE k DROP CONSTRAINT k_pkey, ADD PRIMARY KEY (id, v); SELECT shadow_track('k')",
				"ALTER TABLE k DROP CONSTRAINT k_pkey, ADD PRIMARY KEY (id)")
			assertError(t, err, "key change of k in a "+level+" snapshot older than its tracking again", "40001", "public.k was untracked")
			// and after a purge, untracked
			err = inSnapshotBefore(t, db, level,
				"UPDATE pgshadow.tracked SET gen = 1 - gen WHERE tbl = 'k'::regclass; SELECT shadow_untrack('k')",
				"ALTER TABLE k ADD COLUMN z text")
			assertError(t, err, "ALTER TABLE k in a "+level+" snapshot older than a purge and its untracking", "40001", "public.k was untracked")
		})
	}
}
