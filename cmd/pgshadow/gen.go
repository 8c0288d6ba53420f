// The gen subcommand prints, for review, the SQL that tracking a table and
// subscribing it to a target would execute. The tracking steps come from
// pgshadow.track_plan(), the very function shadow_track() executes; the
// subscription's export queries are rendered from a subscription created in
// a transaction that is rolled back, so nothing is changed.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/internal/pgsession"
)

type genOptions struct {
	conn, table, target, dest, columns, rowFilter, mode string
}

func runGen(ctx context.Context, args []string) error {
	fs := newFlagSet("gen", "pgshadow gen -d CONNSTR -table TABLE [-target NAME [-dest D] [-columns a,b] [-row-filter EXPR] [-mode batch|async|sync]]")
	var o genOptions
	fs.StringVar(&o.conn, "d", "", "source database (libpq connection string or URL; PG* variables apply)")
	fs.StringVar(&o.table, "table", "", "table to track (schema-qualified as needed)")
	fs.StringVar(&o.target, "target", "", "target to subscribe the table to (optional)")
	fs.StringVar(&o.dest, "dest", "", "destination table on the target (default: same name)")
	fs.StringVar(&o.columns, "columns", "", "comma-separated column subset (default: all)")
	fs.StringVar(&o.rowFilter, "row-filter", "", "boolean SQL expression over the source row")
	fs.StringVar(&o.mode, "mode", "batch", "batch, async or sync")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.table == "" {
		return errors.New("-table is required")
	}
	cfg, err := pgx.ParseConfig(o.conn)
	if err != nil {
		return fmt.Errorf("connection string: %w", err)
	}
	pgsession.Configure(cfg)
	// -table is named as the user would name it in their own sessions: it is
	// resolved under the role's own search_path (a name lookup, which runs
	// nothing); everything after runs pinned to pg_catalog, pg_temp
	delete(cfg.RuntimeParams, "search_path")
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	var oid uint32
	if err := conn.QueryRow(ctx, "SELECT $1::pg_catalog.regclass::pg_catalog.oid", o.table).Scan(&oid); err != nil {
		return fmt.Errorf("table %s: %w", o.table, err)
	}
	if _, err := conn.Exec(ctx, "SET search_path = "+pgsession.SearchPath); err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, "SELECT $1::pg_catalog.oid::pg_catalog.regclass::pg_catalog.text", oid).Scan(&o.table); err != nil {
		return fmt.Errorf("table %s: %w", o.table, err)
	}
	return writePlan(ctx, conn, os.Stdout, o)
}

