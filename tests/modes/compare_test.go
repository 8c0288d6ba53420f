// shadow_compare: both sides hash their rows per key range; the ranges that
// differ are named, and repair => true re-ships exactly those.
package modes

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// compared renders shadow_compare's rows as "from..to src/dst repaired",
// with "-" for an open bound.
func compared(t *testing.T, d *pgtest.DB, chunk int, repair bool) []string {
	t.Helper()
	return d.QueryStrings(t, fmt.Sprintf(`SELECT coalesce(range_from::text, '-') || '..' || coalesce(range_to::text, '-')
		|| ' ' || source_rows || '/' || target_rows || ' ' || repaired
		FROM shadow_compare(%s, 'items', chunk_rows => %d, repair => %t)`, lit(target), chunk, repair))
}

// With a composite text/int key and the target table in another schema
// under another name, rows deleted, changed and added on the target (also
// below and above the source's key span) are found in exactly the ranges
// that hold them; repair makes the two equal, and later changes still ship.
func TestCompareNamesDifferingRangesAndRepairs(t *testing.T) {
	t.Parallel()
	p := newPair(t, pgtest.Server("a"), pgtest.Server("b"))
	p.Src.Exec(t, `CREATE TABLE items (region text, id int, v text, PRIMARY KEY (region, id))`)
	p.Dst.Exec(t, `CREATE SCHEMA replica; CREATE TABLE replica.items_copy (region text, id int, v text, PRIMARY KEY (region, id))`)
	// 100 rows: regions "eu" and "us" with ids 1..50 each
	p.Src.Exec(t, `INSERT INTO items SELECT r, i, r || ':' || i FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 50) i`)
	p.Subscribe(t, "items", "dest => 'replica.items_copy'")
	if got := compared(t, p.Src, 10, false); len(got) != 0 {
		t.Fatalf("shadow_compare right after the initial copy reports differences: %q", got)
	}

	// Range bounds are every 10th source key in key order: (eu,11), (eu,21),
	// ..., (us,41); the first range is open below, the last open above.
	p.Dst.Exec(t, `DELETE FROM replica.items_copy WHERE (region, id) = ('eu', 15)`)             // eu,11..eu,21
	p.Dst.Exec(t, `UPDATE replica.items_copy SET v = 'changed' WHERE (region, id) = ('us', 5)`) // us,1..us,11
	p.Dst.Exec(t, `INSERT INTO replica.items_copy VALUES ('eu', 1000, 'extra')`)                // eu,41..us,1
	p.Dst.Exec(t, `INSERT INTO replica.items_copy VALUES ('aa', 1, 'below')`)                   // -..eu,11
	p.Dst.Exec(t, `INSERT INTO replica.items_copy VALUES ('zz', 1, 'above')`)                   // us,41..-
	want := []string{
		"-..{eu,11} 10/11 false",
		"{eu,11}..{eu,21} 10/9 false",
		"{eu,41}..{us,1} 10/11 false",
		"{us,1}..{us,11} 10/10 false",
		"{us,41}..- 10/11 false",
	}
	got := compared(t, p.Src, 10, false)
	slices.Sort(got)
	if diff := pgtest.DiffRows(want, got); diff != "" {
		t.Fatalf("shadow_compare ranges: expected (-) vs reported (+):\n%s", diff)
	}

	repaired := compared(t, p.Src, 10, true)
	slices.Sort(repaired)
	for i := range want {
		want[i] = strings.TrimSuffix(want[i], "false") + "true"
	}
	if diff := pgtest.DiffRows(want, repaired); diff != "" {
		t.Errorf("shadow_compare(repair => true): expected (-) vs reported (+):\n%s", diff)
	}
	if got := compared(t, p.Src, 10, false); len(got) != 0 {
		t.Errorf("shadow_compare after repair still reports: %q", got)
	}
	pgtest.AssertSameRows(t, p.Src, "items", p.Dst, "replica.items_copy")

	p.Src.Exec(t, "UPDATE items SET v = 'later' WHERE region = 'eu' AND id <= 3")
	p.Src.Exec(t, "DELETE FROM items WHERE region = 'us' AND id > 45")
	p.Src.Exec(t, "SELECT shadow_export($1)", target)
	pgtest.AssertSameRows(t, p.Src, "items", p.Dst, "replica.items_copy")
	if got := compared(t, p.Src, 7, false); len(got) != 0 {
		t.Errorf("shadow_compare (chunk 7) after later changes shipped reports: %q", got)
	}
}
