package security

// A watermark ahead of this server's transaction counter means the database
// was moved into another xid history, and the next export re-baselines every
// subscription of every role (all held keys ship again, file targets get a
// full copy). A table owner could move her own watermark there through
// pgshadow._advance and so force that on every other role's exports.

import (
	"testing"
)

func TestOwnerCannotForceARebaselineThroughHerWatermark(t *testing.T) {
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	run(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders')")
	id := s.Src.QueryString(t, "SELECT id::text FROM pgshadow.subscription")
	err := runErr(t, s.asAlice, "SELECT pgshadow._advance("+id+", '4000000000:4000000000:'::pg_snapshot, 0, 0)")
	if why := s.Src.QueryString(t, "SELECT coalesce(pgshadow._history_break(), '')"); why != "" {
		t.Fatalf("a table owner's watermark makes every export re-baseline: %s", why)
	}
	assertError(t, err, "moving a watermark into the future", "22023", "future")
	// a watermark of this server's history still moves
	run(t, s.asAlice, "SELECT pgshadow._advance("+id+", pg_current_snapshot(), 0, 0)")
}
