// Import: applies one batch directory to a target database in one
// transaction, the way push mode applies a batch (delete the changed keys,
// append their current rows; a full copy deletes every row first). The target keeps
// per source and destination table the last batch applied, in
// pgshadow_import.batches, and refuses batches that do not continue it.
// pgshadow need not be installed on the target.

package filemode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// ImportOptions say which batch directory to apply.
type ImportOptions struct {
	Dir string // one batch directory (holding manifest.json)
	// Progress reports how far each table's load got; nil is silent.
	Progress *Progress
}

// ImportResult says what an import did.
type ImportResult struct {
	Manifest *Manifest
	Tables   []TableResult
}

// FileError is returned when a file of the batch is missing or differs from
// the manifest; it is detected before anything is applied.
type FileError struct {
	Dest    string
	BatchNo int64
	File    string
	Problem string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("refused: %s batch %d, file %s: %s; nothing was applied", e.Dest, e.BatchNo, e.File, e.Problem)
}

// Import applies the batch directory o.Dir through conn.
func Import(ctx context.Context, conn *pgx.Conn, o ImportOptions) (*ImportResult, error) {
	m, manifestSHA, err := ReadManifest(o.Dir)
	if err != nil {
		return nil, err
	}
	cols, err := verifyFiles(o.Dir, m)
	if err != nil {
		return nil, err
	}
	tx, err := openDest(ctx, conn, m.Source.Origin)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	res := &ImportResult{Manifest: m}
	if res.Tables, err = decideAll(ctx, tx, m.Source.ID(), m.Tables, manifestSHA); err != nil {
		return nil, err
	}
	for i, t := range m.Tables {
		r := &res.Tables[i]
		if r.Outcome != Applied {
			continue
		}
		load := func(file File, sql, what string, total int64) (int64, error) {
			return copyFromFile(ctx, conn, filepath.Join(o.Dir, file.Name), file, sql, newMeter(o.Progress, "import "+t.Dest+" "+what, total, false))
		}
		keys := ""
		if !t.FullCopy {
			if keys, _, err = loadKeys(ctx, tx, i, t, cols[i], func(sql string) (int64, error) {
				return load(*t.Files.Keys, sql, "keys", t.Keys)
			}); err != nil {
				return nil, fmt.Errorf("import %s batch %d: %w", t.Dest, t.BatchNo, err)
			}
		}
		if err := applyRows(ctx, tx, t, cols[i], keys, func(sql string) (int64, error) {
			return load(t.Files.Rows, sql, "rows", t.Rows)
		}, r); err != nil {
			return nil, fmt.Errorf("import %s batch %d: %w", t.Dest, t.BatchNo, err)
		}
		if err := recordApplied(ctx, tx, m.Source.ID(), t, manifestSHA, filepath.Base(filepath.Clean(o.Dir))); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

// verifyFiles checks every file of the batch against the manifest before
// anything touches the database, and parses the column lists.
func verifyFiles(dir string, m *Manifest) ([][]Column, error) {
	out := make([][]Column, len(m.Tables))
	for i, t := range m.Tables {
		for _, f := range t.all() {
			if err := verifyFile(filepath.Join(dir, f.Name), f); err != nil {
				return nil, &FileError{Dest: t.Dest, BatchNo: t.BatchNo, File: f.Name, Problem: err.Error()}
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, t.Files.Columns.Name))
		if err != nil {
			return nil, err
		}
		cols, err := parseColumns(data)
		if err == nil {
			_, err = keyColumns(cols)
		}
		if err != nil {
			return nil, &FileError{Dest: t.Dest, BatchNo: t.BatchNo, File: t.Files.Columns.Name, Problem: err.Error()}
		}
		out[i] = cols
	}
	return out, nil
}

func verifyFile(path string, want File) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("missing")
	} else if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != want.Size {
		return fmt.Errorf("size %d bytes, the manifest says %d", fi.Size(), want.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("sha256 %s, the manifest says %s", got, want.SHA256)
	}
	return nil
}

// copyFromFile streams a file into COPY ... FROM STDIN, checking on the way
// that it is still the file the manifest describes (it was verified before
// the transaction began, but may have been replaced since).
func copyFromFile(ctx context.Context, conn *pgx.Conn, path string, want File, sql string, m *meter) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	tag, err := conn.PgConn().CopyFrom(ctx, io.TeeReader(f, m), sql)
	if err != nil {
		return 0, err
	}
	m.finish()
	if m.size() != want.Size || m.sha256() != want.SHA256 {
		return 0, fmt.Errorf("%s changed while it was being imported", path)
	}
	return tag.RowsAffected(), nil
}
