// What a file batch carries and how a target takes it: only the subscribed
// columns travel, extra target columns keep their defaults, the import's
// writes are not captured again on a target that runs pgshadow itself, and
// the start of a batch chain (with or without an initial copy, or after the
// table was subscribed anew) is handled as documented.
package filemode_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// A subscription with a column list ships only those columns; the target
// table, with its columns in another order and more of them, fills the rest
// from its defaults.
func TestColumnSubsetAndTargetDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Src.Exec(t, "CREATE TABLE people (id int PRIMARY KEY, name text, secret text, age int)")
	e.Files.Exec(t, `CREATE TABLE people (age int, id int PRIMARY KEY, name text,
		note text NOT NULL DEFAULT 'imported', seq bigserial, loaded timestamptz NOT NULL DEFAULT now())`)
	e.Src.Exec(t, "INSERT INTO people SELECT g, 'p' || g, 'TOPSECRET', 20 + g FROM generate_series(1, 10) g")
	e.SubscribeFiles(t, "people", "columns => ARRAY['id', 'name', 'age']")

	var dirs []string
	dirs = append(dirs, e.Export(t))
	e.Import(t, dirs[0])
	e.Src.Exec(t, "UPDATE people SET age = age + 1, secret = 'TOPSECRET2' WHERE id <= 5; INSERT INTO people VALUES (11, 'p11', 'TOPSECRET3', 1)")
	dirs = append(dirs, e.Export(t))
	e.Import(t, dirs[1])

	pgtest.AssertSameRows(t, e.Src, "people", e.Files, "people", "id", "name", "age")
	if got := e.Files.QueryStrings(t, "SELECT DISTINCT note || ' ' || (seq > 0) FROM people"); len(got) != 1 || got[0] != "imported true" {
		t.Errorf("extra target columns hold %v, want only their defaults (imported true)", got)
	}
	for _, d := range dirs {
		m, _, err := filemode.ReadManifest(d)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := os.ReadFile(filepath.Join(d, m.Tables[0].Files.Columns.Name))
		if err != nil {
			t.Fatal(err)
		}
		want := "id\tinteger\t1\nname\ttext\t0\nage\tinteger\t0\n"
		if !strings.HasSuffix(string(cols), want) || strings.Count(string(cols), "\n") != 4 {
			t.Errorf("%s lists:\n%s\nwant a comment line, then:\n%s", m.Tables[0].Files.Columns.Name, cols, want)
		}
		for _, f := range []string{m.Tables[0].Files.Rows.Name, m.Tables[0].Files.Columns.Name} {
			data, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), "TOPSECRET") || strings.Contains(string(data), "secret") {
				t.Errorf("%s/%s holds the unsubscribed column secret", filepath.Base(d), f)
			}
		}
	}
}

// A target that runs pgshadow and tracks the table itself does not capture
// what an import writes (the session is marked with pgshadow.origin), while
// its own writes are captured as usual.
func TestImportedWritesAreNotCapturedAgain(t *testing.T) {
	t.Parallel()
	e := newEnvWithT(t, 10)
	e.Files.Exec(t, "CREATE EXTENSION pgshadow CASCADE")
	e.Files.Exec(t, "SELECT shadow_add_target('back', NULL)")
	e.Files.Exec(t, "SELECT shadow_subscribe('back', 't', initial_copy => false)")
	e.Import(t, e.Export(t))
	e.Src.Exec(t, "UPDATE t SET v = 'again'; DELETE FROM t WHERE id = 3")
	e.Import(t, e.Export(t))
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")

	pending := "SELECT coalesce(pending_keys, 0) FROM shadow_status WHERE target = 'back'"
	if n := e.Files.QueryInt(t, pending); n != 0 {
		t.Errorf("the target captured %d keys written by imports, want 0", n)
	}
	e.Files.Exec(t, "UPDATE t SET v = 'local' WHERE id = 1")
	if n := e.Files.QueryInt(t, pending); n != 1 {
		t.Errorf("the target captured %d keys of its own update, want 1 (capture is not working, so the check above proves nothing)", n)
	}
}

