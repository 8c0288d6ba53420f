// Names that need quoting: every place pgshadow builds SQL from a schema,
// table or column name must quote it, on the source and on the target.
package replication

import (
	"testing"
)

// awkwardDDL is a schema and two tables whose names need quoting everywhere:
// spaces, double quotes, upper case, unicode, reserved words; the composite
// key runs over two such columns.
const awkwardDDL = `
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Tab""le" (
    "ünïcödé" text,
    "from"    int,
    "Select"  text,
    "a ""b"" c" int,
    PRIMARY KEY ("ünïcödé", "from"));
CREATE TABLE "My Schema"."select" ("where" int PRIMARY KEY, "Group" text);`

// awkwardCols are the columns of "Tab""le" in source order; the target
// table has them in another order.
var awkwardCols = []string{`"ünïcödé"`, `"from"`, `"Select"`, `"a ""b"" c"`}

// Tables, schemas and columns with awkward names replicate, to the same names
// and to a differently named table in another schema.
func TestAwkwardIdentifiersReplicate(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Both(t, awkwardDDL)
	p.Dst.Exec(t, `CREATE SCHEMA "Dést ""x"" Schema";
		CREATE TABLE "Dést ""x"" Schema"."Other.Table" (
		    "Select" text, "from" int, "a ""b"" c" int, "ünïcödé" text,
		    PRIMARY KEY ("ünïcödé", "from"))`)

	p.Src.Exec(t, `INSERT INTO "My Schema"."Tab""le" VALUES ('ä', 1, 'x', 1), ('ä', 2, 'y', 2), ('"q"', 1, 'z', NULL)`)
	p.Src.Exec(t, `INSERT INTO "My Schema"."select" VALUES (1, 'one'), (2, 'two')`)
	p.Subscribe(t, `"My Schema"."Tab""le"`, `dest => '"Dést ""x"" Schema"."Other.Table"'`)
	p.Subscribe(t, `"My Schema"."select"`)
	p.Same(t, `"My Schema"."Tab""le"`, `"Dést ""x"" Schema"."Other.Table"`, awkwardCols...)
	p.Same(t, `"My Schema"."select"`, `"My Schema"."select"`)

	p.Src.Exec(t, `UPDATE "My Schema"."Tab""le" SET "Select" = 'changed' WHERE "from" = 1`)
	p.Src.Exec(t, `UPDATE "My Schema"."Tab""le" SET "from" = 3 WHERE "ünïcödé" = 'ä' AND "from" = 2`)
	p.Src.Exec(t, `DELETE FROM "My Schema"."Tab""le" WHERE "ünïcödé" = '"q"'`)
	p.Src.Exec(t, `INSERT INTO "My Schema"."Tab""le" VALUES ('ñ''"', 7, E'line\nbreak', 7)`)
	p.Src.Exec(t, `UPDATE "My Schema"."select" SET "where" = 3 WHERE "where" = 2`)
	p.Src.Exec(t, `TRUNCATE "My Schema"."select"; INSERT INTO "My Schema"."select" VALUES (9, 'nine')`)
	res := p.Export(t)
	for _, tbl := range []string{`"My Schema"."Tab""le"`, `"My Schema"."select"`} {
		if _, ok := res[tbl]; !ok {
			t.Errorf("export result has no row for %s (got %v)", tbl, res)
		}
	}
	if got, want := res[`"My Schema"."Tab""le"`].Dest, `"Dést ""x"" Schema"."Other.Table"`; got != want {
		t.Errorf("export result dest = %s, want %s", got, want)
	}
	p.Same(t, `"My Schema"."Tab""le"`, `"Dést ""x"" Schema"."Other.Table"`, awkwardCols...)
	p.Same(t, `"My Schema"."select"`, `"My Schema"."select"`)
	wantRows(t, p.Dst, `"My Schema"."select"`, "(9,nine)")
}

// Renaming the source table or its schema after subscribing changes nothing
// for the target: changes keep shipping to the same destination.
func TestRenamedSourceTableKeepsShipping(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Both(t, `CREATE SCHEMA s1; CREATE TABLE s1.tbl (id int PRIMARY KEY, v text)`)
	p.Src.Exec(t, "INSERT INTO s1.tbl VALUES (1, 'before')")
	p.Subscribe(t, "s1.tbl")
	p.Src.Exec(t, `ALTER TABLE s1.tbl RENAME TO "Renamed Table"; ALTER SCHEMA s1 RENAME TO "S 2"`)
	p.Src.Exec(t, `INSERT INTO "S 2"."Renamed Table" VALUES (2, 'after')`)
	p.Src.Exec(t, `UPDATE "S 2"."Renamed Table" SET v = 'changed' WHERE id = 1`)
	res := p.Export(t)
	if got := res[`"S 2"."Renamed Table"`]; got.Dest != "s1.tbl" || got.Keys != 2 {
		t.Errorf("export result %+v, want dest s1.tbl and 2 keys", res)
	}
	p.Same(t, `"S 2"."Renamed Table"`, "s1.tbl")
}
