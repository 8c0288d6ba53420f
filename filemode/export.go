// Export: one REPEATABLE READ transaction reads the pending batch of every
// subscription of a file target (pgshadow.file_batches, which locks them),
// streams keys and rows with COPY into a new batch directory, makes every
// file durable, and only then moves the watermarks (pgshadow.file_done) and
// commits. Any failure before the commit leaves the watermarks where they
// were, so the next export ships the same changes again.
package filemode

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// batchRow is one row of pgshadow.file_batches().
type batchRow struct {
	subID                 int64
	tbl                   string
	destSchema, destTable string
	dest                  string
	keyCols, keyTypes     []string
	cols, colTypes        []string
	batchNo               int64
	oldSnap, newSnap      string
	fullCopy              bool
	keysSQL               *string
	rowsSQL               string
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

// recorded runs a command's work on the source conn; if it fails, the cause
// is recorded for the target's subscriptions (shown by shadow_status).
func recorded[R any](ctx context.Context, conn *pgx.Conn, target, command string, work func() (*R, error)) (*R, error) {
	res, err := work()
	if err != nil {
		// the concurrent export that won has just cleared last_error, rightly
		if !errors.Is(err, errConcurrentExport) {
			recordError(ctx, conn, target, command, err)
		}
		return nil, err
	}
	return res, nil
}

// sourceRun is an open REPEATABLE READ transaction on the source that holds
// every subscription of a file target locked, with their pending batches
// read: the start of both an export and a ship.
type sourceRun struct {
	tx      pgx.Tx
	m       *Manifest // source identity and target; Tables left to the caller
	batches []batchRow
}

// openSource begins the source transaction of a run for target; on error
// nothing is left open.
func openSource(ctx context.Context, conn *pgx.Conn, target string) (_ *sourceRun, err error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	// search_path as in push mode: the batch SQL and any row filter resolve
	// names the same way, and regclass text comes out schema-qualified.
	if err := setLocal(ctx, tx, append([][2]string{{"search_path", "pg_catalog, pg_temp"}}, fixedSettings...)); err != nil {
		return nil, err
	}

	var server *string
	err = tx.QueryRow(ctx, "SELECT server::text FROM pgshadow.target WHERE name = $1", target).Scan(&server)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("target %q does not exist (a file target is created with shadow_add_target('%s', NULL))", target, target)
	case err != nil:
		return nil, fmt.Errorf("read target %q (is pgshadow installed in this database?): %w", target, err)
	case server != nil:
		return nil, fmt.Errorf("target %q ships to foreign server %q, not to files; export it with SELECT shadow_export('%s')", target, *server, target)
	}

	m := &Manifest{Format: Format, Target: target, Encoding: "UTF8", Settings: map[string]string{}}
	for _, s := range fixedSettings {
		m.Settings[s[0]] = s[1]
	}
	err = tx.QueryRow(ctx, `SELECT (SELECT system_identifier::text FROM pg_control_system()), current_database(),
	        coalesce(nullif(current_setting('pgshadow.node_name', true), ''), current_database()),
	        current_setting('server_version')`).
		Scan(&m.Source.SystemIdentifier, &m.Source.Database, &m.Source.Origin, &m.Source.ServerVersion)
	if err != nil {
		return nil, fmt.Errorf("read source identity: %w", err)
	}

	batches, err := readBatches(ctx, tx, target)
	if err != nil {
		return nil, err
	}
	return &sourceRun{tx: tx, m: m, batches: batches}, nil
}

// done moves the watermark of every table shipped (pgshadow.file_done) and
// commits: the batches are acknowledged. Then it purges what is shipped.
func (s *sourceRun) done(ctx context.Context) error {
	for _, t := range s.m.Tables {
		n := t.Keys
		if t.FullCopy {
			n = t.Rows
		}
		if _, err := s.tx.Exec(ctx, "SELECT pgshadow.file_done($1, $2::pg_snapshot, $3)", t.SubID, t.NewSnapshot, n); err != nil {
			return fmt.Errorf("mark batch %d of %s shipped: %w", t.BatchNo, t.SourceTable, err)
		}
	}
	conn := s.tx.Conn()
	if err := s.tx.Commit(ctx); err != nil {
		return err
	}
	purge(ctx, conn, s.m.Target)
	return nil
}

// purge empties what every subscription of the target's tables has shipped
// from their shadow tables. Not inside the run's REPEATABLE READ transaction:
// its snapshot predates changes committed meanwhile, which a purge deciding
// on it would truncate unshipped. READ COMMITTED is asked for explicitly (a
// default_transaction_isolation of the role must not change it). Best
// effort: the batch is committed, and any later purge does the same work.
func purge(ctx context.Context, conn *pgx.Conn, target string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pgshadow.file_purge($1)", target); err != nil {
		return
	}
	_ = tx.Commit(ctx)
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