// With initial_copy => false the first batch is incremental: it applies to a
// target that was seeded by other means, and a later batch cannot start a
// target that has nothing applied.
func TestFirstBatchWithoutInitialCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const ddl = "CREATE TABLE t (id int PRIMARY KEY, v text)"
	e.SrcAndFiles(t, ddl)
	const seed = "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g"
	e.SrcAndFiles(t, seed)
	e.SubscribeFiles(t, "t", "initial_copy => false")
	e.Src.Exec(t, "UPDATE t SET v = 'one' WHERE id < 4")
	d1 := e.Export(t)
	e.Src.Exec(t, "DELETE FROM t WHERE id > 8")
	d2 := e.Export(t)
	m, _, err := filemode.ReadManifest(d1)
	if err != nil {
		t.Fatal(err)
	}
	if tb := m.Tables[0]; tb.FullCopy || tb.BatchNo != 1 || tb.Keys != 3 {
		t.Errorf("first batch without initial copy: full_copy=%v batch %d keys %d, want incremental batch 1 with 3 keys",
			tb.FullCopy, tb.BatchNo, tb.Keys)
	}

	fresh := pgtest.NewDB(t, pgtest.Server("third"))
	fresh.Exec(t, ddl)
	_, err = e.ImportErr(t, d2, fresh)
	wantRefused(t, err, "public.t batch 2", "nothing was applied to it yet", "neither batch 1 nor a full copy")

	e.Import(t, d1)
	e.Import(t, d2)
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}

// After shadow_unsubscribe and shadow_subscribe the batches restart at 1
// under a new subscription: its full copy replaces the table; a batch of
// the older subscription, even a full copy, and an incremental batch of
// another subscription are refused.
func TestResubscribedTableStartsOverWithFullCopy(t *testing.T) {
	t.Parallel()
	e := newEnvWithT(t, 10)
	oldCopy := e.Export(t)
	e.Import(t, oldCopy)
	e.Src.Exec(t, "UPDATE t SET v = 'two'")
	e.Import(t, e.Export(t))

	e.Src.Exec(t, "SELECT shadow_unsubscribe($1, 't')", fileTarget)
	e.Src.Exec(t, "DELETE FROM t WHERE id > 5; INSERT INTO t VALUES (50, 'while unsubscribed')")
	e.SubscribeFiles(t, "t")
	d := e.Export(t)
	if res := e.Import(t, d); res.Tables[0].BatchNo != 1 || !res.Tables[0].FullCopy {
		t.Errorf("first import after subscribing anew: %+v, want batch 1, a full copy", res.Tables[0])
	}
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
	_, err := e.ImportErr(t, oldCopy)
	wantRefused(t, err, "public.t batch 1", "older than subscription")

	e.Src.Exec(t, "SELECT shadow_unsubscribe($1, 't')", fileTarget)
	e.SubscribeFiles(t, "t", "initial_copy => false")
	e.Src.Exec(t, "UPDATE t SET v = 'three' WHERE id = 2")
	_, err = e.ImportErr(t, e.Export(t))
	wantRefused(t, err, "public.t batch 1", "fed by subscription", "not a full copy")
}

// Keys are matched with the destination's own key types and collations: a
// key column with a nondeterministic collation, shipped into a wider type
// elsewhere, still deletes exactly the changed keys.
func TestKeysMatchWithDestinationTypesAndCollations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const coll = "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);"
	e.Src.Exec(t, coll+"CREATE TABLE t (code text COLLATE ci, n int, v text, PRIMARY KEY (code, n))")
	e.Files.Exec(t, coll+"CREATE TABLE t (code text COLLATE ci, n bigint, v text, PRIMARY KEY (code, n))")
	e.Src.Exec(t, "INSERT INTO t SELECT 'Code' || g, g, 'v' FROM generate_series(1, 10) g")
	e.SubscribeFiles(t, "t")
	e.Import(t, e.Export(t))
	e.Src.Exec(t, "UPDATE t SET v = 'changed' WHERE n <= 3; DELETE FROM t WHERE n = 10")
	res := e.Import(t, e.Export(t))
	if r := res.Tables[0]; r.Deleted != 4 || r.Inserted != 3 {
		t.Errorf("import deleted %d and wrote %d rows, want 4 deleted by key and 3 written", r.Deleted, r.Inserted)
	}
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}

