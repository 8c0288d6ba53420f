// Ship: moves the pending batch of a file target straight from the source
// database into a destination database, with no files. Each table's keys and
// rows stream from a COPY ... TO STDOUT on the source into a COPY ... FROM
// STDIN on the destination, both running at once. The source side is
// Export's (one REPEATABLE READ transaction, pgshadow.file_batches), the
// destination side Import's (one transaction, the same apply and the same
// pgshadow_import.batches chain), so ship, export and import can take turns
// on one target. The destination commits first; only then do the source's
// watermarks move. A failure before the destination's commit changes
// nothing there and leaves the batch pending; a failure between the two
// commits leaves the batch pending too, and the next ship applies it again
// as a re-export that supersedes it (same batch number and start, later
// end), exactly as Import accepts the re-export of an unacknowledged batch.

package filemode

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
)

// ShipOptions say which target to ship.
type ShipOptions struct {
	Target string // a file target: shadow_add_target(name, NULL)
	// Progress reports how far each table's stream got; nil is
	// silent.
	Progress *Progress
	// BeforeDone, if set, runs once the destination has committed and
	// before any watermark moves on the source; an error aborts the ship
	// there. Tests use it to fail between the two commits.
	BeforeDone func() error
}

// ShipResult says what a ship did.
type ShipResult struct {
	// Manifest describes the run as an export's manifest would (source,
	// batches, key and row counts), with no files.
	Manifest *Manifest
	// Tables says what the destination did, one entry per Manifest.Tables.
	Tables []TableResult
	// Unchanged lists the source tables that had nothing pending; they keep
	// their watermark and batch number.
	Unchanged []string
}

// Ship ships the pending batch of every table subscribed to o.Target from
// src to dst. Tables with nothing pending are left out; when none has
// anything pending, neither database changes.
func Ship(ctx context.Context, src, dst *pgx.Conn, o ShipOptions) (*ShipResult, error) {
	if o.Target == "" {
		return nil, errors.New("no target given")
	}
	return recorded(ctx, src, o.Target, "ship", func() (*ShipResult, error) { return ship(ctx, src, dst, o) })
}

// shipped is a table of the run whose batch holds something.
type shipped struct {
	b        batchRow
	cols     []Column
	keyTable string // "" for a full copy
}

