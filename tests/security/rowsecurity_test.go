package security

// Row security on the source table: a role that may SELECT the table but
// whose policies hide some of its rows cannot SELECT those rows, so it must
// not read them through what pgshadow keeps about the table either: conflict
// rows hold both versions of a row, error texts and skips quote values.

import (
	"testing"
)

func TestRowSecurityRestrictedReaderSeesNoConflictsOrErrors(t *testing.T) {
	s := newScene(t)
	s.letUseTarget(t, s.alice)
	run(t, s.asAlice, "SELECT shadow_subscribe('replica', 'orders')")
	// wally may SELECT orders, but only the rows that are not secret
	run(t, s.asAlice, `ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
		CREATE POLICY open_rows ON orders USING (v NOT LIKE 'secret%')`)
	s.Src.Exec(t, "INSERT INTO orders VALUES (1, 'secret card 6011-0000-0000-0012')")
	logRowsQuoting(t, s.Src, "secret card 6011-0000-0000-0012", "secret card 6011", "secret card 6012")
	if n := count(t, s.asWally, "SELECT count(*) FROM orders"); n != 0 {
		t.Fatalf("the scene is wrong: wally sees %d secret rows of orders", n)
	}
	for _, q := range quotingRows {
		if n := count(t, s.asWally, q); n != 0 {
			t.Errorf("%s, whose row policy hides the rows, sees %d rows quoting them: %s", s.wally, n, q)
		}
		if n := count(t, s.asAlice, q); n != 1 {
			t.Errorf("owner %s sees %d rows, want 1: %s", s.alice, n, q)
		}
	}
}
