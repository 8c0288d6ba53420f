package capture_test

// What the partition watch keeps whole beyond ATTACH and CREATE TABLE
// ... PARTITION OF: partitions made by CREATE SCHEMA, a dump and restore of
// a tracked partitioned table, and table inheritance, which capture cannot
// follow and is refused on either side of a tracked table.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	bin := os.Getenv("PGSHADOW_BINDIR")
	if bin == "" {
		t.Fatal("PGSHADOW_BINDIR (tests/pgroot) names the pg_dump and pg_restore to use: run the tests with make test")
	}
	file := filepath.Join(t.TempDir(), "src.dump")
	if out, err := exec.Command(filepath.Join(bin, "pg_dump"), "-Fc", "-f", file, "-d", db.ConnString()).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	n := pgtest.NewDB(t, db.Server)
	if out, err := exec.Command(filepath.Join(bin, "pg_restore"), "--exit-on-error", "-d", n.ConnString(), file).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
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
