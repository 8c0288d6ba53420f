// The apply side that Import and Ship share: the target's ledger of applied
// batches (pgshadow_import.batches), deciding whether a batch continues it,
// and applying a table's batch the way push mode does (delete the changed
// keys, append their current rows).

package filemode

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Outcomes of a table's batch.
const (
	Applied        = "applied"
	AlreadyApplied = "already applied"
)

// TableResult says what happened to one table of the batch.
type TableResult struct {
	Dest     string
	BatchNo  int64
	Outcome  string // Applied or AlreadyApplied
	Deleted  int64  // rows removed by key (0 for a full copy)
	Inserted int64
	FullCopy bool
}

// RefusedError is returned when a batch does not continue what the target
// has applied; nothing was applied.
type RefusedError struct {
	Dest    string
	BatchNo int64
	Reason  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused: %s batch %d: %s; nothing was applied", e.Dest, e.BatchNo, e.Reason)
}

// bookkeepingDDL creates the target's record of applied batches. sub_id and
// the snapshots let Import tell a re-export of an unacknowledged batch from
// a stale one, and notice a batch that continues a different export.
var bookkeepingDDL = []string{
	`CREATE SCHEMA IF NOT EXISTS pgshadow_import`,
	`CREATE TABLE IF NOT EXISTS pgshadow_import.batches (
	    source_id       text NOT NULL,
	    dest            text NOT NULL,
	    batch_no        bigint NOT NULL,
	    manifest_sha256 text NOT NULL,
	    applied_at      timestamptz NOT NULL DEFAULT now(),
	    sub_id          bigint NOT NULL,
	    old_snapshot    text NOT NULL,
	    new_snapshot    text NOT NULL,
	    batch_dir       text NOT NULL,
	    PRIMARY KEY (source_id, dest))`,
	`COMMENT ON TABLE pgshadow_import.batches IS
	    'pgshadow import: the last file batch applied per source database and destination table'`,
}

// applied is a row of pgshadow_import.batches.
type applied struct {
	subID, batchNo                int64
	manifestSHA, oldSnap, newSnap string
	batchDir                      string
}

// openDest begins the destination transaction of an import or a ship: the
// settings COPY text is read under, the bookkeeping table, and the lock
// that makes runs into one database take turns.
func openDest(ctx context.Context, conn *pgx.Conn, origin string) (_ pgx.Tx, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	// The origin marks this session's writes as replicated, so a target
	// that tracks the table itself does not capture them again.
	settings := append([][2]string{{"search_path", "pg_catalog, pg_temp"}, {"pgshadow.origin", origin}}, fixedSettings...)
	if err := setLocal(ctx, tx, settings); err != nil {
		return nil, err
	}
	if err := ensureBookkeeping(ctx, tx); err != nil {
		return nil, err
	}
	// One run at a time per target database: each decides on what the
	// previous one committed.
	if _, err := tx.Exec(ctx, "LOCK TABLE pgshadow_import.batches IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return nil, fmt.Errorf("lock pgshadow_import.batches: %w", err)
	}
	return tx, nil
}

// decideAll decides every table's batch against what the destination
// applied last; one result per table, or a RefusedError naming every
// refusal. runID identifies the run (the manifest's sha256 for a batch
// directory).
func decideAll(ctx context.Context, tx pgx.Tx, sourceID string, tables []Table, runID string) ([]TableResult, error) {
	var out []TableResult
	var refusals []string
	var firstRefusal *RefusedError
	for _, t := range tables {
		prev, err := lastApplied(ctx, tx, sourceID, t.Dest)
		if err != nil {
			return nil, err
		}
		outcome, reason := decide(prev, t, runID)
		if reason != "" {
			r := &RefusedError{Dest: t.Dest, BatchNo: t.BatchNo, Reason: reason}
			if firstRefusal == nil {
				firstRefusal = r
			}
			refusals = append(refusals, fmt.Sprintf("%s batch %d: %s", t.Dest, t.BatchNo, reason))
			continue
		}
		out = append(out, TableResult{Dest: t.Dest, BatchNo: t.BatchNo, Outcome: outcome, FullCopy: t.FullCopy})
	}
	if len(refusals) == 1 {
		return nil, firstRefusal
	} else if len(refusals) > 1 {
		return nil, &RefusedError{Dest: firstRefusal.Dest, BatchNo: firstRefusal.BatchNo,
			Reason: firstRefusal.Reason + " (also: " + strings.Join(refusals[1:], "; ") + ")"}
	}
	return out, nil
}

