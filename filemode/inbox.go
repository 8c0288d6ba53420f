// Inbox: applies every batch directory waiting in one directory, in chain
// order, each as Import applies one; optionally removes the ones the target
// has applied.

package filemode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// InboxOptions say which inbox to apply.
type InboxOptions struct {
	Dir string // holds batch directories (e.g. DIR/<target> of an export)
	// Prune removes, after a run that applied everything it could, every
	// batch directory of the inbox the target's ledger shows applied.
	Prune    bool
	Progress *Progress
}

// InboxBatch says what happened to one batch directory of the inbox.
type InboxBatch struct {
	Dir     string
	Outcome string        // Applied, or AlreadyApplied when skipped
	Result  *ImportResult // nil when skipped
	Pruned  bool
}

// InboxResult says what an inbox run did.
type InboxResult struct {
	Batches []InboxBatch // in the order applied, then the skipped ones
	// Incomplete lists directories without a manifest (still being copied,
	// or an export's leftovers); they are left alone.
	Incomplete []string
}

// GapError is returned when the inbox lacks a batch the target needs next:
// everything before it was applied, nothing that follows it.
type GapError struct {
	Inbox   string
	Dest    string
	Missing string // "batch 3", or "batch 1 or a full copy"
	Last    int64  // last batch applied, 0 for none
	Next    int64  // lowest batch of Dest waiting in the inbox
	NextDir string
	Waiting int // batch directories left unapplied
}

func (e *GapError) Error() string {
	last := "nothing applied yet"
	if e.Last > 0 {
		last = fmt.Sprintf("last applied: batch %d", e.Last)
	}
	return fmt.Sprintf("inbox %s: %s of %s is missing (%s; the inbox's next is batch %d in %s); %d batch directories not applied",
		e.Inbox, e.Missing, e.Dest, last, e.Next, e.NextDir, e.Waiting)
}

type inboxEntry struct {
	dir string
	m   *Manifest
	sha string
}

type ledgerKey struct{ source, dest string }