func readBatches(ctx context.Context, tx pgx.Tx, target string) ([]batchRow, error) {
	rows, err := tx.Query(ctx, `SELECT sub_id, tbl::text, dest_schema::text, dest_table::text,
	        format('%I.%I', dest_schema, dest_table), key_columns::text[], key_types, columns::text[],
	        column_types, batch_no, old_snapshot::text, new_snapshot::text, full_copy, keys_sql, rows_sql
	   FROM pgshadow.file_batches($1)`, target)
	if err != nil {
		return nil, batchesError(target, err)
	}
	var out []batchRow
	for rows.Next() {
		var b batchRow
		if err := rows.Scan(&b.subID, &b.tbl, &b.destSchema, &b.destTable, &b.dest, &b.keyCols, &b.keyTypes,
			&b.cols, &b.colTypes, &b.batchNo, &b.oldSnap, &b.newSnap, &b.fullCopy, &b.keysSQL, &b.rowsSQL); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read batches of target %q: %w", target, err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, batchesError(target, err)
	}
	return out, nil
}

var errConcurrentExport = errors.New("concurrent export")

// batchesError explains the one failure two exports of a target running at
// once produce: the second waits for the first's locks, then cannot use the
// watermarks its snapshot predates.
func batchesError(target string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "40001" {
		return fmt.Errorf("%w: another export of target %q committed while this one waited for it; nothing was written, run it again (%v)",
			errConcurrentExport, target, err)
	}
	return fmt.Errorf("read batches of target %q: %w", target, err)
}

// table is b's manifest entry, before anything is counted.
func (b batchRow) table() Table {
	return Table{SubID: b.subID, SourceTable: b.tbl, DestSchema: b.destSchema, DestTable: b.destTable, Dest: b.dest,
		BatchNo: b.batchNo, OldSnapshot: b.oldSnap, NewSnapshot: b.newSnap, FullCopy: b.fullCopy}
}

// keysCopy is the COPY that reads the changed keys of an incremental batch,
// in key order; rowsCopy reads their current rows (all rows for a full
// copy), in the order columns lists them.
func (b batchRow) keysCopy() (string, error) {
	if b.keysSQL == nil {
		return "", errors.New("file_batches returned no keys query for an incremental batch")
	}
	return "COPY (" + *b.keysSQL + ") TO STDOUT", nil
}

func (b batchRow) rowsCopy() string { return "COPY (" + b.rowsSQL + ") TO STDOUT" }

// columns lists the shipped columns with their key positions.
func (b batchRow) columns() ([]Column, error) {
	if len(b.cols) != len(b.colTypes) || len(b.keyCols) != len(b.keyTypes) {
		return nil, errors.New("file_batches returned column and type lists of different lengths")
	}
	keyPos := map[string]int{}
	for i, k := range b.keyCols {
		keyPos[k] = i + 1
	}
	cols := make([]Column, len(b.cols))
	for i, c := range b.cols {
		cols[i] = Column{Name: c, Type: b.colTypes[i], Key: keyPos[c]}
	}
	if _, err := keyColumns(cols); err != nil {
		return nil, fmt.Errorf("shipped columns %v do not hold the key %v: %w", b.cols, b.keyCols, err)
	}
	return cols, nil
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

func writeMetered(path string, write func(io.Writer) error) (File, error) {
	return writeMeteredWith(path, newMeter(nil, "", -1, false), write)
}

// writeMeteredWith creates path, runs write on it through m, then flushes
// and fsyncs it.
func writeMeteredWith(path string, m *meter, write func(io.Writer) error) (File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(meterWriter{bw, m}); err != nil {
		return File{}, err
	}
	if err := bw.Flush(); err != nil {
		return File{}, err
	}
	if err := f.Sync(); err != nil {
		return File{}, fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return File{}, err
	}
	m.finish()
	return File{Name: filepath.Base(path), Size: m.size(), SHA256: m.sha256()}, nil
}

// rowEstimate is the planner's row count of table tbl, the total a full
// copy's progress is shown against; -1 when never analyzed or unreadable
// (progress then shows no total, the copy goes on). to_regclass: a name
// that no longer resolves must not abort the caller's transaction.
func rowEstimate(ctx context.Context, conn *pgx.Conn, tbl string) int64 {
	var n int64
	err := conn.QueryRow(ctx, `SELECT coalesce((SELECT c.reltuples::bigint FROM pg_catalog.pg_class c
	        WHERE c.oid = pg_catalog.to_regclass($1)), -1)`, tbl).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}

func writeFileSync(path string, data []byte) error {
	_, err := writeMetered(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	return err
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

// mkdirAllSync creates dir and its missing parents, fsyncing the parent of
// each directory it creates so the new entries survive a crash. It reports
// whether dir itself was created.
func mkdirAllSync(dir string) (created bool, err error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	// missing runs from dir up; create from the top down
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return false, err
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return false, err
		}
	}
	if fi, err := os.Stat(dir); err != nil {
		return false, err
	} else if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	return len(missing) > 0, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

func setLocal(ctx context.Context, tx pgx.Tx, settings [][2]string) error {
	for _, s := range settings {
		if _, err := tx.Exec(ctx, "SELECT set_config($1, $2, true)", s[0], s[1]); err != nil {
			return fmt.Errorf("set %s: %w", s[0], err)
		}
	}
	return nil
}

// recordError stores why an export or ship failed in the subscriptions' last_error
// (shown by shadow_status). The failed transaction rolled back, so this runs
// in a transaction of its own; it is best effort.
func recordError(ctx context.Context, conn *pgx.Conn, target, command string, cause error) {
	if conn.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "SELECT pgshadow._record_error($1, $2)", target, "pgshadow "+command+": "+cause.Error())
}
