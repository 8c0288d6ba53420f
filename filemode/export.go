// Export: one REPEATABLE READ transaction reads the pending batch of every
// subscription of a file target (pgshadow.file_batches, which locks them),
// streams keys and rows with COPY into a new batch directory, makes every
// file durable, and only then moves the watermarks (pgshadow.file_done) and
// commits. Any failure before the commit leaves the watermarks where they
// were, so the next export ships the same changes again.

package filemode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ExportOptions say what to export where.
type ExportOptions struct {
	Target string // a file target: shadow_add_target(name, NULL)
	// Dir is the export root; each run writes Dir/<Target>/<batch name>.
	Dir string
	// Progress reports how far each table's copy got;
	// nil is silent.
	Progress *Progress
	// BeforeDone, if set, runs once every file is durable and before any
	// watermark moves; an error aborts the export there. Tests use it to
	// fail at the last possible moment.
	BeforeDone func(batchDir string) error
}

// ExportResult says what an export wrote.
type ExportResult struct {
	// BatchDir is the directory written, "" when nothing was pending.
	BatchDir string
	Manifest *Manifest
	// Unchanged lists the source tables that had nothing pending; they get
	// no files and keep their watermark and batch number.
	Unchanged []string
}

// Export writes the pending batch of every table subscribed to o.Target. A
// table with nothing pending is left out (no files, no batch number used);
// when no table has anything pending, no directory is created at all.
func Export(ctx context.Context, conn *pgx.Conn, o ExportOptions) (*ExportResult, error) {
	if o.Target == "" {
		return nil, errors.New("no target given")
	}
	if o.Dir == "" {
		return nil, errors.New("no export directory given")
	}
	return recorded(ctx, conn, o.Target, "export", func() (*ExportResult, error) { return export(ctx, conn, o) })
}

func export(ctx context.Context, conn *pgx.Conn, o ExportOptions) (res *ExportResult, err error) {
	src, err := openSource(ctx, conn, o.Target)
	if err != nil {
		return nil, err
	}
	defer src.tx.Rollback(context.WithoutCancel(ctx)) // after Commit a no-op
	m, batches := src.m, src.batches
	res = &ExportResult{Manifest: m}
	if len(batches) == 0 {
		return res, nil
	}

	// From here on this run holds every subscription of the target locked,
	// so no other export of it is writing: leftovers are from crashed runs.
	targetDir := filepath.Join(o.Dir, o.Target)
	created, err := mkdirAllSync(targetDir)
	if err != nil {
		return nil, err
	}
	if err := removeLeftovers(targetDir); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(targetDir, ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("create batch directory: %w", err)
	}
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}

	for _, b := range batches {
		t, err := writeTable(ctx, conn, tmp, b, o.Progress)
		if err != nil {
			return nil, fmt.Errorf("export %s (subscription %d, batch %d): %w", b.tbl, b.subID, b.batchNo, err)
		}
		if t == nil {
			res.Unchanged = append(res.Unchanged, b.tbl)
			continue
		}
		m.Tables = append(m.Tables, *t)
	}
	if len(m.Tables) == 0 {
		if created {
			// leave no empty directory behind either
			os.RemoveAll(tmp)
			tmp = ""
			os.Remove(targetDir)
		}
		return res, nil
	}

	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(tmp, ManifestName), append(data, '\n')); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	final := filepath.Join(targetDir, batchName(m))
	// A directory of the same name can only come from a run that failed
	// before its commit with the very same snapshot (every committed run
	// moved a watermark, so later runs see a larger xmax): it is replaced.
	if err := os.RemoveAll(final); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("move batch into place: %w", err)
	}
	tmp = ""
	if err := syncDir(targetDir); err != nil {
		return nil, err
	}
	res.BatchDir = final

	if o.BeforeDone != nil {
		if err := o.BeforeDone(final); err != nil {
			return nil, err
		}
	}
	if err := src.done(ctx); err != nil {
		return nil, fmt.Errorf("acknowledge %s (watermarks not moved; the next export ships these changes again): %w", final, err)
	}
	return res, nil
}

// writeTable writes one table's files into dir; nil means nothing was
// pending (and nothing is left in dir).
func writeTable(ctx context.Context, conn *pgx.Conn, dir string, b batchRow, progress *Progress) (*Table, error) {
	t := b.table()
	if !b.fullCopy {
		sql, err := b.keysCopy()
		if err != nil {
			return nil, err
		}
		f, n, err := copyToFile(ctx, conn, filepath.Join(dir, fmt.Sprintf("%d.keys", b.subID)),
			sql, newMeter(progress, "export "+b.tbl+" keys", -1, false))
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, os.Remove(filepath.Join(dir, f.Name))
		}
		t.Keys = n
		t.Files.Keys = &f
	}
	total, estimated := t.Keys, false
	if b.fullCopy {
		total, estimated = rowEstimate(ctx, conn, b.tbl), true
	}
	f, n, err := copyToFile(ctx, conn, filepath.Join(dir, fmt.Sprintf("%d.rows", b.subID)),
		b.rowsCopy(), newMeter(progress, "export "+b.tbl+" rows", total, estimated))
	if err != nil {
		return nil, err
	}
	t.Rows = n
	t.Files.Rows = f

	cols, err := b.columns()
	if err != nil {
		return nil, err
	}
	f, err = writeMetered(filepath.Join(dir, fmt.Sprintf("%d.columns", b.subID)), func(w io.Writer) error {
		return writeColumns(w, cols)
	})
	if err != nil {
		return nil, err
	}
	t.Files.Columns = f
	return &t, nil
}

// copyToFile streams the output of a COPY ... TO STDOUT into a new file and
// makes it durable; it returns the file's description and the row count.
func copyToFile(ctx context.Context, conn *pgx.Conn, path, sql string, m *meter) (File, int64, error) {
	var rows int64
	f, err := writeMeteredWith(path, m, func(w io.Writer) error {
		tag, err := conn.PgConn().CopyTo(ctx, w, sql)
		rows = tag.RowsAffected()
		return err
	})
	return f, rows, err
}

// rowEstimate is the planner's row count of table tbl, the total a full
// copy's progress is shown against; -1 when never analyzed or unreadable
// (progress then shows no total, the copy goes on). to_regclass: a name
// that no longer resolves must not abort the caller's transaction.
func rowEstimate(ctx context.Context, conn *pgx.Conn, tbl string) int64 {
	var n int64
	err := conn.QueryRow(ctx, `SELECT coalesce(pgshadow._row_estimate(pg_catalog.to_regclass($1)), -1)`, tbl).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}

// batchName names a run's directory so that runs sort in the order they
// happened: the xmax of the run's snapshot (every committed run moves a
// watermark, so the next one sees a larger xmax), zero-padded, then the
// lowest batch number in it for the operator's eye. No clock is involved.
func batchName(m *Manifest) string {
	xmax, _ := snapshotXmax(m.Tables[0].NewSnapshot)
	first := m.Tables[0].BatchNo
	for _, t := range m.Tables {
		first = min(first, t.BatchNo)
	}
	return fmt.Sprintf("%020d-b%06d", xmax, first)
}

// snapshotXmax parses the xmax out of pg_snapshot text "xmin:xmax:xip,...".
func snapshotXmax(s string) (uint64, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("bad snapshot %q", s)
	}
	return strconv.ParseUint(parts[1], 10, 64)
}

// removeLeftovers deletes unfinished directories of crashed runs.
func removeLeftovers(targetDir string) error {
	entries, err := os.ReadDir(targetDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(targetDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
