// `pgshadow compare`: compares the tables of a file target with their
// copies in a target database the command reaches, key range by key range
// like shadow_compare does for push targets (see filemode.Compare). Exit
// code 0: equal; 2: some range differs; 1: the comparison failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pgshadow/pgshadow/filemode"
)

func init() {
	register("compare", "compare a file target's tables with a target database, by key range (exit code 2: they differ)", runCompare)
}

func runCompare(ctx context.Context, args []string) error {
	fs := newFlagSet("compare", "pgshadow compare [-d CONNSTR] -target NAME -dest CONNSTR [-table T] [-chunk N] [-timeout D]").withTimeout()
	dsn := fs.String("d", "", "source database: "+dsnHelp)
	dest := fs.String("dest", "", "target database, where the file target's batches are imported: connection string or URL")
	target := fileTargetFlag(fs)
	table := fs.String("table", "", "compare only this source table, schema-qualified (default: every table of the target)")
	chunk := fs.Int("chunk", 10000, "source rows per key range")
	ctx, cancel, err := fs.parseBounded(ctx, args)
	if err != nil {
		return err
	}
	defer cancel()
	if *target == "" || *dest == "" {
		return errors.New("-target and -dest are required (pgshadow compare -h)")
	}
	if *chunk < 1 {
		return errors.New("-chunk must be positive")
	}
	src, dst, closeBoth, err := connectBoth(ctx, *dsn, *dest)
	if err != nil {
		return err
	}
	defer closeBoth()
	res, err := filemode.Compare(ctx, src, dst, filemode.CompareOptions{Target: *target, Table: *table, ChunkRows: *chunk})
	if err != nil {
		return oneLine(err)
	}
	differ := false
	for _, t := range res {
		if len(t.Differ) == 0 {
			fmt.Printf("%s -> %s: equal (%d key ranges)\n", t.SourceTable, t.Dest, t.Ranges)
			continue
		}
		differ = true
		fmt.Printf("%s -> %s: %d of %d key ranges differ\n", t.SourceTable, t.Dest, len(t.Differ), t.Ranges)
		for _, d := range t.Differ {
			fmt.Printf("  keys from %s to %s: %d source rows, %d target rows\n", bound(d.From, "start"), bound(d.To, "end"), d.SourceRows, d.TargetRows)
		}
	}
	if differ {
		return exitCode(2)
	}
	return nil
}

// bound prints a range bound: its key values, or open for nil.
func bound(vals []string, open string) string {
	if vals == nil {
		return "(" + open + ")"
	}
	return "(" + strings.Join(vals, ", ") + ")"
}
