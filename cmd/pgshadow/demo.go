// `pgshadow demo`: the whole job on two throwaway local servers. It ships a
// sample table from a source database to a target database with
// shadow_export (push mode), then to a third database through files
// (export/import), printing every SQL statement it runs, and checks that all
// three end with identical rows. Everything it starts is removed on exit,
// also on SIGINT/SIGTERM.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/internal/pgserver"
)

const demoTable = `CREATE TABLE orders (
    region   text,
    id       bigint,
    customer text NOT NULL,
    amount   numeric(12,2) NOT NULL,
    placed   timestamptz NOT NULL,
    details  jsonb,
    PRIMARY KEY (region, id)
)`

// demoChanges are the writes made after subscribing: inserts, updates,
// deletes and a primary key update, in separate transactions.
var demoChanges = []string{
	`INSERT INTO orders SELECT 'eu', g, 'new customer ' || g, g * 3.5, '2024-06-01 09:00+02', '{"gift": true}' FROM generate_series(1001, 1010) g`,
	`UPDATE orders SET amount = amount * 1.1, details = details || '{"repriced": true}' WHERE region = 'us' AND id % 10 = 1`,
	`DELETE FROM orders WHERE region = 'eu' AND id BETWEEN 20 AND 29`,
	`UPDATE orders SET region = 'apac' WHERE region = 'us' AND id IN (1, 3, 5)`,
}

type demo struct {
	out  io.Writer
	step int
}

func runDemo(ctx context.Context, args []string) error {
	fs := newFlagSet("demo", "pgshadow demo")
	if err := fs.parseFlagsOnly(args); err != nil {
		return err
	}
	start := time.Now()
	// A closed output (make demo | head) must stop the demo and its
	// servers, not kill the process and leave them running: a write to a
	// broken pipe then fails with EPIPE instead of raising SIGPIPE, and the
	// first failed write cancels the run, whose defers stop the servers.
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &cancelOnError{w: os.Stdout, cancel: cancel}
	d := &demo{out: out}
	err := d.run(ctx)
	fmt.Fprintf(d.out, "\n(%.1fs)\n", time.Since(start).Seconds())
	switch {
	case out.err != nil:
		return fmt.Errorf("output closed (%v): servers stopped and their files removed", out.err)
	case err != nil && ctx.Err() != nil:
		return errors.New("interrupted: servers stopped and their files removed")
	}
	return err
}

// cancelOnError writes to w until a write fails, then cancels the run and
// discards the rest.
type cancelOnError struct {
	w      io.Writer
	cancel context.CancelFunc
	err    error
}

func (c *cancelOnError) Write(p []byte) (int, error) {
	if c.err != nil {
		return len(p), nil
	}
	if _, err := c.w.Write(p); err != nil {
		c.err = err
		c.cancel()
	}
	return len(p), nil
}

