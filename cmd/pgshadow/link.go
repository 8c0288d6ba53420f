// The commands that join a file target's source database and its target
// database directly, over two client sessions (fileLink):
//
//   - `pgshadow ship` moves the pending batch of a file target straight from
//     the source database into the target database, streaming, with no files
//     (see filemode.Ship); the same batches and bookkeeping as export
//     followed by import.
//   - `pgshadow compare` compares the tables of a file target with their
//     copies in the target database, key range by key range like
//     shadow_compare does for push targets (see filemode.Compare). Exit code
//     0: equal; 2: some range differs; 1: the comparison failed.

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/filemode"
)

// shipCommand declares ship's flags and returns its body.
func shipCommand(fs *flagSet) func(context.Context) error {
	link := fileLinkFlags(fs, "source", "target database, where the batch is applied: connection string or URL (PG* environment variables fill in the rest)")
	progress := progressFlags(fs)
	return func(ctx context.Context) error {
		if err := link.required(); err != nil {
			return err
		}
		src, dst, closeBoth, err := link.connect(ctx)
		if err != nil {
			return err
		}
		defer closeBoth()
		target := *link.target
		res, err := filemode.Ship(ctx, src, dst, filemode.ShipOptions{Target: target, Progress: progress()})
		if err != nil {
			return oneLine(err)
		}
		m := res.Manifest
		if len(m.Tables) == 0 {
			fmt.Printf("nothing pending for target %q: nothing shipped\n", target)
		} else {
			fmt.Printf("shipped target %q (source %s, database %s) to database %s\n",
				target, m.Source.SystemIdentifier, m.Source.Database, dst.Config().Database)
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
}

// compareCommand declares compare's flags and returns its body.
func compareCommand(fs *flagSet) func(context.Context) error {
	link := fileLinkFlags(fs, "d", "target database, where the file target's batches are imported: connection string or URL")
	table := fs.String("table", "", "compare only this source table, schema-qualified (default: every table of the target)")
	chunk := fs.Int("chunk", 10000, "source rows per key range")
	return func(ctx context.Context) error {
		if err := link.required(); err != nil {
			return err
		}
		if *chunk < 1 {
			return errors.New("-chunk must be positive")
		}
		src, dst, closeBoth, err := link.connect(ctx)
		if err != nil {
			return err
		}
		defer closeBoth()
		res, err := filemode.Compare(ctx, src, dst, filemode.CompareOptions{Target: *link.target, Table: *table, ChunkRows: *chunk})
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
}

// bound prints a range bound: its key values, or open for nil.
func bound(vals []string, open string) string {
	if vals == nil {
		return "(" + open + ")"
	}
	return "(" + strings.Join(vals, ", ") + ")"
}

// fileLink is what ship and compare share: a file target, and the two
// databases it links, the source and the target database (-dest).
type fileLink struct {
	command              string
	target, source, dest *string
}

// fileLinkFlags adds -target, the source database's flag (sourceFlag) and
// -dest to fs.
func fileLinkFlags(fs *flagSet, sourceFlag, destHelp string) *fileLink {
	return &fileLink{
		command: fs.Name(),
		target:  fileTargetFlag(fs),
		source:  fs.String(sourceFlag, "", "source database: "+dsnHelp),
		dest:    fs.String("dest", "", destHelp),
	}
}

// required refuses a command line without -target or -dest.
func (l *fileLink) required() error {
	if *l.target == "" || *l.dest == "" {
		return fmt.Errorf("-target and -dest are required (pgshadow %s -h)", l.command)
	}
	return nil
}

// connect opens the source and the destination sessions; closeBoth closes
// them.
func (l *fileLink) connect(ctx context.Context) (src, dst *pgx.Conn, closeBoth func(), err error) {
	if src, err = connectDB(ctx, *l.source); err != nil {
		return nil, nil, nil, fmt.Errorf("source: %w", err)
	}
	if dst, err = connectDB(ctx, *l.dest); err != nil {
		src.Close(context.WithoutCancel(ctx))
		return nil, nil, nil, fmt.Errorf("destination: %w", err)
	}
	return src, dst, func() {
		dst.Close(context.WithoutCancel(ctx))
		src.Close(context.WithoutCancel(ctx))
	}, nil
}
