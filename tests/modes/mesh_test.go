// Three peers in a mesh (a, b and c each subscribe the other two; no node
// forwards another's changes): writes on all three, to disjoint keys and to
// the same keys, exchanged in several orders and then quietly, must leave
// all three identical.
package modes

import (
	"fmt"
	"strings"
	"testing"
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

func TestThreeNodeMeshConverges(t *testing.T) {
	orders := []struct{ name, steps string }{
		{"ring", "a>b b>c c>a"},
		{"reverse_ring", "a>c c>b b>a"},
		{"a_first", "a>b a>c b>a b>c c>a c>b"},
		{"b_hears_a_then_c", "a>b c>b a>c c>a"},
	}
	for _, policy := range []string{"source_wins", "target_wins", "latest"} {
		for _, order := range orders {
			t.Run(policy+"/"+order.name, func(t *testing.T) {
				t.Parallel()
				nodes := newMesh(t, policy, "CREATE TABLE kv (k int PRIMARY KEY, v text)", []string{"kv"}, []string{"a", "b", "c"})
				byName := map[string]*node{}
				for _, n := range nodes {
					byName[n.Name] = n
				}
				meshWrites(t, nodes[0], nodes[1], nodes[2])
				for _, step := range strings.Fields(order.steps) {
					from, to, _ := strings.Cut(step, ">")
					exchange(t, byName[from], byName[to])
				}
				quiet(t, nodes)
				var state []string
				for _, n := range nodes {
					state = append(state, fmt.Sprintf("%s: %s", n.Name,
						n.QueryString(t, "SELECT string_agg(k || '=' || v, ' ' ORDER BY k) FROM kv WHERE k < 100")))
				}
				t.Logf("exchanges %s, then quiet; shared keys: %s", order.steps, strings.Join(state, "; "))
				sameEverywhere(t, "kv", nodes)
			})
		}
	}
}
