// `pgshadow import`: applies one exported batch directory to a target
// database in one transaction, or every batch directory waiting in an inbox
// in chain order (see package filemode).

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/pgshadow/pgshadow/filemode"
)

// importCommand declares import's flags and returns its body.
func importCommand(fs *flagSet) func(context.Context) error {
	dsn := fs.String("d", "", dsnHelp)
	dir := fs.String("dir", "", "one batch directory written by pgshadow export (it holds manifest.json)")
	inbox := fs.String("inbox", "", "a directory of batch directories: apply every one not applied yet, in chain order")
	prune := fs.Bool("prune", false, "with -inbox: after a run that applied everything, remove the batch directories the target shows applied")
	progress := progressFlags(fs)
	return func(ctx context.Context) error {
		switch {
		case (*dir == "") == (*inbox == ""):
			return errors.New("give one of -dir and -inbox (pgshadow import -h)")
		case *prune && *inbox == "":
			return errors.New("-prune goes with -inbox")
		case *dir != "":
			// Read and verify the batch before connecting: a damaged batch is
			// reported the same way whether or not the target is reachable.
			if _, _, err := filemode.ReadManifest(*dir); err != nil {
				return oneLine(err)
			}
		}
		conn, err := connectDB(ctx, *dsn)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if *inbox != "" {
			res, err := filemode.ImportInbox(ctx, conn, filemode.InboxOptions{Dir: *inbox, Prune: *prune, Progress: progress()})
			printInbox(res)
			return oneLine(err)
		}
		res, err := filemode.Import(ctx, conn, filemode.ImportOptions{Dir: *dir, Progress: progress()})
		if err != nil {
			return oneLine(err)
		}
		printImport(*dir, res)
		return nil
	}
}

// printImport says what the import of one batch directory did: one line
// when it was applied already, else a line per table.
func printImport(dir string, res *filemode.ImportResult) {
	applied := 0
	for _, t := range res.Tables {
		if t.Outcome == filemode.Applied {
			applied++
		}
	}
	if applied == 0 {
		fmt.Printf("%s was already applied: nothing changed\n", dir)
		return
	}
	fmt.Printf("applied %s (source %s, database %s)\n", dir, res.Manifest.Source.SystemIdentifier, res.Manifest.Source.Database)
	for _, t := range res.Tables {
		fmt.Printf("  %s  batch %d: %s\n", t.Dest, t.BatchNo, appliedText(t))
	}
}

// printInbox says what an inbox run did, also when it stopped early.
func printInbox(res *filemode.InboxResult) {
	if res == nil {
		return
	}
	for _, b := range res.Batches {
		if b.Result != nil {
			printImport(b.Dir, b.Result)
		} else {
			fmt.Printf("%s was already applied: nothing changed\n", b.Dir)
		}
		if b.Pruned {
			fmt.Printf("removed %s\n", b.Dir)
		}
	}
	for _, d := range res.Incomplete {
		fmt.Printf("%s has no %s (incomplete): left alone\n", d, filemode.ManifestName)
	}
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
