// `pgshadow ship`: moves the pending batch of a file target straight from the
// source database into the target database, streaming, with no files (see
// filemode.Ship); the same batches and bookkeeping as export followed by
// import.

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/filemode"
)

func init() {
	register("ship", "stream the pending changes of a file target into a target database, without files", runShip)
}

func runShip(ctx context.Context, args []string) error {
	fs := newFlagSet("ship", "pgshadow ship [-source CONNSTR] -dest CONNSTR -target NAME [-timeout D] [-quiet | -progress D]").withTimeout()
	source := fs.String("source", "", "source database: "+dsnHelp)
	dest := fs.String("dest", "", "target database, where the batch is applied: connection string or URL (PG* environment variables fill in the rest)")
	target := fileTargetFlag(fs)
	progress := progressFlags(fs)
	ctx, cancel, err := fs.parseBounded(ctx, args)
	if err != nil {
		return err
	}
	defer cancel()
	if *target == "" || *dest == "" {
		return errors.New("-target and -dest are required (pgshadow ship -h)")
	}
	src, dst, closeBoth, err := connectBoth(ctx, *source, *dest)
	if err != nil {
		return err
	}
	defer closeBoth()
	res, err := filemode.Ship(ctx, src, dst, filemode.ShipOptions{Target: *target, Progress: progress()})
	if err != nil {
		return oneLine(err)
	}
	m := res.Manifest
	if len(m.Tables) == 0 {
		fmt.Printf("nothing pending for target %q: nothing shipped\n", *target)
	} else {
		fmt.Printf("shipped target %q (source %s, database %s) to database %s\n",
			*target, m.Source.SystemIdentifier, m.Source.Database, dst.Config().Database)
	}
	for i, t := range m.Tables {
		what := appliedText(res.Tables[i])
		if res.Tables[i].Outcome == filemode.Applied && !t.FullCopy {
			what = fmt.Sprintf("%d changed keys, %s", t.Keys, what)
		}
		fmt.Printf("  %s -> %s  batch %d: %s\n", t.SourceTable, t.Dest, t.BatchNo, what)
	}
	for _, tbl := range res.Unchanged {
		fmt.Printf("  %s: nothing pending\n", tbl)
	}
	return nil
}

// connectBoth opens the source and the destination sessions of ship and
// compare; closeBoth closes them.
func connectBoth(ctx context.Context, source, dest string) (src, dst *pgx.Conn, closeBoth func(), err error) {
	if src, err = connectDB(ctx, source); err != nil {
		return nil, nil, nil, fmt.Errorf("source: %w", err)
	}
	if dst, err = connectDB(ctx, dest); err != nil {
		src.Close(context.WithoutCancel(ctx))
		return nil, nil, nil, fmt.Errorf("destination: %w", err)
	}
	return src, dst, func() {
		dst.Close(context.WithoutCancel(ctx))
		src.Close(context.WithoutCancel(ctx))
	}, nil
}