func (d *demo) run(ctx context.Context) (err error) {
	d.section("Start two throwaway PostgreSQL servers")
	var srcSrv, dstSrv *pgserver.Server
	var wg sync.WaitGroup
	var srcErr, dstErr error
	wg.Add(2)
	go func() { defer wg.Done(); srcSrv, srcErr = pgserver.Start(ctx, pgserver.Options{Name: "demo-source"}) }()
	go func() { defer wg.Done(); dstSrv, dstErr = pgserver.Start(ctx, pgserver.Options{Name: "demo-target"}) }()
	wg.Wait()
	defer func() {
		for _, s := range []*pgserver.Server{srcSrv, dstSrv} {
			if s != nil {
				if serr := s.Stop(); serr != nil && err == nil {
					err = serr
				}
			}
		}
		fmt.Fprintln(d.out, "\nservers stopped, their files removed")
	}()
	if err := errors.Join(srcErr, dstErr); err != nil {
		return oneLine(err)
	}
	for _, s := range []*pgserver.Server{srcSrv, dstSrv} {
		fmt.Fprintf(d.out, "%s: %s:%d, files in %s\n", s.Name, s.Host, s.Port, s.BaseDir)
	}
	dir, err := os.MkdirTemp("", "pgshadow-demo-files-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	d.section("Create the databases")
	for _, db := range []struct {
		s    *pgserver.Server
		name string
	}{{srcSrv, "shop"}, {dstSrv, "shop_copy"}, {dstSrv, "shop_files"}} {
		if err := d.execOn(ctx, db.s, "postgres", "CREATE DATABASE "+db.name); err != nil {
			return err
		}
	}
	src, err := d.connect(ctx, srcSrv, "shop")
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	push, err := d.connect(ctx, dstSrv, "shop_copy")
	if err != nil {
		return err
	}
	defer push.Close(context.WithoutCancel(ctx))
	files, err := d.connect(ctx, dstSrv, "shop_files")
	if err != nil {
		return err
	}
	defer files.Close(context.WithoutCancel(ctx))

	d.section("Install pgshadow on the source (dblink and postgres_fdw come with CASCADE)")
	if err := d.exec(ctx, src, "source", "CREATE EXTENSION pgshadow CASCADE"); err != nil {
		return err
	}

	d.section("The sample table, on the source and on both targets")
	for _, c := range []struct {
		name string
		conn *pgx.Conn
	}{{"source", src}, {"shop_copy", push}, {"shop_files", files}} {
		if err := d.exec(ctx, c.conn, c.name, demoTable); err != nil {
			return err
		}
	}
	if err := d.exec(ctx, src, "source", `INSERT INTO orders
    SELECT (ARRAY['eu', 'us'])[1 + g % 2], g, 'customer ' || g, g * 1.25,
           '2024-01-01 00:00+00'::timestamptz + g * interval '7 hours', jsonb_build_object('items', g % 5)
      FROM generate_series(1, 1000) g`); err != nil {
		return err
	}

	d.section("Push mode: a foreign server for the target, with the password in a user mapping")
	server := fmt.Sprintf("CREATE SERVER copy_server FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %s, port '%d', dbname 'shop_copy')",
		sqlLit(dstSrv.Host), dstSrv.Port)
	if err := d.exec(ctx, src, "source", server); err != nil {
		return err
	}
	mapping := "CREATE USER MAPPING FOR CURRENT_USER SERVER copy_server OPTIONS (user %s, password %s)"
	if err := d.execShown(ctx, src, "source", fmt.Sprintf(mapping, sqlLit(dstSrv.User), "'***'"),
		fmt.Sprintf(mapping, sqlLit(dstSrv.User), sqlLit(dstSrv.Password))); err != nil {
		return err
	}
	for _, sql := range []string{"SELECT shadow_add_target('copy', 'copy_server')", "SELECT shadow_track('orders')", "SELECT shadow_subscribe('copy', 'orders') AS rows_copied"} {
		if err := d.query(ctx, src, "source", sql); err != nil {
			return err
		}
	}

	d.section("File mode: a target without a server, shipped to by pgshadow export / import")
	for _, sql := range []string{"SELECT shadow_add_target('files', NULL)", "SELECT shadow_subscribe('files', 'orders')"} {
		if err := d.query(ctx, src, "source", sql); err != nil {
			return err
		}
	}
	if err := d.fileRound(ctx, src, files, dir, "the initial copy"); err != nil {
		return err
	}

	d.section("Change the source: inserts, updates, deletes, a primary key update")
	for _, sql := range demoChanges {
		if err := d.exec(ctx, src, "source", sql); err != nil {
			return err
		}
	}

	d.section("What the capture triggers recorded: changed keys only, with their transaction")
	var shadow string
	if err := src.QueryRow(ctx, "SELECT shadow FROM pgshadow.tracked WHERE tbl = 'orders'::regclass").Scan(&shadow); err != nil {
		return oneLine(fmt.Errorf("find the shadow table: %w", err))
	}
	shadowSQL := fmt.Sprintf(`SELECT shadow_xid, shadow_op, count(*) AS rows,
       array_to_string((array_agg(region || '/' || id ORDER BY region, id))[1:6], ' ')
         || CASE WHEN count(*) > 6 THEN ' ...' ELSE '' END AS keys
  FROM pgshadow.%s GROUP BY shadow_xid, shadow_op ORDER BY shadow_xid, shadow_op`, pgx.Identifier{shadow}.Sanitize())
	if err := d.query(ctx, src, "source", shadowSQL); err != nil {
		return err
	}
	if err := d.query(ctx, src, "source", "SELECT target, \"table\", pending_keys, batches FROM shadow_status ORDER BY target"); err != nil {
		return err
	}

	d.section("Push mode: ship the pending changes")
	if err := d.query(ctx, src, "source", "SELECT * FROM shadow_export('copy')"); err != nil {
		return err
	}
	pushOK, err := d.verify(ctx, src, push, "shop_copy")
	if err != nil {
		return err
	}

	if err := d.fileRound(ctx, src, files, dir, "the changes"); err != nil {
		return err
	}
	filesOK, err := d.verify(ctx, src, files, "shop_files")
	if err != nil {
		return err
	}

	d.section("Status after both exports")
	if err := d.query(ctx, src, "source", "SELECT target, \"table\", dest, pending_keys, batches, keys_shipped FROM shadow_status ORDER BY target"); err != nil {
		return err
	}

	fmt.Fprintln(d.out)
	if !pushOK || !filesOK {
		fmt.Fprintln(d.out, "FAIL")
		return errors.New("verification failed: the targets differ from the source")
	}
	fmt.Fprintln(d.out, "PASS: both targets hold exactly the source's rows")
	return nil
}

// fileRound exports the file target and imports the batch into files.
func (d *demo) fileRound(ctx context.Context, src, files *pgx.Conn, dir, what string) error {
	d.section("File mode: export " + what + ", then import the batch")
	fmt.Fprintf(d.out, "$ pgshadow export -d <source> -target files -dir %s\n", dir)
	res, err := filemode.Export(ctx, src, filemode.ExportOptions{Target: "files", Dir: dir, Progress: stderrProgress(0)})
	if err != nil {
		return oneLine(fmt.Errorf("export: %w", err))
	}
	if res.BatchDir == "" {
		return errors.New("export: nothing was pending, yet the demo just changed the table")
	}
	entries, err := os.ReadDir(res.BatchDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "wrote %s:\n", res.BatchDir)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(d.out, "  %-14s %8d bytes\n", e.Name(), info.Size())
	}
	for _, t := range res.Manifest.Tables {
		fmt.Fprintf(d.out, "  %s: batch %d, full copy %v, %d keys, %d rows\n", t.SourceTable, t.BatchNo, t.FullCopy, t.Keys, t.Rows)
	}
	fmt.Fprintf(d.out, "$ pgshadow import -d <shop_files> -dir %s\n", res.BatchDir)
	ires, err := filemode.Import(ctx, files, filemode.ImportOptions{Dir: res.BatchDir, Progress: stderrProgress(0)})
	if err != nil {
		return oneLine(fmt.Errorf("import: %w", err))
	}
	for _, t := range ires.Tables {
		fmt.Fprintf(d.out, "  %s batch %d %s: %d rows deleted by key, %d rows written\n", t.Dest, t.BatchNo, t.Outcome, t.Deleted, t.Inserted)
	}
	return nil
}