// recordApplied notes t as the last batch applied to its destination table.
func recordApplied(ctx context.Context, tx pgx.Tx, sourceID string, t Table, runID, batchDir string) error {
	_, err := tx.Exec(ctx, `INSERT INTO pgshadow_import.batches AS b
	        (source_id, dest, batch_no, manifest_sha256, applied_at, sub_id, old_snapshot, new_snapshot, batch_dir)
	        VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8)
	        ON CONFLICT (source_id, dest) DO UPDATE SET batch_no = EXCLUDED.batch_no,
	          manifest_sha256 = EXCLUDED.manifest_sha256, applied_at = EXCLUDED.applied_at,
	          sub_id = EXCLUDED.sub_id, old_snapshot = EXCLUDED.old_snapshot,
	          new_snapshot = EXCLUDED.new_snapshot, batch_dir = EXCLUDED.batch_dir`,
		sourceID, t.Dest, t.BatchNo, runID, t.SubID, t.OldSnapshot, t.NewSnapshot, batchDir)
	if err != nil {
		return fmt.Errorf("record batch %d of %s: %w", t.BatchNo, t.Dest, err)
	}
	return nil
}

// decide says whether batch t may be applied after prev (nil: nothing
// applied yet): the outcome, or a reason to refuse.
//
// Batches of one subscription form a chain: batch n+1 starts at the snapshot
// batch n ended at. An export whose commit failed leaves its directory
// behind unacknowledged; the next export writes the same batch number again
// from the same start, with a later end, so it covers everything the first
// one did. Applying that re-export after the first is therefore correct (and
// required: the next batch continues from it), applying the older one after
// the newer is not.
func decide(prev *applied, t Table, manifestSHA string) (outcome, refusal string) {
	switch {
	case prev == nil:
		if t.FullCopy || t.BatchNo == 1 {
			// An incremental batch 1 comes from shadow_subscribe(...,
			// initial_copy => false): the target is trusted to hold the
			// rows as they were when the subscription was made.
			return Applied, ""
		}
		return "", "nothing was applied to it yet from this source, and this batch is neither batch 1 nor a full copy (apply the earlier batches first)"
	case prev.subID != t.SubID:
		if t.FullCopy && t.SubID > prev.subID {
			// The source subscribed anew (subscription ids only grow) and
			// this full copy replaces the table: the old chain is over.
			return Applied, ""
		}
		if t.SubID < prev.subID {
			return "", fmt.Sprintf("it belongs to subscription %d of this source, older than subscription %d whose batch %d was applied last",
				t.SubID, prev.subID, prev.batchNo)
		}
		return "", fmt.Sprintf("the table was fed by subscription %d of this source (last batch %d), this batch belongs to subscription %d and is not a full copy",
			prev.subID, prev.batchNo, t.SubID)
	case t.BatchNo == prev.batchNo && manifestSHA == prev.manifestSHA:
		return AlreadyApplied, ""
	case t.BatchNo == prev.batchNo+1:
		if t.OldSnapshot == prev.newSnap || t.FullCopy {
			return Applied, ""
		}
		return "", fmt.Sprintf("it continues a different export of batch %d than the one applied (%s); apply the batch %d directory whose new_snapshot is %s first",
			prev.batchNo, prev.batchDir, prev.batchNo, t.OldSnapshot)
	case t.BatchNo == prev.batchNo:
		if notOlder(t.NewSnapshot, prev.newSnap) && t.OldSnapshot == prev.oldSnap {
			return Applied, "" // a re-export of an unacknowledged batch: a superset of it
		}
		return "", fmt.Sprintf("batch %d was already applied from another export (%s) that this one does not supersede", prev.batchNo, prev.batchDir)
	case t.BatchNo < prev.batchNo:
		// The chain passed this batch number (this export of it, a
		// re-export superseding it, or a full copy after it): the target
		// already holds everything it carries, so there is nothing to do,
		// exactly as for the last batch.
		return AlreadyApplied, ""
	default:
		return "", fmt.Sprintf("out of order: the last batch applied is %d, expected batch %d", prev.batchNo, prev.batchNo+1)
	}
}

// notOlder reports whether snapshot a was taken no earlier than b, by xmax;
// a snapshot that cannot be read is not known to be newer, so it is false.
func notOlder(a, b string) bool {
	xa, errA := snapshotXmax(a)
	xb, errB := snapshotXmax(b)
	return errA == nil && errB == nil && xa >= xb
}

