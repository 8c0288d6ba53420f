// Bidirectional replication between peers: each node tracks the table and
// subscribes every other node (a mesh); target names are node names
// (pgshadow.node_name). Applied changes are not captured again, conflicts
// are resolved by the sender's policy and logged with both rows, and after
// a quiet exchange every node holds the same rows.
package modes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshadow/pgshadow/internal/pgserver"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// node is a peer database whose pgshadow.node_name is Name.
type node struct {
	*pgtest.DB
	Name string
}

func newNode(t *testing.T, s *pgserver.Server, name string) *node {
	t.Helper()
	d := pgtest.NewDBWithExtension(t, s)
	d.Exec(t, fmt.Sprintf("ALTER DATABASE %s SET pgshadow.node_name = %s", ident(d.Name), lit(name)))
	d.Pool.Reset() // new sessions pick the setting up
	if got := d.QueryString(t, "SELECT pgshadow._node()"); got != name {
		t.Fatalf("node name of %s is %q, want %q", d.Name, got, name)
	}
	return &node{DB: d, Name: name}
}

// newMesh creates one node per server (named n0, n1, ... unless names are
// given), runs ddl on each and subscribes every table of tables from every
// node to every other, without initial copy, with the given policy.
func newMesh(t *testing.T, policy, ddl string, tables []string, servers []string) []*node {
	t.Helper()
	nodes := make([]*node, len(servers))
	for i, s := range servers {
		nodes[i] = newNode(t, pgtest.Server(s), s)
		nodes[i].Exec(t, ddl)
	}
	for _, n := range nodes {
		for _, m := range nodes {
			if n == m {
				continue
			}
			link(t, n.DB, m.DB, m.Name)
			for _, tbl := range tables {
				n.Exec(t, "SELECT shadow_subscribe($1, $2, initial_copy => false, on_conflict => $3)", m.Name, tbl, policy)
			}
		}
	}
	return nodes
}

// exchangeErr ships every pending change of from to to; it returns the keys shipped.
func exchangeErr(from, to *node) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n int64
	err := from.Pool.QueryRow(ctx, "SELECT coalesce(sum(keys), 0)::bigint FROM shadow_export($1)", to.Name).Scan(&n)
	return n, err
}

func exchange(t *testing.T, from, to *node) int64 {
	t.Helper()
	n, err := exchangeErr(from, to)
	if err != nil {
		t.Fatalf("export %s -> %s: %s", from.Name, to.Name, pgtest.Describe(err))
	}
	return n
}

// quiet exchanges between every ordered pair of nodes, round after round,
// until a round ships nothing.
func quiet(t *testing.T, nodes []*node) {
	t.Helper()
	for round := 1; round <= 10; round++ {
		var moved int64
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b {
					moved += exchange(t, a, b)
				}
			}
		}
		if moved == 0 {
			return
		}
	}
	t.Fatalf("exchanges still ship keys after 10 rounds")
}

// sameEverywhere fails unless every node holds the same rows of table,
// listing each node's values of the differing rows.
func sameEverywhere(t *testing.T, table string, nodes []*node) {
	t.Helper()
	first := nodes[0].TableRows(t, table)
	for _, n := range nodes[1:] {
		if diff := pgtest.DiffRows(first, n.TableRows(t, table)); diff != "" {
			t.Errorf("after a quiet exchange %s differs between node %s (-) and node %s (+):\n%s",
				table, nodes[0].Name, n.Name, diff)
		}
	}
}

// writeLogSQL logs every row write of kv into an untracked side table.
const writeLogSQL = `
CREATE TABLE writes (op text, k int);
CREATE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $f$
BEGIN INSERT INTO writes VALUES (TG_OP, CASE WHEN TG_OP = 'DELETE' THEN OLD.k ELSE NEW.k END); RETURN NULL; END $f$;
CREATE TRIGGER log_write AFTER INSERT OR UPDATE OR DELETE ON kv FOR EACH ROW EXECUTE FUNCTION log_write();`

