// Progress on stderr for the commands that copy: a bar redrawn in place on a
// terminal, a plain line every 10s elsewhere (logs, cron mail), nothing with
// -quiet. Push exports run inside the server, so their progress is read from
// shadow_progress over a second session.
package main

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/internal/pgsession"
)

// progressFlags adds -quiet and -progress to fs; the result gives the
// reporting they ask for (nil: silent).
func progressFlags(fs *flagSet) func() *filemode.Progress {
	quiet := fs.Bool("quiet", false, "no progress reports on stderr")
	every := fs.Duration("progress", 0, "time between progress reports on stderr (default: a bar redrawn every 200ms on a terminal, a line every 10s otherwise)")
	return func() *filemode.Progress {
		if *quiet {
			return nil
		}
		return stderrProgress(*every)
	}
}

// stderrProgress reports on stderr, as a bar when it is a terminal.
func stderrProgress(every time.Duration) *filemode.Progress {
	return &filemode.Progress{Out: os.Stderr, Terminal: isTerminal(os.Stderr), Every: every}
}

// isTerminal: f is a character device (a terminal; /dev/null too, where the
// redrawing goes unseen).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// watchPushProgress reports, until the returned stop is called, what the
// session pid ships (shadow_progress in schema), read over a session of its
// own to dsn every 200ms (or p.Every when shorter). Progress is a courtesy:
// when that session cannot be had the export goes on unreported.
func watchPushProgress(ctx context.Context, dsn, schema string, pid uint32, p *filemode.Progress) (stop func()) {
	if p == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := pgsession.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer conn.Close(context.WithoutCancel(ctx))
		poll := 200 * time.Millisecond
		if p.Every > 0 && p.Every < poll {
			poll = p.Every
		}
		var cur *filemode.Tracker
		curKey := ""
		defer func() {
			if cur != nil {
				cur.Finish()
			}
		}()
		for {
			var tbl, phase string
			var done int64
			var total *int64
			var estimated bool
			err := conn.QueryRow(ctx, `SELECT "table"::text, phase, rows_done, rows_total, total_estimated FROM `+schema+`.shadow_progress
			        WHERE pid = $1 ORDER BY "table" LIMIT 1`, pid).Scan(&tbl, &phase, &done, &total, &estimated)
			switch {
			case err == nil:
				if key := tbl + " " + phase; key != curKey {
					if cur != nil {
						cur.Finish()
					}
					t := int64(-1)
					if total != nil {
						t = *total
					}
					cur, curKey = p.Track("export "+key, t, estimated), key
				}
				cur.Set(done, 0)
			case err != pgx.ErrNoRows:
				return // canceled, or no shadow_progress there
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(poll):
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}
