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

func init() {
	register("gen", "print the SQL that tracking and subscribing a table would run", runGen)
}

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
	var subSQL, keysSQL, rowsSQL, applySQL string
	err = tx.QueryRow(ctx, `
		SELECT format('INSERT INTO pgshadow.subscription (target, tbl, dest_schema, dest_table, columns, row_filter, mode, on_conflict, snapshot, created_by)'
		              || E'\nVALUES (%L, %L::regclass, %L, %L, %L, %L, %L, %L, pg_current_snapshot(), %L)',
		              s.target, s.tbl::oid, s.dest_schema, s.dest_table, s.columns, s.row_filter, s.mode, s.on_conflict, s.created_by),
		       pgshadow._keys_sql(s.tbl, '$old_snapshot', '$new_snapshot', NULL, NULL),
		       pgshadow._rows_sql(s, '(pending keys) k', NULL, NULL),
		       pgshadow._apply_sql(s, t, pgshadow._column_types(s),
		           (SELECT array_agg('{...}'::text) FROM unnest(t.key_cols)),
		           (SELECT array_agg('{...}'::text) FROM unnest(s.columns)))
		  FROM pgshadow.subscription s JOIN pgshadow.tracked t ON t.tbl = s.tbl
		 WHERE s.target = $1 AND s.tbl = $2::regclass`, o.target, o.table).Scan(&subSQL, &keysSQL, &rowsSQL, &applySQL)
	if err != nil {
		return fmt.Errorf("render export of %s: %w", o.table, err)
	}
	fmt.Fprintf(w, "\n-- subscription: its watermark starts at the snapshot of the subscribing transaction\n%s;\n", subSQL)
	fmt.Fprintf(w, "\n-- export, per batch: the keys whose transaction became visible between the two snapshots\n%s;\n", keysSQL)
	fmt.Fprintf(w, "\n-- export, per batch: their current rows (read on the source)\n%s;\n", rowsSQL)
	fmt.Fprintf(w, "\n-- export, per batch: applied on the target in one remote transaction (array literals elided)\nBEGIN;%s\nCOMMIT;\n", applySQL)
	fmt.Fprintf(w, "\n-- reset (copy again, restart the watermark): SELECT shadow_resync(%s, %s);\n", quoteLiteral(o.target), quoteLiteral(o.table))
	fmt.Fprintf(w, "-- undo: SELECT shadow_unsubscribe(%s, %s); SELECT shadow_untrack(%s);\n",
		quoteLiteral(o.target), quoteLiteral(o.table), quoteLiteral(o.table))
	return nil
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