// A table owner without superuser or file rights exports its tables.
func TestExportAsPlainTableOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	role := strings.ToLower(strings.ReplaceAll(e.Src.Name, "t_", "owner_"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Src.Server.CreateRole(ctx, role, "owner-pw"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Src.Exec(t, fmt.Sprintf("REASSIGN OWNED BY %q TO CURRENT_USER; DROP OWNED BY %q", role, role))
		_ = e.Src.ExecErr(fmt.Sprintf("DROP ROLE %q", role))
	})
	e.Src.Exec(t, fmt.Sprintf("GRANT CREATE ON SCHEMA public TO %q", role))
	owner := e.Src.ConnAs(t, role, "owner-pw")
	for _, sql := range []string{
		"CREATE TABLE public.t (id int PRIMARY KEY, v text)",
		"INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 10) g",
		"SELECT shadow_add_target('mine', NULL)",
		"SELECT shadow_subscribe('mine', 'public.t')",
	} {
		if _, err := owner.Exec(ctx, sql); err != nil {
			t.Fatalf("as %s: %s: %s", role, sql, pgtest.Describe(err))
		}
	}
	e.Files.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	res, err := filemode.Export(ctx, owner, filemode.ExportOptions{Target: "mine", Dir: e.Dir})
	if err != nil {
		t.Fatalf("export as plain owner %s: %s", role, pgtest.Describe(err))
	}
	e.Import(t, res.BatchDir)
	if _, err := owner.Exec(ctx, "UPDATE public.t SET v = 'again' WHERE id < 5"); err != nil {
		t.Fatal(err)
	}
	if res, err = filemode.Export(ctx, owner, filemode.ExportOptions{Target: "mine", Dir: e.Dir}); err != nil {
		t.Fatalf("second export as plain owner %s: %s", role, pgtest.Describe(err))
	}
	e.Import(t, res.BatchDir)
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}

// shadow_resync on a file target makes the next batch a full copy that
// continues the numbering; the target takes it and ends equal, even though
// rows changed on the target in between.
func TestResyncedFileTargetGetsFullCopy(t *testing.T) {
	t.Parallel()
	e := newEnvWithT(t, 10)
	e.Import(t, e.Export(t))
	e.Files.Exec(t, "DELETE FROM t WHERE id < 5; INSERT INTO t VALUES (99, 'drift')")
	e.Src.Exec(t, "SELECT shadow_resync($1, 't')", fileTarget)
	e.Src.Exec(t, "UPDATE t SET v = 'after resync' WHERE id = 7")
	res := e.Import(t, e.Export(t))
	if r := res.Tables[0]; r.BatchNo != 2 || !r.FullCopy {
		t.Errorf("batch after shadow_resync: %+v, want batch 2, a full copy", r)
	}
	pgtest.AssertSameRows(t, e.Src, "t", e.Files, "t")
}

// File mode and a column added on the source of an all-columns subscription:
// the next batch carries it; an import into a target without it fails,
// naming the column, and applies nothing; once the target has it, the same
// batch imports, with the values written meanwhile.
func TestAddedColumnTravelsInTheNextBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.SrcAndFiles(t, "CREATE TABLE items (id int PRIMARY KEY, v int)")
	e.Src.Exec(t, "INSERT INTO items SELECT g, g FROM generate_series(1, 10) g")
	e.SubscribeFiles(t, "items")
	e.Import(t, e.Export(t))

	e.Src.Exec(t, "ALTER TABLE items ADD COLUMN w text; UPDATE items SET w = 'w' || id, v = -v WHERE id <= 4")
	dir := e.Export(t)
	_, err := e.ImportErr(t, dir)
	if err == nil || !strings.Contains(err.Error(), `"w"`) {
		t.Fatalf("import into a target without column w: want an error naming it, got %v", err)
	}
	if n := e.Files.QueryInt(t, "SELECT count(*) FROM items WHERE v < 0"); n != 0 {
		t.Errorf("the failed import applied %d rows", n)
	}
	e.Files.Exec(t, "ALTER TABLE items ADD COLUMN w text")
	e.Import(t, dir)
	pgtest.AssertSameRows(t, e.Src, "items", e.Files, "items")
}
