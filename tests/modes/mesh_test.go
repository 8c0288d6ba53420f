// Three peers in a mesh (a, b and c each subscribe the other two; no node
// forwards another's changes) under the 'latest' policy: writes on all
// three, to disjoint keys and to the same keys, exchanged in several orders
// and then quietly, must leave all three identical.
package modes

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// meshWrites writes disjoint keys on every node (100s on a, 200s on b, 300s
// on c) and the same keys on several nodes, in this order: key 1 on a then
// c, key 2 on b then a, key 3 on a, b and c.
func meshWrites(t *testing.T, a, b, c *node) {
	t.Helper()
	for i, n := range []*node{a, b, c} {
		n.Exec(t, fmt.Sprintf("INSERT INTO kv SELECT g, %s || g FROM generate_series(%d, %d) g",
			lit(n.Name), 100*(i+1), 100*(i+1)+4))
	}
	a.Exec(t, "INSERT INTO kv VALUES (1, 'a1')")
	c.Exec(t, "INSERT INTO kv VALUES (1, 'c1')")
	b.Exec(t, "INSERT INTO kv VALUES (2, 'b2')")
	a.Exec(t, "INSERT INTO kv VALUES (2, 'a2')")
	a.Exec(t, "INSERT INTO kv VALUES (3, 'a3')")
	b.Exec(t, "INSERT INTO kv VALUES (3, 'b3')")
	c.Exec(t, "INSERT INTO kv VALUES (3, 'c3')")
}

// The policy for three or more nodes is 'latest' (source_wins and
// target_wins are documented as two-node policies whose mesh result depends
// on the order of exchanges).
func TestThreeNodeMeshConverges(t *testing.T) {
	orders := []struct{ name, steps string }{
		{"ring", "a>b b>c c>a"},
		{"reverse_ring", "a>c c>b b>a"},
		{"a_first", "a>b a>c b>a b>c c>a c>b"},
		{"c_first", "c>a c>b a>b a>c b>a b>c"},
		{"b_hears_a_then_c", "a>b c>b a>c c>a"},
		{"b_hears_c_then_a", "c>b a>b c>a a>c"},
		{"chain_to_a", "c>b b>a"},
	}
	for _, order := range orders {
		t.Run(order.name, func(t *testing.T) {
			t.Parallel()
			nodes := newMesh(t, "latest", "CREATE TABLE kv (k int PRIMARY KEY, v text)", []string{"kv"}, []string{"a", "b", "c"})
			byName := map[string]*node{}
			for _, n := range nodes {
				byName[n.Name] = n
			}
			meshWrites(t, nodes[0], nodes[1], nodes[2])
			for _, step := range strings.Fields(order.steps) {
				from, to, _ := strings.Cut(step, ">")
				exchange(t, byName[from], byName[to])
			}
			// more writes to shared keys between the ordered exchanges and the quiet one
			byName["b"].Exec(t, "UPDATE kv SET v = 'b1 later' WHERE k = 1")
			byName["b"].Exec(t, "DELETE FROM kv WHERE k = 2") // b always holds key 2 (it wrote b2)
			quiet(t, nodes)
			var state []string
			for _, n := range nodes {
				state = append(state, fmt.Sprintf("%s: %s", n.Name,
					n.QueryString(t, "SELECT coalesce(string_agg(k || '=' || v, ' ' ORDER BY k), '') FROM kv WHERE k < 100")))
			}
			t.Logf("exchanges %s, then quiet; shared keys: %s", order.steps, strings.Join(state, "; "))
			sameEverywhere(t, "kv", nodes)
			// every shared key ends at its last write: 1 updated and 2 deleted on b, 3 written last on c
			if want := "a: 1=b1 later 3=c3"; state[0] != want {
				t.Errorf("shared keys on a: %q, want %q (the last write of each key)", state[0], want)
			}
		})
	}
}

// Three nodes write disjoint and shared keys concurrently while exchanges
// between every pair run alongside; after a quiet exchange all three hold
// the same rows.
func TestThreeNodeMeshConvergesUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	nodes := newMesh(t, "latest", "CREATE TABLE kv (k int PRIMARY KEY, v text)", []string{"kv"}, []string{"a", "b", "c"})
	writesAndExchanges(t, nodes, 3*time.Second)
	quiet(t, nodes)
	sameEverywhere(t, "kv", nodes)
	t.Logf("%d rows; conflicts logged: a %d, b %d, c %d", nodes[0].QueryInt(t, "SELECT count(*) FROM kv"),
		len(conflicts(t, nodes[0])), len(conflicts(t, nodes[1])), len(conflicts(t, nodes[2])))
}
