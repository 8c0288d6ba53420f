// Awkward values and names in sync and async mode: quotes, dollar quotes
// ($Q$), backslashes, control characters, SQL in data, non-ASCII text,
// NULLs, arrays, JSON and bytea arrive exactly as written, also in tables
// and columns whose names need quoting; TRUNCATE ships in both modes.
package modes

import (
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// awkward holds everything that breaks naive quoting (an E” literal).
const awkward = `E'quote \' double " dollar $Q$ $$ $x$ backslash \\ \\\\ newline \n tab \t cr \r; DROP TABLE kv; -- ü 日本 😀'`

// awkwardTable has a name and columns that need quoting, and a composite key.
const awkwardTable = `CREATE TABLE "odd $Q$ ""t""" (
    "k ey" text, n int, "v$Q$" text, j jsonb, b bytea, ta text[],
    PRIMARY KEY ("k ey", n))`

// awkwardRows inserts, updates and deletes awkward values.
var awkwardRows = []string{
	`INSERT INTO "odd $Q$ ""t""" VALUES
	    (` + awkward + `, 1, ` + awkward + `, jsonb_build_object('s', ` + awkward + `), convert_to(` + awkward + `, 'UTF8'), ARRAY[` + awkward + `, NULL, '', 'NULL']),
	    ('$Q$', 2, '$Q$ unterminated', '{"a": "$Q$"}', '\x00ff', '{}'),
	    ('plain', 3, NULL, NULL, NULL, NULL),
	    ('gone', 4, 'x', NULL, NULL, NULL)`,
	`UPDATE "odd $Q$ ""t""" SET "v$Q$" = "v$Q$" || ` + awkward + ` WHERE n = 2`,
	`UPDATE "odd $Q$ ""t""" SET "k ey" = ` + awkward + ` || '2' WHERE n = 3`,
	`DELETE FROM "odd $Q$ ""t""" WHERE n = 4`,
}

func TestAwkwardValuesInSyncAndAsyncMode(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, pgtest.Server("a"), pgtest.Server("b"))
			p.Both(t, awkwardTable)
			p.Subscribe(t, `"odd $Q$ ""t"""`, "mode => "+lit(mode))
			for _, sql := range awkwardRows {
				p.Src.Exec(t, sql)
				if mode == "async" {
					p.Src.Exec(t, "CALL shadow_run()")
					wantNoQueued(t, p.Src, `"odd $Q$ ""t"""`)
				}
				p.Same(t, `"odd $Q$ ""t"""`)
			}
			if n := p.Dst.QueryInt(t, `SELECT count(*) FROM "odd $Q$ ""t"""`); n != 3 {
				t.Errorf("target holds %d rows, want 3", n)
			}
			// TRUNCATE, then a row written after it
			p.Src.Exec(t, `BEGIN; TRUNCATE "odd $Q$ ""t"""; INSERT INTO "odd $Q$ ""t""" VALUES ('after', 5, `+awkward+`); COMMIT`)
			if mode == "async" {
				p.Src.Exec(t, "CALL shadow_run()")
			}
			if got := p.Dst.QueryStrings(t, `SELECT n FROM "odd $Q$ ""t"""`); len(got) != 1 || got[0] != "5" {
				t.Errorf("after TRUNCATE and one insert the target holds keys n = %q, want [5]", got)
			}
			p.Same(t, `"odd $Q$ ""t"""`)
		})
	}
}
