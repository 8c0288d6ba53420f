package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestGenPrintsTheTrackingAndExportSQLAndChangesNothing(t *testing.T) {
	db := pgtest.NewDBWithExtension(t, pgtest.Server("migrate"))
	db.Exec(t, `CREATE TABLE "Orders" (region text, id int, note text, PRIMARY KEY (region, id))`)
	db.Exec(t, `SELECT shadow_add_target('files', NULL)`)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.ConnString())
	require.NoError(t, err)
	defer conn.Close(ctx)

	var out bytes.Buffer
	require.NoError(t, writePlan(ctx, conn, &out, genOptions{table: `"Orders"`, target: "files", columns: "region,id", rowFilter: "id > 0", mode: "batch"}))
	plan := out.String()
	for _, want := range []string{
		`CREATE TABLE IF NOT EXISTS pgshadow."public__Orders" (region text, id integer`,
		// the table's own capture function, and the triggers that call it
		`CREATE OR REPLACE FUNCTION pgshadow."public__Orders_fn"() RETURNS trigger`,
		`ALTER FUNCTION pgshadow."public__Orders_fn"() OWNER TO`,
		`CREATE TRIGGER pgshadow_capture_upd AFTER UPDATE ON public."Orders" REFERENCING NEW TABLE AS pgshadow_new FOR EACH STATEMENT EXECUTE FUNCTION pgshadow."public__Orders_fn"()`,
		`GROUP BY region, id ORDER BY region, id`,
		// the row filter as stored: its canonical rendering (pgshadow._filter)
		`WHERE (((t.id OPERATOR(pg_catalog.>) CAST('0' AS integer)))) AND (t.region, t.id) IN`,
		`DELETE FROM public."Orders" d USING unnest($s${...}$s$::text[], $s${...}$s$::integer[]) AS k(region, id) WHERE d.region = k.region AND d.id = k.id;`,
		`INSERT INTO public."Orders" (region, id) OVERRIDING SYSTEM VALUE SELECT unnest($s${...}$s$::text[]), unnest($s${...}$s$::integer[]);`,
		`SELECT shadow_resync('files', '"Orders"')`,
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q; plan:\n%s", want, plan)
		}
	}
	require.Equal(t, int64(0), db.QueryInt(t, `SELECT count(*) FROM pgshadow.tracked`), "gen must not track")
	require.Equal(t, int64(0), db.QueryInt(t, `SELECT count(*) FROM pgshadow.subscription`), "gen must not subscribe")
	require.Equal(t, int64(0), db.QueryInt(t, `SELECT count(*) FROM pg_trigger WHERE tgrelid = '"Orders"'::regclass`), "gen must not create triggers")
}

func TestGenNamesTheTableThatCannotBeTracked(t *testing.T) {
	db := pgtest.NewDBWithExtension(t, pgtest.Server("migrate"))
	db.Exec(t, `CREATE TABLE nokey (v text)`)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.ConnString())
	require.NoError(t, err)
	defer conn.Close(ctx)
	err = writePlan(ctx, conn, &bytes.Buffer{}, genOptions{table: "nokey"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "cannot track public.nokey: it has no primary key")
}