// verify compares the rows of orders on the source and a target, as text
// under fixed settings (the connections were opened with them).
func (d *demo) verify(ctx context.Context, src, dst *pgx.Conn, name string) (bool, error) {
	const sql = "SELECT o::text FROM orders o"
	fmt.Fprintf(d.out, "verify: %s on source and on %s, compared as text\n", sql, name)
	a, err := rowTexts(ctx, src, sql)
	if err != nil {
		return false, err
	}
	b, err := rowTexts(ctx, dst, sql)
	if err != nil {
		return false, err
	}
	if slices.Equal(a, b) {
		fmt.Fprintf(d.out, "PASS: %s holds the same %d rows as the source\n", name, len(a))
		return true, nil
	}
	fmt.Fprintf(d.out, "FAIL: %s holds %d rows, the source %d\n", name, len(b), len(a))
	shown := 0
	for _, r := range a {
		if !slices.Contains(b, r) && shown < 5 {
			fmt.Fprintf(d.out, "  only on the source: %s\n", r)
			shown++
		}
	}
	for _, r := range b {
		if !slices.Contains(a, r) && shown < 10 {
			fmt.Fprintf(d.out, "  only on %s: %s\n", name, r)
			shown++
		}
	}
	return false, nil
}

func rowTexts(ctx context.Context, conn *pgx.Conn, sql string) ([]string, error) {
	_, rows, _, err := queryText(ctx, conn, sql)
	if err != nil {
		return nil, oneLine(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r[0]
	}
	slices.Sort(out)
	return out, nil
}

func (d *demo) section(title string) {
	d.step++
	fmt.Fprintf(d.out, "\n== %d. %s\n", d.step, title)
}

func (d *demo) connect(ctx context.Context, s *pgserver.Server, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.ConnString(db))
	if err != nil {
		return nil, err
	}
	// values print the same on every demo connection, so rows compare as
	// text across servers
	for _, kv := range filemode.FixedSettings() {
		cfg.RuntimeParams[kv[0]] = kv[1]
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, oneLine(fmt.Errorf("connect to %s on %s: %w", db, s.Name, err))
	}
	return conn, nil
}

// execOn runs one statement on a short-lived connection.
func (d *demo) execOn(ctx context.Context, s *pgserver.Server, db, sql string) error {
	conn, err := d.connect(ctx, s, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return d.exec(ctx, conn, s.Name+"/"+db, sql)
}

func (d *demo) exec(ctx context.Context, conn *pgx.Conn, where, sql string) error {
	return d.execShown(ctx, conn, where, sql, sql)
}

// execShown prints show (sql with secrets masked) and runs run.
func (d *demo) execShown(ctx context.Context, conn *pgx.Conn, where, show, run string) error {
	d.printSQL(where, show)
	tag, err := conn.Exec(ctx, run)
	if err != nil {
		return oneLine(fmt.Errorf("%s: %w", where, err))
	}
	fmt.Fprintf(d.out, "%s\n", tag)
	return nil
}

// query prints sql, runs it and prints its result as a table.
func (d *demo) query(ctx context.Context, conn *pgx.Conn, where, sql string) error {
	d.printSQL(where, sql)
	header, rows, right, err := queryText(ctx, conn, sql)
	if err != nil {
		return oneLine(fmt.Errorf("%s: %w", where, err))
	}
	printTable(d.out, header, rows, right)
	if len(rows) == 1 {
		fmt.Fprintln(d.out, "(1 row)")
	} else {
		fmt.Fprintf(d.out, "(%d rows)\n", len(rows))
	}
	return nil
}

func (d *demo) printSQL(where, sql string) {
	lines := strings.Split(sql, "\n")
	fmt.Fprintf(d.out, "%s=# %s", where, lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(d.out, "\n%s   %s", strings.Repeat(" ", len(where)), l)
	}
	fmt.Fprintln(d.out, ";")
}

// sqlLit quotes s as an SQL string literal (standard_conforming_strings on).
func sqlLit(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
