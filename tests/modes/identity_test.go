// Mesh peers are known by identity, not by the names of the targets that
// point at them: a sender passes its node id, and the receiver finds the
// target that reaches that node by what the target learned over a
// connection (pgshadow.target.peer_id). So targets may be named anything, a
// node may be renamed, and a conflict policy that needs pgshadow on the
// target is refused where it is missing instead of acting as source_wins.
package modes

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// namedMesh is a mesh whose targets are named by names["a>b"] (the target
// on a that reaches b); nodes are named after their servers.
type namedMesh struct {
	nodes  map[string]*node
	target map[[2]string]string
}

func newNamedMesh(t *testing.T, policy, ddl string, names map[string]string, servers ...string) *namedMesh {
	t.Helper()
	m := &namedMesh{nodes: map[string]*node{}, target: map[[2]string]string{}}
	for _, s := range servers {
		m.nodes[s] = newNode(t, pgtest.Server(s), s)
		m.nodes[s].Exec(t, ddl)
	}
	for _, from := range servers {
		for _, to := range servers {
			if from == to {
				continue
			}
			name, ok := names[from+">"+to]
			if !ok {
				t.Fatalf("no target name for %s>%s", from, to)
			}
			m.target[[2]string{from, to}] = name
			link(t, m.nodes[from].DB, m.nodes[to].DB, name)
			m.nodes[from].Exec(t, "SELECT shadow_subscribe($1, 'kv', initial_copy => false, on_conflict => $2)", name, policy)
		}
	}
	return m
}

// ship exports from -> to through from's target for to; it returns the keys shipped.
func (m *namedMesh) ship(from, to string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n int64
	err := m.nodes[from].Pool.QueryRow(ctx, "SELECT coalesce(sum(keys), 0)::bigint FROM shadow_export($1)",
		m.target[[2]string{from, to}]).Scan(&n)
	return n, err
}

func (m *namedMesh) mustShip(t *testing.T, from, to string) int64 {
	t.Helper()
	n, err := m.ship(from, to)
	if err != nil {
		t.Fatalf("export %s -> %s (target %q): %s", from, to, m.target[[2]string{from, to}], pgtest.Describe(err))
	}
	return n
}

// quiet exchanges between every ordered pair until a round ships nothing,
// then checks that every node holds the same rows.
func (m *namedMesh) quiet(t *testing.T) {
	t.Helper()
	var all []*node
	for round := 1; ; round++ {
		if round > 10 {
			t.Fatalf("exchanges still ship keys after 10 rounds")
		}
		var moved int64
		all = all[:0]
		for from, a := range m.nodes {
			all = append(all, a)
			for to := range m.nodes {
				if from != to {
					moved += m.mustShip(t, from, to)
				}
			}
		}
		if moved == 0 {
			break
		}
	}
	sameEverywhere(t, "kv", all)
}

const kvDDL = "CREATE TABLE kv (k int PRIMARY KEY, v text)"

// Two nodes a and b whose targets are 'replica' (on a, reaching b) and
// 'back' (on b, reaching a): a same-key write on both sides is a conflict
// logged on b with both rows when a ships, and each policy does what it
// says. (Before peers were known by identity, b looked for its pending
// changes under a target named "a", found none, logged nothing, and every
// policy acted as source_wins.)
func TestPeersWithOtherTargetNamesDetectConflicts(t *testing.T) {
	names := map[string]string{"a>b": "replica", "b>a": "back"}
	for _, tc := range []struct {
		policy, resolution, onB string
	}{
		{"source_wins", "remote_applied", "a0"},
		{"target_wins", "local_kept", "b0"},
		{"error", "local_kept", "b0"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			m := newNamedMesh(t, tc.policy, kvDDL, names, "a", "b")
			a, b := m.nodes["a"], m.nodes["b"]
			a.Exec(t, "INSERT INTO kv VALUES (0, 'a0'), (1, 'a1')")
			b.Exec(t, "INSERT INTO kv VALUES (0, 'b0')")
			_, err := m.ship("a", "b")
			if tc.policy == "error" {
				wantError(t, "export a -> b under 'error'", err, "1 conflict(s)", `target "replica"`)
			} else if err != nil {
				t.Fatalf("export a -> b: %s", pgtest.Describe(err))
			}
			want := fmt.Sprintf(`["0"] b<-a %s %s remote=a0 local=b0`, tc.policy, tc.resolution)
			if got := conflicts(t, b); len(got) != 1 || got[0] != want {
				t.Fatalf("conflicts logged on b: %q, want [%q]", got, want)
			}
			if v := b.QueryString(t, "SELECT v FROM kv WHERE k = 0"); v != tc.onB {
				t.Errorf("key 0 on b after a's export under %s: %q, want %q", tc.policy, v, tc.onB)
			}
			// b learned which of its targets reaches a (its apply asked)
			if got := b.QueryString(t, "SELECT peer_node FROM pgshadow.target WHERE name = 'back'"); got != "a" {
				t.Errorf("target 'back' on b records peer node %q, want \"a\"", got)
			}
			if tc.policy == "error" {
				a.Exec(t, "SELECT shadow_skip('replica', 'kv', 'conflict on key 0 resolved for b')")
			}
			m.quiet(t)
		})
	}
}

