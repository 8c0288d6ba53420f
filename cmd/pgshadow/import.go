// `pgshadow import`: applies one exported batch directory to a target
// database in one transaction (see package filemode).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pgshadow/pgshadow/filemode"
)

func init() {
	register("import", "apply one exported batch directory to a target database", runImport)
}

func runImport(ctx context.Context, args []string) error {
	fs := newFlagSet("import", "pgshadow import [-d CONNSTR] -dir BATCHDIR [-timeout D]")
	dsn := fs.String("d", "", dsnHelp)
	dir := fs.String("dir", "", "one batch directory written by pgshadow export (it holds manifest.json)")
	timeout := fs.Duration("timeout", 0, timeoutHelp)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, *timeout)
	defer cancel()
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *dir == "" {
		return errors.New("-dir is required (pgshadow import -h)")
	}
	// Read and verify the batch before connecting: a damaged batch is
	// reported the same way whether or not the target is reachable.
	if _, _, err := filemode.ReadManifest(*dir); err != nil {
		return oneLine(err)
	}
	conn, err := connectDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	res, err := filemode.Import(ctx, conn, filemode.ImportOptions{Dir: *dir, Progress: os.Stderr})
	if err != nil {
		return oneLine(err)
	}
	applied := 0
	for _, t := range res.Tables {
		if t.Outcome == filemode.Applied {
			applied++
		}
	}
	if applied == 0 {
		fmt.Printf("%s was already applied: nothing changed\n", *dir)
	} else {
		fmt.Printf("applied %s (source %s, database %s)\n", *dir, res.Manifest.Source.SystemIdentifier, res.Manifest.Source.Database)
	}
	for _, t := range res.Tables {
		fmt.Printf("  %s  batch %d: %s\n", t.Dest, t.BatchNo, appliedText(t))
	}
	return nil
}

// appliedText says what the target did with one table's batch (import and
// ship print it alike).
func appliedText(r filemode.TableResult) string {
	switch {
	case r.Outcome != filemode.Applied:
		return r.Outcome
	case r.FullCopy:
		return fmt.Sprintf("full copy: %d rows", r.Inserted)
	default:
		return fmt.Sprintf("%d rows deleted by key, %d rows written", r.Deleted, r.Inserted)
	}
}
