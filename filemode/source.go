// The source side that Export and Ship share: the transaction that reads
// the pending batches of a file target (pgshadow.file_batches), what one
// batch row says, moving the watermarks once the batch is durable
// (pgshadow.file_done), and recording failures in pgshadow.shadow_errors.

package filemode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

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