// One insert on A is one write on B and none back on A: B does not capture
// what it applied, so exporting B -> A ships nothing.
func TestPeerInsertIsWrittenOnceAndNeverComesBack(t *testing.T) {
	t.Parallel()
	nodes := newMesh(t, "source_wins", "CREATE TABLE kv (k int PRIMARY KEY, v text)"+";"+writeLogSQL,
		[]string{"kv"}, []string{"a", "b"})
	a, b := nodes[0], nodes[1]
	a.Exec(t, "INSERT INTO kv VALUES (1, 'from a')")
	a.Exec(t, "TRUNCATE writes")

	if n := exchange(t, a, b); n != 1 {
		t.Errorf("export a -> b shipped %d keys, want 1", n)
	}
	for i := range 2 {
		if n := exchange(t, b, a); n != 0 {
			t.Errorf("export b -> a (round %d) shipped %d keys, want 0: b re-captured the change it applied", i+1, n)
		}
		if n := exchange(t, a, b); n != 0 {
			t.Errorf("export a -> b (round %d) shipped %d keys, want 0", i+2, n)
		}
	}
	if got := b.QueryStrings(t, "SELECT op || ' ' || k FROM writes"); len(got) != 1 || got[0] != "INSERT 1" {
		t.Errorf("writes on b: %q, want exactly [\"INSERT 1\"]", got)
	}
	if got := a.QueryStrings(t, "SELECT op || ' ' || k FROM writes"); len(got) != 0 {
		t.Errorf("writes on a after the exchanges: %q, want none (the change came back)", got)
	}
	if n := b.QueryInt(t, "SELECT count(*) FROM pgshadow.public__kv"); n != 0 {
		t.Errorf("b captured %d shadow rows while applying a's change, want 0", n)
	}
	sameEverywhere(t, "kv", nodes)
}

// conflictRow is one row of shadow_conflicts, rendered as text.
func conflicts(t *testing.T, n *node) []string {
	t.Helper()
	return n.QueryStrings(t, `SELECT format('%s %s<-%s %s %s remote=%s local=%s', key, node, origin, policy, resolution,
		remote_row->>'v', local_row->>'v') FROM shadow_conflicts ORDER BY id`)
}

// Two nodes write disjoint and shared keys concurrently for a few seconds
// while exchanges run in both directions; after a quiet exchange both hold
// the same rows, under each policy. A scripted conflict on key 0 (written on
// both nodes before the first exchange a -> b) is logged on b with both rows
// and resolved as the policy says.
func TestTwoPeersConvergeUnderEachPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy, resolution, final string
	}{
		{"source_wins", "remote_applied", "a0"},
		{"target_wins", "local_kept", "b0"},
		{"latest", "local_kept", "b0"}, // b0 is written after a0
	} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			nodes := newMesh(t, tc.policy, "CREATE TABLE kv (k int PRIMARY KEY, v text)", []string{"kv"}, []string{"a", "b"})
			a, b := nodes[0], nodes[1]
			a.Exec(t, "INSERT INTO kv VALUES (0, 'a0')")
			b.Exec(t, "INSERT INTO kv VALUES (0, 'b0')")
			exchange(t, a, b)
			want := fmt.Sprintf(`["0"] b<-a %s %s remote=a0 local=b0`, tc.policy, tc.resolution)
			if got := conflicts(t, b); len(got) != 1 || got[0] != want {
				t.Fatalf("conflicts logged on b for the scripted same-key write: %q, want [%q]", got, want)
			}

			writesAndExchanges(t, nodes, 3*time.Second)
			quiet(t, nodes)
			sameEverywhere(t, "kv", nodes)
			if v := a.QueryString(t, "SELECT v FROM kv WHERE k = 0"); v != tc.final {
				t.Errorf("key 0 ends as %q, want %q under %s", v, tc.final, tc.policy)
			}
			t.Logf("conflicts logged: %d on a, %d on b; %d rows",
				len(conflicts(t, a)), len(conflicts(t, b)), a.QueryInt(t, "SELECT count(*) FROM kv"))
		})
	}
}

// writesAndExchanges runs, for d, one writer per node (keys 1-20 of its own
// range, plus keys 1000-1009 shared by all) and one exchanger shipping
// between every ordered pair in turn, then stops them.
func writesAndExchanges(t *testing.T, nodes []*node, d time.Duration) {
	t.Helper()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)+1)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			for j := 0; !stop.Load(); j++ {
				k := 100*(i+1) + rng.IntN(20)
				if rng.IntN(3) == 0 {
					k = 1000 + rng.IntN(10)
				}
				sql := fmt.Sprintf("INSERT INTO kv VALUES (%d, '%s%d') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v", k, n.Name, j)
				if rng.IntN(5) == 0 {
					sql = fmt.Sprintf("DELETE FROM kv WHERE k = %d", k)
				}
				if err := n.ExecErr(sql); err != nil {
					errs <- fmt.Errorf("writer on %s: %s", n.Name, pgtest.Describe(err))
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	// A failed exchange is retried in the next round, as the async queue
	// would; failures are logged (see TestPeerApplyRacingALocalInsert).
	var failed []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for _, a := range nodes {
				for _, b := range nodes {
					if a == b {
						continue
					}
					if _, err := exchangeErr(a, b); err != nil {
						msg, _, _ := strings.Cut(pgtest.Describe(err), "\n")
						failed = append(failed, fmt.Sprintf("%s -> %s: %s", a.Name, b.Name, msg))
					}
				}
			}
		}
	}()
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Logf("%d exchanges failed while writers ran (retried by the next round), e.g. %s", len(failed), failed[0])
	}
}