// Three nodes, every target named otherwise than the node it reaches,
// under 'latest': a key written on a and then on c is a conflict on a when
// c ships to it (c's newer row applied), and all three converge.
func TestThreePeersWithOtherTargetNames(t *testing.T) {
	t.Parallel()
	m := newNamedMesh(t, "latest", kvDDL, map[string]string{
		"a>b": "east", "a>c": "west", "b>a": "up", "b>c": "down", "c>a": "left", "c>b": "right",
	}, "a", "b", "c")
	a, b, c := m.nodes["a"], m.nodes["b"], m.nodes["c"]
	a.Exec(t, "INSERT INTO kv VALUES (1, 'a1')")
	b.Exec(t, "INSERT INTO kv VALUES (2, 'b2')")
	c.Exec(t, "INSERT INTO kv VALUES (1, 'c1')")
	c.Exec(t, "INSERT INTO kv VALUES (2, 'c2')")
	m.mustShip(t, "c", "a")
	m.mustShip(t, "c", "b")
	if got, want := conflicts(t, a), `["1"] a<-c latest remote_applied remote=c1 local=a1`; len(got) != 1 || got[0] != want {
		t.Errorf("conflicts logged on a: %q, want [%q]", got, want)
	}
	if got, want := conflicts(t, b), `["2"] b<-c latest remote_applied remote=c2 local=b2`; len(got) != 1 || got[0] != want {
		t.Errorf("conflicts logged on b: %q, want [%q]", got, want)
	}
	m.quiet(t)
	wantRows(t, a.DB, "kv", "(1,c1)", "(2,c2)")
}

// A node renamed (its pgshadow.node_name changed) is still the same node:
// its peers find it by id, so the conflicts of its batches are still found
// and logged under its new name, and a peer's next connection to it
// records the new name (with a NOTICE).
func TestRenamedPeerIsStillFound(t *testing.T) {
	t.Parallel()
	m := newNamedMesh(t, "target_wins", kvDDL, map[string]string{"a>b": "replica", "b>a": "back"}, "a", "b")
	a, b := m.nodes["a"], m.nodes["b"]
	a.Exec(t, "INSERT INTO kv VALUES (1, 'a1')")
	m.quiet(t)

	b.Exec(t, fmt.Sprintf("ALTER DATABASE %s SET pgshadow.node_name = 'bee'", ident(b.DB.Name)))
	b.Pool.Reset()
	b.Name = "bee"
	a.Exec(t, "INSERT INTO kv VALUES (5, 'a5')")
	b.Exec(t, "INSERT INTO kv VALUES (5, 'b5')")
	m.mustShip(t, "b", "a")
	if got, want := conflicts(t, a), `["5"] a<-bee target_wins local_kept remote=b5 local=a5`; len(got) != 1 || got[0] != want {
		t.Fatalf("conflicts logged on a after b was renamed: %q, want [%q]", got, want)
	}
	if got := a.QueryString(t, "SELECT peer_node FROM pgshadow.target WHERE name = 'replica'"); got != "b" {
		t.Errorf("target 'replica' on a records %q before a connected to b again, want \"b\"", got)
	}
	m.mustShip(t, "a", "b")
	if got := a.QueryString(t, "SELECT peer_node FROM pgshadow.target WHERE name = 'replica'"); got != "bee" {
		t.Errorf("target 'replica' on a records %q after a connected to the renamed b, want \"bee\"", got)
	}
	m.quiet(t)
	wantRows(t, b.DB, "kv", "(1,a1)", "(5,a5)")
}