func writePlan(ctx context.Context, conn *pgx.Conn, w io.Writer, o genOptions) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	// everything below only reads, or writes what this rollback undoes
	defer tx.Rollback(context.Background())

	fmt.Fprintf(w, "-- pgshadow gen: what tracking %s runs (pgshadow.track_plan)\n", o.table)
	rows, err := tx.Query(ctx, `SELECT step, kind, sql FROM pgshadow.track_plan($1::regclass) ORDER BY step`, o.table)
	if err != nil {
		return fmt.Errorf("plan tracking of %s: %w", o.table, err)
	}
	for rows.Next() {
		var step int
		var kind, sql string
		if err := rows.Scan(&step, &kind, &sql); err != nil {
			return err
		}
		rights := "pgshadow's rights"
		if kind == "trigger" {
			rights = "the table owner's rights"
		}
		fmt.Fprintf(w, "\n-- step %d, with %s\n%s;\n", step, rights, sql)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("plan tracking of %s: %w", o.table, err)
	}
	if o.target == "" {
		fmt.Fprintf(w, "\n-- undo: SELECT shadow_untrack(%s);\n", quoteLiteral(o.table))
		return nil
	}

	var columns any
	if o.columns != "" {
		columns = strings.Split(o.columns, ",")
	}
	var dest, filter any
	if o.dest != "" {
		dest = o.dest
	}
	if o.rowFilter != "" {
		filter = o.rowFilter
	}
	var subscribed bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pgshadow.subscription WHERE target = $1 AND tbl = $2::regclass)`,
		o.target, o.table).Scan(&subscribed); err != nil {
		return err
	}
	if subscribed {
		fmt.Fprintf(w, "\n-- %s is already subscribed to %s; showing its export\n", o.table, o.target)
	} else if schema, err := pgsession.APISchema(ctx, tx.Conn()); err != nil {
		return err
	} else if _, err := tx.Exec(ctx, `SELECT `+schema+`.shadow_subscribe($1, $2::regclass, dest => $3, columns => $4, row_filter => $5,
	                                                  initial_copy => false, mode => $6)`,
		o.target, o.table, dest, columns, filter, o.mode); err != nil {
		return fmt.Errorf("plan subscription of %s to %s: %w", o.table, o.target, err)
	}
	var subSQL string
	var push bool
	err = tx.QueryRow(ctx, `
		SELECT format('INSERT INTO pgshadow.subscription (target, tbl, dest_schema, dest_table, columns, row_filter, mode, on_conflict, snapshot, created_by)'
		              || E'\nVALUES (%L, %L::regclass, %L, %L, %L, %L, %L, %L, pg_current_snapshot(), %L)',
		              s.target, s.tbl::oid, s.dest_schema, s.dest_table, s.columns, s.row_filter, s.mode, s.on_conflict, s.created_by),
		       g.server IS NOT NULL
		  FROM pgshadow.subscription s JOIN pgshadow.target g ON g.name = s.target
		 WHERE s.target = $1 AND s.tbl = $2::regclass`, o.target, o.table).Scan(&subSQL, &push)
	if err != nil {
		return fmt.Errorf("render export of %s: %w", o.table, err)
	}
	fmt.Fprintf(w, "\n-- subscription: its watermark starts at the snapshot of the subscribing transaction\n%s;\n", subSQL)
	// Each query below is rendered by the function the export itself calls
	// for it, so what is printed is what runs.
	var steps []genStep
	if push {
		steps = pushSteps
	} else {
		steps = fileSteps
	}
	for _, s := range steps {
		var sql string
		if err := tx.QueryRow(ctx, `SELECT `+s.sql+`
		  FROM pgshadow.subscription s JOIN pgshadow.tracked t ON t.tbl = s.tbl
		 WHERE s.target = $1 AND s.tbl = $2::regclass`, o.target, o.table).Scan(&sql); err != nil {
			return fmt.Errorf("render export of %s: %w", o.table, err)
		}
		fmt.Fprintf(w, "\n-- %s\n%s;\n", s.title, strings.TrimSuffix(strings.TrimSpace(sql), ";"))
	}
	fmt.Fprintf(w, "\n-- reset (copy again, restart the watermark): SELECT shadow_resync(%s, %s);\n", quoteLiteral(o.target), quoteLiteral(o.table))
	fmt.Fprintf(w, "-- undo: SELECT shadow_unsubscribe(%s, %s); SELECT shadow_untrack(%s);\n",
		quoteLiteral(o.target), quoteLiteral(o.table), quoteLiteral(o.table))
	return nil
}

// genStep is one query an export runs: what it does, and the SQL expression
// (over subscription s and tracked table t) that renders it.
type genStep struct{ title, sql string }

// elided stands for a chunk's array literals, one per column of cols.
func elided(cols string) string {
	return "(SELECT pg_catalog.array_agg('{...}'::text) FROM pg_catalog.unnest(" + cols + "))"
}

// pushSteps: what shadow_export runs for a target that is a foreign server
// (pgshadow._ship); fileSteps: what `pgshadow export` reads for a file
// target (pgshadow.file_batches).
var (
	pushSteps = []genStep{
		{"push export, per batch, on the source: the keys to delete on the target in chunks ($1, $2 the watermark snapshots, $3 keys per chunk; where the target allows an upsert, only keys without a current row, as below)",
			"pgshadow._key_chunks_sql(s, t, false)"},
		{"push export, per batch, where the target allows an upsert (pgshadow._apply_mode)",
			"pgshadow._key_chunks_sql(s, t, true)"},
		{"push export, per batch, on the source: the current rows of the pending keys in chunks ($3 rows per chunk)",
			"pgshadow._row_chunks_sql(s, pgshadow._pending_keys_sql(t), false)"},
		{"push export, per batch, on the target, in one remote transaction: a chunk's values are first staged (SET LOCAL pgshadow.k1 = ..., elided), then applied by",
			"pgshadow._remote_begin() || pgshadow._apply_text(s, t, pgshadow._column_types(s), pgshadow._staged('k', " + elided("t.key_cols") + ", true), NULL, false)" +
				" || pgshadow._apply_text(s, t, pgshadow._column_types(s), NULL, pgshadow._staged('r', " + elided("s.columns") + ", true), false) || ' COMMIT'"},
		{"push export, per batch, where the target allows an upsert: the rows go as",
			"pgshadow._apply_text(s, t, pgshadow._column_types(s), NULL, pgshadow._staged('r', " + elided("s.columns") + ", true), true)"},
		{"push export to a target that runs pgshadow (a peer): each chunk of keys with its rows and versions, read by this query, goes to the target's pgshadow.apply()",
			"pgshadow._chunk_sql(s)"},
	}
	fileSteps = []genStep{
		{"file export, per batch: the keys whose transaction became visible between the two snapshots",
			"pgshadow._keys_sql(s.tbl, '$old_snapshot', '$new_snapshot', NULL, NULL)"},
		{"file export, per batch: their current rows (read on the source)",
			"pgshadow._rows_sql(s, '(pending keys) k', NULL, NULL)"},
		{"file import (pgshadow import), per batch, on the target in one transaction: the keys are copied into a temporary table (keys), then",
			"pg_catalog.format(E'DELETE FROM %1$I.%2$I d USING keys k WHERE %3$s;\\nCOPY %1$I.%2$I (%4$s) FROM STDIN', s.dest_schema, s.dest_table, " +
				"(SELECT pg_catalog.string_agg(pg_catalog.format('d.%1$I = k.%1$I', c), ' AND ') FROM pg_catalog.unnest(t.key_cols) c), " +
				"(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(s.columns) c))"},
	}
)

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