// Under 'error' the export a -> b fails naming the conflict count and the
// target, the conflict is logged on b with both rows, b's row is kept and
// the key does not ship until an operator resolves it (here: shadow_skip on
// a, so b's version wins); other keys of the batch are applied.
func TestErrorPolicyStopsTheTableAndKeepsTheReceiversRow(t *testing.T) {
	t.Parallel()
	nodes := newMesh(t, "error", "CREATE TABLE kv (k int PRIMARY KEY, v text)", []string{"kv"}, []string{"a", "b"})
	a, b := nodes[0], nodes[1]
	a.Exec(t, "INSERT INTO kv VALUES (1, 'a1'), (2, 'a2')")
	b.Exec(t, "INSERT INTO kv VALUES (1, 'b1')")
	wm := watermark(t, a.DB, "b", "kv")
	for i := range 2 {
		_, err := exchangeErr(a, b)
		wantError(t, fmt.Sprintf("export a -> b, attempt %d", i+1), err, "1 conflict(s)", `target "b"`)
	}
	want := `["1"] b<-a error local_kept remote=a1 local=b1`
	if got := conflicts(t, b); len(got) != 1 || got[0] != want {
		t.Errorf("conflicts logged on b after two failed exports: %q, want [%q] (once)", got, want)
	}
	wantRows(t, b.DB, "kv", "(1,b1)", "(2,a2)")
	if got := watermark(t, a.DB, "b", "kv"); got != wm {
		t.Errorf("a's watermark for b moved although its export failed: %s -> %s", wm, got)
	}

	if n := a.QueryInt(t, "SELECT shadow_skip('b', 'kv', 'conflict on key 1 resolved for b')"); n != 2 {
		t.Errorf("shadow_skip on a skipped %d keys, want 2", n)
	}
	quiet(t, nodes)
	sameEverywhere(t, "kv", nodes)
	wantRows(t, a.DB, "kv", "(1,b1)", "(2,a2)")
}

// 'error' stops only the conflicting table: another table shipped to the
// same peer in the same export still arrives.
func TestErrorPolicyDoesNotStopOtherTables(t *testing.T) {
	t.Parallel()
	nodes := newMesh(t, "error", "CREATE TABLE kv (k int PRIMARY KEY, v text); CREATE TABLE other (k int PRIMARY KEY, v text)",
		[]string{"kv", "other"}, []string{"a", "b"})
	a, b := nodes[0], nodes[1]
	a.Exec(t, "INSERT INTO kv VALUES (1, 'a1')")
	b.Exec(t, "INSERT INTO kv VALUES (1, 'b1')")
	a.Exec(t, "INSERT INTO other VALUES (1, 'a')")
	wm := watermark(t, a.DB, "b", "other")
	// one table failed, the other shipped: the call reports the failure in
	// that table's row (and a WARNING) instead of failing as a whole
	errs := a.QueryStrings(t, "SELECT error FROM shadow_export('b') WHERE error IS NOT NULL")
	if len(errs) != 1 || !strings.Contains(errs[0], "1 conflict(s)") {
		t.Errorf("export a -> b: errors %q, want one mentioning \"1 conflict(s)\"", errs)
	}
	if got := a.QueryString(t, "SELECT coalesce(last_error, '') FROM shadow_status WHERE \"table\" = 'kv'::regclass"); !strings.Contains(got, "1 conflict(s)") {
		t.Errorf("shadow_status.last_error of kv = %q, want the conflict", got)
	}
	if got := b.TableRows(t, "other"); len(got) != 1 {
		t.Errorf("table other did not reach b because kv has a conflict under 'error' (rows on b: %q); "+
			"want only the conflicting table stopped", got)
	}
	if got := watermark(t, a.DB, "b", "other"); got == wm {
		t.Errorf("a's watermark of table other for b did not move although other shipped (%s): "+
			"it is shipped again by every export while kv's conflict stands", got)
	}
}

