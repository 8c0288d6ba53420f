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
		// what pgshadow import runs on the target (filemode.applyRows)
		`DELETE FROM public."Orders" d USING keys k WHERE d.region = k.region AND d.id = k.id;`,
		`COPY public."Orders" (region, id) FROM STDIN`,
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

// For a push target gen prints what shadow_export runs (pgshadow._ship):
// rendered by the same functions, which _ship calls rather than writing its
// queries inline.
func TestGenPrintsWhatPushExportRuns(t *testing.T) {
	src := pgtest.NewDBWithExtension(t, pgtest.Server("migrate"))
	dst := pgtest.NewDB(t, pgtest.Server("migrate"))
	src.Exec(t, `CREATE TABLE orders (region text, id int, note text, PRIMARY KEY (region, id))`)
	src.AddPushTarget(t, "replica", "replica_srv", dst)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, src.ConnString())
	require.NoError(t, err)
	defer conn.Close(ctx)

	var out bytes.Buffer
	require.NoError(t, writePlan(ctx, conn, &out, genOptions{table: "orders", target: "replica", mode: "batch"}))
	plan := out.String()
	for _, want := range []string{
		// the keys to delete, in chunks, and (upsert) only those without a row
		`row_number() OVER (ORDER BY region, id) AS pgshadow_rn, true AS pgshadow_gone FROM pgshadow.public__orders s`,
		`NOT EXISTS (SELECT FROM public.orders t WHERE t.region = s.region AND t.id = s.id AND (true)) AS pgshadow_gone`,
		// the rows, semi-joined with the pending keys
		`AND (t.region, t.id) IN (SELECT region, id FROM (SELECT region, id FROM pgshadow.public__orders WHERE shadow_xid >= pg_snapshot_xmin($1)`,
		// the remote transaction: fixed settings, staged values, apply
		`SET LOCAL pgshadow.origin`,
		`DELETE FROM public.orders d USING unnest(pg_catalog.current_setting('pgshadow.k1')::text[]`,
		`INSERT INTO public.orders (region, id, note) OVERRIDING SYSTEM VALUE SELECT unnest(pg_catalog.current_setting('pgshadow.r1')::text[])`,
		`ON CONFLICT (region, id) DO UPDATE SET note = EXCLUDED.note;`,
		// a peer's chunk query
		`WITH k AS MATERIALIZED (SELECT region, id, max(shadow_at) AS shadow_at FROM pgshadow.public__orders`,
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q; plan:\n%s", want, plan)
		}
	}
	// the renderers gen calls are those _ship and _ship_peer call
	src.Exec(t, `SELECT shadow_track('orders')`)
	for _, fn := range []string{"pgshadow._key_chunks_sql(", "pgshadow._row_chunks_sql(", "pgshadow._pending_keys_sql(",
		"pgshadow._apply_text(", "pgshadow._staged(", "pgshadow._remote_begin(", "pgshadow._chunk_sql("} {
		require.NotZero(t, src.QueryInt(t, `SELECT count(*) FROM pg_proc
			WHERE oid IN ('pgshadow._ship'::regproc, 'pgshadow._ship_peer'::regproc) AND strpos(prosrc, $1) > 0`, fn),
			"%s: gen prints a query that push export does not render with it", fn)
	}
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