// ImportInbox applies the batch directories of o.Dir through conn. Each
// round reads the target's ledger and applies the first directory (in name
// order, which is export order) whose every table continues the chain or was
// applied already; directories the ledger shows applied are skipped. When
// directories remain and none continues the chain, it stops with a GapError
// naming the missing batch (or the refusal of the first one). The result
// reports what was done even with an error.
func ImportInbox(ctx context.Context, conn *pgx.Conn, o InboxOptions) (*InboxResult, error) {
	res := &InboxResult{}
	pending, err := readInbox(o.Dir, res)
	if err != nil {
		return res, err
	}
	var skipped []InboxBatch
	for len(pending) > 0 {
		ledger, err := readLedger(ctx, conn)
		if err != nil {
			return res, err
		}
		// Directories the ledger shows applied leave the queue; the first
		// one (in name order) that continues the chain is applied next.
		next, rest := -1, pending[:0:0]
		for _, e := range pending {
			outcome, refused := decideEntry(ledger, e)
			switch {
			case !refused && outcome == AlreadyApplied:
				skipped = append(skipped, InboxBatch{Dir: e.dir, Outcome: AlreadyApplied})
				continue
			case !refused && next < 0:
				next = len(rest)
			}
			rest = append(rest, e)
		}
		pending = rest
		if next < 0 {
			if len(pending) == 0 {
				break
			}
			res.Batches = append(res.Batches, skipped...)
			return res, gapError(o.Dir, ledger, pending)
		}
		e := pending[next]
		r, err := Import(ctx, conn, ImportOptions{Dir: e.dir, Progress: o.Progress})
		if err != nil {
			res.Batches = append(res.Batches, skipped...)
			return res, fmt.Errorf("inbox %s: %w", o.Dir, err)
		}
		res.Batches = append(res.Batches, InboxBatch{Dir: e.dir, Outcome: Applied, Result: r})
		pending = append(pending[:next], pending[next+1:]...)
	}
	res.Batches = append(res.Batches, skipped...)
	if o.Prune {
		if err := prune(ctx, conn, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// readInbox reads the manifest of every batch directory in dir, in name
// order. Hidden entries (an export's temporary directories) and plain files
// are ignored; a directory without a manifest is listed as incomplete; a
// damaged manifest stops the run before anything is applied.
func readInbox(dir string, res *InboxResult) ([]inboxEntry, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	var out []inboxEntry
	for _, d := range entries {
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, d.Name())
		if _, err := os.Stat(filepath.Join(path, ManifestName)); errors.Is(err, os.ErrNotExist) {
			res.Incomplete = append(res.Incomplete, path)
			continue
		}
		m, sha, err := ReadManifest(path)
		if err != nil {
			return nil, fmt.Errorf("inbox %s: %w; nothing was applied", dir, err)
		}
		out = append(out, inboxEntry{dir: path, m: m, sha: sha})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dir < out[j].dir })
	return out, nil
}

// decideEntry decides every table of e against the ledger: AlreadyApplied
// when all were applied, Applied when at least one continues the chain and
// none is refused, refused otherwise.
func decideEntry(ledger map[ledgerKey]*applied, e inboxEntry) (outcome string, refused bool) {
	outcome = AlreadyApplied
	for _, t := range e.m.Tables {
		o, reason := decide(ledger[ledgerKey{e.m.Source.ID(), t.Dest}], t, e.sha)
		if reason != "" {
			return "", true
		}
		if o == Applied {
			outcome = Applied
		}
	}
	return outcome, false
}

// gapError explains why none of the pending directories can be applied:
// the first refused table of the first one (in name order) names the batch
// missing before it, or its refusal when it is not a gap.
func gapError(inbox string, ledger map[ledgerKey]*applied, pending []inboxEntry) error {
	e := pending[0]
	for _, t := range e.m.Tables {
		key := ledgerKey{e.m.Source.ID(), t.Dest}
		prev := ledger[key]
		_, reason := decide(prev, t, e.sha)
		if reason == "" {
			continue
		}
		// the lowest batch of this table waiting anywhere in the inbox
		next, nextDir := t.BatchNo, e.dir
		for _, p := range pending {
			for _, pt := range p.m.Tables {
				if (ledgerKey{p.m.Source.ID(), pt.Dest}) == key && pt.BatchNo < next {
					next, nextDir = pt.BatchNo, p.dir
				}
			}
		}
		g := &GapError{Inbox: inbox, Dest: t.Dest, Next: next, NextDir: filepath.Base(nextDir), Waiting: len(pending)}
		switch {
		case prev == nil && !t.FullCopy:
			g.Missing = "batch 1 or a full copy"
			return g
		case prev != nil && prev.subID == t.SubID && next > prev.batchNo+1:
			g.Missing, g.Last = fmt.Sprintf("batch %d", prev.batchNo+1), prev.batchNo
			return g
		}
		return fmt.Errorf("inbox %s: %s: %w", inbox, filepath.Base(e.dir),
			&RefusedError{Dest: t.Dest, BatchNo: t.BatchNo, Reason: reason})
	}
	return fmt.Errorf("inbox %s: %s cannot be applied", inbox, filepath.Base(e.dir))
}

// readLedger reads pgshadow_import.batches (empty before the first import).
func readLedger(ctx context.Context, conn *pgx.Conn) (map[ledgerKey]*applied, error) {
	out := map[ledgerKey]*applied{}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.to_regclass('pgshadow_import.batches') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up pgshadow_import.batches: %w", err)
	}
	if !exists {
		return out, nil
	}
	rows, err := conn.Query(ctx, `SELECT source_id, dest, sub_id, batch_no, manifest_sha256, old_snapshot, new_snapshot, batch_dir
	   FROM pgshadow_import.batches`)
	if err != nil {
		return nil, fmt.Errorf("read pgshadow_import.batches: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k ledgerKey
		var a applied
		if err := rows.Scan(&k.source, &k.dest, &a.subID, &a.batchNo, &a.manifestSHA, &a.oldSnap, &a.newSnap, &a.batchDir); err != nil {
			return nil, fmt.Errorf("read pgshadow_import.batches: %w", err)
		}
		out[k] = &a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pgshadow_import.batches: %w", err)
	}
	return out, nil
}

// prune removes the batch directories of the run that the ledger, read
// afresh, shows applied: every table of theirs is the last batch applied or
// older. Nothing else is removed.
func prune(ctx context.Context, conn *pgx.Conn, res *InboxResult) error {
	ledger, err := readLedger(ctx, conn)
	if err != nil {
		return err
	}
	for i := range res.Batches {
		b := &res.Batches[i]
		m, sha, err := ReadManifest(b.Dir)
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if outcome, refused := decideEntry(ledger, inboxEntry{dir: b.Dir, m: m, sha: sha}); refused || outcome != AlreadyApplied {
			continue
		}
		if err := os.RemoveAll(b.Dir); err != nil {
			return fmt.Errorf("prune %s: %w", b.Dir, err)
		}
		b.Pruned = true
	}
	return nil
}