// A conflict policy other than source_wins needs pgshadow on the target:
// subscribing to a plain database with one is refused naming the target and
// the cause (with and without initial copy), and so is an export to a
// target that lost pgshadow since, instead of applying as source_wins.
func TestConflictPolicyNeedsPgshadowOnTheTarget(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDBWithExtension(t, pgtest.Server("a"))
	plain := pgtest.NewDB(t, pgtest.Server("b"))
	peer := pgtest.NewDBWithExtension(t, pgtest.Server("c"))
	for _, d := range []*pgtest.DB{src, plain, peer} {
		d.Exec(t, kvDDL)
	}
	link(t, src, plain, "plain")
	link(t, src, peer, "peer")
	src.Exec(t, "SELECT shadow_track('kv')")
	for _, copy := range []bool{false, true} {
		err := src.ExecErr("SELECT shadow_subscribe('plain', 'kv', initial_copy => $1, on_conflict => 'target_wins')", copy)
		wantError(t, fmt.Sprintf("subscribing with target_wins to a database without pgshadow (initial_copy %v)", copy),
			err, `target "plain"`, "does not run pgshadow")
	}
	if n := src.QueryInt(t, "SELECT count(*) FROM pgshadow.subscription"); n != 0 {
		t.Errorf("%d subscriptions after the refusals, want 0", n)
	}
	src.Exec(t, "SELECT shadow_subscribe('plain', 'kv', initial_copy => false)") // source_wins needs nothing

	src.Exec(t, "SELECT shadow_subscribe('peer', 'kv', initial_copy => false, on_conflict => 'error')")
	peer.Exec(t, "DROP EXTENSION pgshadow CASCADE")
	src.Exec(t, "INSERT INTO kv VALUES (1, 'x')")
	// its only table failed, so the call fails as a whole
	wantError(t, "export with on_conflict => error to a target without pgshadow",
		src.ExecErr("SELECT * FROM shadow_export('peer')"), `target "peer"`, "does not run pgshadow")
	wantRows(t, peer, "kv")
}

// A receiver that cannot ask a subscribed target which node it reaches
// (never learned, unreachable now) fails the peer's batch naming that
// target, instead of applying it as if it had no unshipped change; once
// the target answers, the conflict is found and logged.
func TestPeerThatCannotBeAskedFailsTheApply(t *testing.T) {
	t.Parallel()
	// source_wins without initial copy: subscribing connects to nobody
	m := newNamedMesh(t, "source_wins", kvDDL, map[string]string{"a>b": "replica", "b>a": "back"}, "a", "b")
	a, b := m.nodes["a"], m.nodes["b"]
	if n := b.QueryInt(t, "SELECT count(*) FROM pgshadow.target WHERE peer_at IS NOT NULL"); n != 0 {
		t.Fatalf("b recorded %d peers before any connection, want 0", n)
	}
	b.Exec(t, "ALTER SERVER srv_back OPTIONS (SET port '1')")
	a.Exec(t, "INSERT INTO kv VALUES (1, 'a1')")
	b.Exec(t, "INSERT INTO kv VALUES (1, 'b1')")
	_, err := m.ship("a", "b")
	wantError(t, "export a -> b while b cannot ask its target for a", err, `target "back"`, "cannot tell whether", `"a"`)
	wantRows(t, b.DB, "kv", "(1,b1)")

	b.Exec(t, fmt.Sprintf("ALTER SERVER srv_back OPTIONS (SET port %s)", lit(fmt.Sprint(a.Server.Port))))
	m.mustShip(t, "a", "b")
	if got, want := conflicts(t, b), `["1"] b<-a source_wins remote_applied remote=a1 local=b1`; len(got) != 1 || got[0] != want {
		t.Errorf("conflicts logged on b once it could ask: %q, want [%q]", got, want)
	}
	m.quiet(t)
}
