// `pgshadow export`: writes the pending batch of a file target as a batch
// directory (see package filemode), over an ordinary client connection; for
// a push target (a foreign server) it calls shadow_export and records a
// failure of the whole call, which shadow_export itself cannot keep.

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/internal/pgsession"
)

// dsnHelp documents -d for every command that connects.
const dsnHelp = "connection string or URL (libpq syntax, e.g. \"host=h dbname=d\" or postgres://u@h/d); PG* environment variables fill in the rest"

// exportCommand declares export's flags and returns its body.
func exportCommand(fs *flagSet) func(context.Context) error {
	dsn := fs.String("d", "", dsnHelp)
	target := fs.String("target", "", "push target (a foreign server), or file target, created with shadow_add_target(NAME, NULL)")
	dir := fs.String("dir", "", "file targets: export root: the batch is written to DIR/NAME/<batch>")
	progress := progressFlags(fs)
	return func(ctx context.Context) error {
		if *target == "" {
			return errors.New("-target is required (pgshadow export -h)")
		}
		conn, err := connectDB(ctx, *dsn)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var push bool
		err = conn.QueryRow(ctx, "SELECT server IS NOT NULL FROM pgshadow.target WHERE name = $1", *target).Scan(&push)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return oneLine(fmt.Errorf("read target %q (is pgshadow installed in this database?): %w", *target, err))
		}
		if push {
			if *dir != "" {
				return fmt.Errorf("target %q is a push target: it ships over its foreign server, drop -dir (which is for file targets)", *target)
			}
			return pushExport(ctx, conn, *dsn, *target, *fs.timeout, progress())
		}
		if *dir == "" {
			return errors.New("-dir is required for a file target (pgshadow export -h)")
		}
		res, err := filemode.Export(ctx, conn, filemode.ExportOptions{Target: *target, Dir: *dir, Progress: progress()})
		if err != nil {
			return oneLine(err)
		}
		if res.BatchDir == "" {
			fmt.Printf("nothing pending for target %q: no batch written\n", *target)
			return nil
		}
		fmt.Printf("wrote %s\n", res.BatchDir)
		for _, t := range res.Manifest.Tables {
			what := fmt.Sprintf("%d changed keys, %d rows", t.Keys, t.Rows)
			if t.FullCopy {
				what = fmt.Sprintf("full copy, %d rows", t.Rows)
			}
			fmt.Printf("  %s -> %s  batch %d: %s\n", t.SourceTable, t.Dest, t.BatchNo, what)
		}
		for _, tbl := range res.Unchanged {
			fmt.Printf("  %s: nothing pending\n", tbl)
		}
		return nil
	}
}

// pushExport ships a push target with shadow_export and prints its rows. A
// call that fails as a whole (every table failed: a target down) rolls back
// and keeps nothing, so the failure is then recorded in a transaction of its
// own (pgshadow.record_failure) on the caller's subscriptions of the target.
// At the deadline the server is asked to cancel, so no export goes on there
// holding the subscriptions' locks.
func pushExport(ctx context.Context, conn *pgx.Conn, dsn, target string, timeout time.Duration, progress *filemode.Progress) error {
	schema, err := pgsession.APISchema(ctx, conn)
	if err != nil {
		return oneLine(err)
	}
	// A consistent target ships all its tables at the snapshot of one
	// REPEATABLE READ transaction, and purges after its commit, on current
	// state (pgshadow._export_consistent).
	var consistent bool
	if err := conn.QueryRow(ctx, "SELECT pgshadow._consistent($1)", target).Scan(&consistent); err != nil {
		return oneLine(err)
	}
	wait, stop := pgsession.CancelOnDone(ctx, conn)
	if consistent {
		if _, err = conn.Exec(wait, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
			stop()
			return oneLine(err)
		}
	}
	stopWatch := watchPushProgress(ctx, dsn, schema, conn.PgConn().PID(), progress)
	header, rows, right, err := queryText(wait, conn, "SELECT * FROM "+schema+".shadow_export($1)", target)
	stopWatch()
	if consistent {
		if err == nil {
			_, err = conn.Exec(wait, "COMMIT")
		} else if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
			fmt.Fprintf(os.Stderr, "pgshadow export: %v\n", oneLine(rerr))
		}
	}
	if err == nil && consistent {
		if _, perr := conn.Exec(wait, "SELECT pgshadow.file_purge($1)", target); perr != nil {
			// shipped and committed: a later export purges
			fmt.Fprintf(os.Stderr, "pgshadow export: purge: %v\n", oneLine(perr))
		}
	}
	stop()
	if err != nil {
		if ctx.Err() != nil && timeout > 0 {
			err = fmt.Errorf("no answer within -timeout %s: %w", timeout, err)
		}
		cfg, _ := pgx.ParseConfig(dsn)
		if cfg != nil {
			pgsession.Configure(cfg)
		}
		if _, rerr := pgsession.RecordFailure(ctx, conn, cfg, target, false, "pgshadow export", err); rerr != nil {
			fmt.Fprintf(os.Stderr, "pgshadow export: %v\n", oneLine(rerr))
		}
		return oneLine(fmt.Errorf("shadow_export(%q): %w", target, err))
	}
	printTable(os.Stdout, header, rows, right)
	return nil
}

// connectDB opens a connection from a libpq connection string or URL; an
// empty one means the PG* environment variables (and libpq's defaults). The
// session is pinned as package pgsession describes (connect_timeout 10s
// unless the string sets one, keepalives, search_path pg_catalog, pg_temp).
func connectDB(ctx context.Context, dsn string) (*pgx.Conn, error) {
	conn, err := pgsession.Connect(ctx, dsn)
	if err != nil {
		return nil, oneLine(err)
	}
	return conn, nil
}

// timeoutHelp documents -timeout for the commands that take it.
const timeoutHelp = "give up after this long (e.g. 30s, 10m; 0: no limit); a server that stops answering otherwise holds the command until then"

// withTimeout bounds ctx by d (none when d is 0).
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// oneLine flattens an error onto a single line: every failure of the CLI is
// one line on stderr.
func oneLine(err error) error {
	if err == nil || !strings.ContainsAny(err.Error(), "\r\n") {
		return err
	}
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}