func ship(ctx context.Context, src, dst *pgx.Conn, o ShipOptions) (*ShipResult, error) {
	run, err := openSource(ctx, src, o.Target)
	if err != nil {
		return nil, err
	}
	defer run.tx.Rollback(context.WithoutCancel(ctx)) // after Commit a no-op
	m := run.m
	res := &ShipResult{Manifest: m}
	if len(run.batches) == 0 {
		return res, nil
	}
	tx, err := openDest(ctx, dst, m.Source.Origin)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	fail := func(b batchRow, err error) error {
		return fmt.Errorf("ship %s to %s batch %d: %w (nothing was applied; the batch stays pending)", b.tbl, b.dest, b.batchNo, err)
	}

	// Keys first, so that a table with nothing pending is left out before
	// anything is decided, as Export leaves it out.
	var todo []shipped
	for i, b := range run.batches {
		cols, err := b.columns()
		if err != nil {
			return nil, fail(b, err)
		}
		t := b.table()
		s := shipped{b: b, cols: cols}
		if !b.fullCopy {
			copyTo, err := b.keysCopy()
			if err != nil {
				return nil, fail(b, err)
			}
			s.keyTable, t.Keys, err = loadKeys(ctx, tx, i, t, cols, func(copyFrom string) (int64, error) {
				n, _, err := streamCopy(ctx, src, copyTo, dst, copyFrom, newProgress(o.Progress, "ship "+b.tbl+" keys", -1, false))
				return n, err
			})
			if err != nil {
				return nil, fail(b, err)
			}
			if t.Keys == 0 {
				res.Unchanged = append(res.Unchanged, b.tbl)
				continue
			}
		}
		todo = append(todo, s)
		m.Tables = append(m.Tables, t)
	}
	if len(todo) == 0 {
		return res, nil
	}

	runID := shipRunID(m)
	if res.Tables, err = decideAll(ctx, tx, m.Source.ID(), m.Tables, runID); err != nil {
		return nil, err
	}
	label := "ship " + batchName(m)
	for i, s := range todo {
		t, r := &m.Tables[i], &res.Tables[i]
		if r.Outcome != Applied {
			continue
		}
		total, estimated := t.Keys, false
		if t.FullCopy {
			total, estimated = rowEstimate(ctx, src, s.b.tbl), true
		}
		err := applyRows(ctx, tx, *t, s.cols, s.keyTable, func(copyFrom string) (n int64, err error) {
			t.Rows, n, err = streamCopy(ctx, src, s.b.rowsCopy(), dst, copyFrom, newProgress(o.Progress, "ship "+s.b.tbl+" rows", total, estimated))
			return n, err
		}, r)
		if err == nil {
			err = recordApplied(ctx, tx, m.Source.ID(), *t, runID, label)
		}
		if err != nil {
			return nil, fail(s.b, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit on the destination: %w (if it did not commit, nothing changed there; the batch stays pending either way and the next ship covers it)", err)
	}

	if o.BeforeDone != nil {
		if err := o.BeforeDone(); err != nil {
			return nil, err
		}
	}
	if err := run.done(ctx); err != nil {
		return nil, fmt.Errorf("the destination committed, but acknowledging on the source failed, so the batch stays pending and the next ship applies it again: %w", err)
	}
	return res, nil
}

// shipRunID identifies a ship run in the destination's bookkeeping, where
// an import keeps its manifest's sha256: a hash of what the run ships, which
// its source, batches and snapshots determine.
func shipRunID(m *Manifest) string {
	h := sha256.New()
	fmt.Fprintf(h, "pgshadow ship\n%s\n%s\n", m.Source.ID(), m.Target)
	for _, t := range m.Tables {
		fmt.Fprintf(h, "%d %s %d %s %s %t\n", t.SubID, t.Dest, t.BatchNo, t.OldSnapshot, t.NewSnapshot, t.FullCopy)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// streamCopy runs copyTo on src and copyFrom on dst at the same time, the
// first's output feeding the second through a pipe; it returns the rows
// each side counted.
func streamCopy(ctx context.Context, src *pgx.Conn, copyTo string, dst *pgx.Conn, copyFrom string, m *meter) (read, written int64, err error) {
	pr, pw := io.Pipe()
	type result struct {
		rows int64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Buffered: the source sends a message per row, the pipe hands
		// each write over synchronously.
		bw := bufio.NewWriterSize(meterWriter{pw, m}, 256<<10)
		d := &drainWriter{w: bw}
		tag, err := src.PgConn().CopyTo(ctx, d, copyTo)
		if err == nil && !d.failed {
			err = bw.Flush()
		}
		pw.CloseWithError(err) // nil: the destination reads EOF
		done <- result{tag.RowsAffected(), err}
	}()
	tag, werr := dst.PgConn().CopyFrom(ctx, pr, copyFrom)
	pr.CloseWithError(io.ErrClosedPipe)
	r := <-done
	srcErr := r.err
	if errors.Is(srcErr, io.ErrClosedPipe) {
		srcErr = nil // the destination stopped reading: its error says why
	}
	switch {
	case srcErr != nil:
		return 0, 0, fmt.Errorf("read from the source: %w", srcErr)
	case werr != nil:
		return 0, 0, fmt.Errorf("write to the destination: %w", werr)
	}
	m.finish()
	return r.rows, tag.RowsAffected(), nil
}

// drainWriter passes writes on until one fails, then swallows the rest:
// when the destination fails mid-stream the source COPY still runs to its
// end, because pgx closes a connection whose COPY TO writer fails, and the
// source connection is still needed to roll back and record the error.
type drainWriter struct {
	w      io.Writer
	failed bool
}

func (d *drainWriter) Write(p []byte) (int, error) {
	if !d.failed {
		if _, err := d.w.Write(p); err != nil {
			d.failed = true
		}
	}
	return len(p), nil
}