// Exports that cross (a -> b and b -> a at the same time) still converge.
// A statement trigger on b makes a's apply there take a second (whether it
// inserts rows or keeps b's), so b's export to a
// reads b's row before a's apply commits on b, and lands on a before a's
// export commits: both sides see the same-key change as a conflict.
func TestCrossingExportsConverge(t *testing.T) {
	for _, policy := range []string{"source_wins", "target_wins", "latest"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			nodes := newMesh(t, policy, "CREATE TABLE kv (k int PRIMARY KEY, v text)", []string{"kv"}, []string{"a", "b"})
			a, b := nodes[0], nodes[1]
			b.Exec(t, `CREATE FUNCTION slow_apply() RETURNS trigger LANGUAGE plpgsql AS $f$
				BEGIN PERFORM pg_catalog.pg_sleep(1); RETURN NULL; END $f$;
				CREATE TRIGGER slow_apply BEFORE INSERT ON kv FOR EACH STATEMENT
				WHEN (current_setting('pgshadow.origin', true) = 'a') EXECUTE FUNCTION slow_apply()`)
			a.Exec(t, "INSERT INTO kv VALUES (1, 'a1')")
			b.Exec(t, "INSERT INTO kv VALUES (1, 'b1')")

			done := make(chan error, 1)
			go func() { _, err := exchangeErr(a, b); done <- err }()
			// a's apply is inside b (past b's gate) once it sleeps there; a
			// fixed delay instead lets a loaded machine start b's export
			// first, and then each side refuses the other (both retry later)
			pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
				n := b.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()")
				return n > 0, "a's apply never reached b's slow trigger"
			})
			// b's export waits for a's apply on b to commit, then may still
			// reach a before a's own export has committed: a refuses it
			// (55P03, "retry"), as designed, and b retries, as `pgshadow
			// run` does
			ba, errBA := exchangeErr(b, a)
			for try := 0; try < 50 && isRetry(errBA); try++ {
				time.Sleep(100 * time.Millisecond)
				ba, errBA = exchangeErr(b, a)
			}
			if err := <-done; err != nil {
				t.Fatalf("export a -> b: %s", pgtest.Describe(err))
			}
			if errBA != nil {
				t.Fatalf("export b -> a: %s", pgtest.Describe(errBA))
			}
			t.Logf("b -> a shipped %d keys; conflicts: a %q, b %q", ba, conflicts(t, a), conflicts(t, b))
			quiet(t, nodes)
			va, vb := a.QueryString(t, "SELECT v FROM kv WHERE k = 1"), b.QueryString(t, "SELECT v FROM kv WHERE k = 1")
			if va != vb {
				t.Errorf("crossing exports under %s: key 1 is %q on a and %q on b after a quiet exchange (see BUGS.md)", policy, va, vb)
			}
		})
	}
}

// A peer's apply that meets a local insert of the same key, committed while
// the apply runs, treats it as a conflict (it cannot have been detected
// earlier) instead of failing the peer's export with a duplicate key.
func TestPeerApplyRacingALocalInsertOfTheSameKey(t *testing.T) {
	t.Parallel()
	nodes := newMesh(t, "source_wins", "CREATE TABLE kv (k int PRIMARY KEY, v text)", []string{"kv"}, []string{"a", "b"})
	a, b := nodes[0], nodes[1]
	b.Exec(t, "INSERT INTO kv VALUES (1, 'b1')")
	w := a.DB.Conn(t)
	pgtest.Begin(t, w, "INSERT INTO kv VALUES (1, 'a1')")

	done := make(chan error, 1)
	go func() { _, err := exchangeErr(b, a); done <- err }()
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := a.QueryInt(t, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%pgshadow.apply%'`)
		return n == 1, "b's apply on a is not waiting for the local insert of key 1"
	})
	mustExec(t, w, "COMMIT")
	if err := <-done; err != nil {
		t.Errorf("export b -> a failed because a local insert of the same key committed during the apply: %s", pgtest.Describe(err))
	}
	quiet(t, nodes)
	sameEverywhere(t, "kv", nodes)
}

// isRetry says err is a peer's refusal to apply while it exports the same
// table to the sender: the sender is to try again.
func isRetry(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}