func ensureBookkeeping(ctx context.Context, tx pgx.Tx) error {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass('pgshadow_import.batches') IS NOT NULL").Scan(&exists); err != nil {
		return fmt.Errorf("look up pgshadow_import.batches: %w", err)
	}
	if exists {
		return nil
	}
	for _, stmt := range bookkeepingDDL {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create pgshadow_import.batches: %w", err)
		}
	}
	return nil
}

func lastApplied(ctx context.Context, tx pgx.Tx, sourceID, dest string) (*applied, error) {
	var a applied
	err := tx.QueryRow(ctx, `SELECT sub_id, batch_no, manifest_sha256, old_snapshot, new_snapshot, batch_dir
	   FROM pgshadow_import.batches WHERE source_id = $1 AND dest = $2`, sourceID, dest).
		Scan(&a.subID, &a.batchNo, &a.manifestSHA, &a.oldSnap, &a.newSnap, &a.batchDir)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pgshadow_import.batches for %s: %w", dest, err)
	}
	return &a, nil
}

// copyIn runs one COPY ... FROM STDIN on the destination, feeding it a
// table's keys or rows from wherever they come (a file, a source COPY);
// it returns the rows loaded.
type copyIn func(sql string) (int64, error)

// loadKeys loads the changed keys of incremental batch t (the i-th table of
// the run) into a temporary table inside tx and returns its name and the
// number of keys.
func loadKeys(ctx context.Context, tx pgx.Tx, i int, t Table, cols []Column, load copyIn) (string, int64, error) {
	keys, err := keyColumns(cols)
	if err != nil {
		return "", 0, err
	}
	dest := pgx.Identifier{t.DestSchema, t.DestTable}.Sanitize()
	tmp := pgx.Identifier{"pg_temp", fmt.Sprintf("pgshadow_import_keys_%d", i)}.Sanitize()
	names := make([]string, len(keys))
	for j, k := range keys {
		names[j] = pgx.Identifier{k.Name}.Sanitize()
	}
	// The key table takes the destination's key column types and
	// collations, so keys parse and compare exactly as the rows do (the
	// source's types may differ, e.g. int shipped into bigint, and carry no
	// collation).
	create := fmt.Sprintf("CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA",
		tmp, strings.Join(names, ", "), dest)
	if _, err := tx.Exec(ctx, create); err != nil {
		return "", 0, fmt.Errorf("create key table: %w", err)
	}
	n, err := load(fmt.Sprintf("COPY %s (%s) FROM STDIN", tmp, strings.Join(names, ", ")))
	if err != nil {
		return "", 0, fmt.Errorf("load keys: %w", err)
	}
	// the planner has no idea how many keys there are otherwise
	if _, err := tx.Exec(ctx, "ANALYZE "+tmp); err != nil {
		return "", 0, err
	}
	return tmp, n, nil
}

// applyRows applies batch t inside tx once its keys are in keyTable (""
// for a full copy): deletes the changed keys (a full copy every row), then
// appends the current rows; r receives the counts. A full copy deletes
// rather than truncates, as push mode does: readers of the target keep
// seeing the old rows until the import commits instead of waiting for the
// ACCESS EXCLUSIVE lock TRUNCATE holds for the whole load, and rows other
// tables reference may be replaced within deferred constraints.
func applyRows(ctx context.Context, tx pgx.Tx, t Table, cols []Column, keyTable string, load copyIn, r *TableResult) error {
	dest := pgx.Identifier{t.DestSchema, t.DestTable}.Sanitize()
	if t.FullCopy {
		if _, err := tx.Exec(ctx, "DELETE FROM "+dest); err != nil {
			return fmt.Errorf("delete old rows: %w", err)
		}
	} else {
		keys, err := keyColumns(cols)
		if err != nil {
			return err
		}
		match := make([]string, len(keys))
		for j, k := range keys {
			name := pgx.Identifier{k.Name}.Sanitize()
			match[j] = "d." + name + " = k." + name
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s d USING %s k WHERE %s", dest, keyTable, strings.Join(match, " AND ")))
		if err != nil {
			return fmt.Errorf("delete changed keys: %w", err)
		}
		r.Deleted = tag.RowsAffected()
	}
	names := make([]string, len(cols))
	for j, c := range cols {
		names[j] = pgx.Identifier{c.Name}.Sanitize()
	}
	n, err := load(fmt.Sprintf("COPY %s (%s) FROM STDIN", dest, strings.Join(names, ", ")))
	if err != nil {
		return fmt.Errorf("load rows: %w", err)
	}
	r.Inserted = n
	return nil
}
