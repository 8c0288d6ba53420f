// Compare: are a file target's tables in a target database equal to their
// source tables? The same check as shadow_compare for push targets, run by
// a client that reaches both databases: each side hashes its rows range by
// range of the primary key (ChunkRows source rows a range), with the same
// order-independent hash, under the same value settings, so only the ranges
// that differ are named. It reads and changes nothing else; each side reads
// with its own session's rights.
package filemode

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CompareOptions say which file target, and optionally which table, to
// compare.
type CompareOptions struct {
	Target    string // a file target: shadow_add_target(name, NULL)
	Table     string // one source table, schema-qualified (a SQL name), or "" for all of the target's
	ChunkRows int    // source rows per range; 0: 10000
}

// RangeDiff is a key range whose rows differ: From and To are the key values
// that bound it (From included, To excluded; nil is open).
type RangeDiff struct {
	From, To               []string
	SourceRows, TargetRows int64
}

// TableComparison is the outcome for one table.
type TableComparison struct {
	SourceTable, Dest string
	Ranges            int // ranges compared
	Differ            []RangeDiff
}

// Compare compares the tables of o.Target read through src with their
// destinations read through dst.
func Compare(ctx context.Context, src, dst *pgx.Conn, o CompareOptions) ([]TableComparison, error) {
	if o.ChunkRows == 0 {
		o.ChunkRows = 10000
	}
	if o.ChunkRows < 0 {
		return nil, errors.New("the chunk size must be positive")
	}
	stx, err := src.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("source: begin: %w", err)
	}
	// file_batches locks the subscriptions and names the next batch: all of
	// it is rolled back
	defer stx.Rollback(context.WithoutCancel(ctx))
	dtx, err := dst.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("target: begin: %w", err)
	}
	defer dtx.Rollback(context.WithoutCancel(ctx))
	// both sides render values as text under the same settings, so equal
	// rows hash alike
	settings := append([][2]string{{"search_path", "pg_catalog, pg_temp"}}, fixedSettings...)
	if err := setLocal(ctx, stx, settings); err != nil {
		return nil, err
	}
	if err := setLocal(ctx, dtx, settings); err != nil {
		return nil, err
	}
	var server *string
	err = stx.QueryRow(ctx, "SELECT server::text FROM pgshadow.target WHERE name = $1", o.Target).Scan(&server)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("target %q does not exist", o.Target)
	case err != nil:
		return nil, fmt.Errorf("read target %q (is pgshadow installed in the source database?): %w", o.Target, err)
	case server != nil:
		return nil, fmt.Errorf("target %q is a push target: compare it with SELECT * FROM shadow_compare('%s', table)", o.Target, o.Target)
	}
	tables, err := compareTables(ctx, stx, o)
	if err != nil {
		return nil, err
	}
	var out []TableComparison
	for _, t := range tables {
		c, err := t.compare(ctx, stx, dtx, o.ChunkRows)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// comparedTable is what Compare needs of one subscription.
type comparedTable struct {
	tbl, dest         string
	keyCols, keyTypes []string
	cols, colTypes    []string
	filter            string // SQL over alias t
}

func compareTables(ctx context.Context, tx pgx.Tx, o CompareOptions) ([]comparedTable, error) {
	rows, err := tx.Query(ctx, `SELECT b.tbl::text, format('%I.%I', b.dest_schema, b.dest_table), b.key_columns::text[], b.key_types,
	        b.columns::text[], b.column_types, pgshadow._filter_sql(b.tbl, s.row_filter)
	   FROM pgshadow.file_batches($1) b JOIN pgshadow.subscription s ON s.id = b.sub_id
	  WHERE $2 = '' OR b.tbl = pg_catalog.to_regclass($2)
	  ORDER BY b.sub_id`, o.Target, o.Table)
	if err != nil {
		return nil, fmt.Errorf("read the tables of target %q: %w", o.Target, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (comparedTable, error) {
		var t comparedTable
		return t, r.Scan(&t.tbl, &t.dest, &t.keyCols, &t.keyTypes, &t.cols, &t.colTypes, &t.filter)
	})
	if err != nil {
		return nil, fmt.Errorf("read the tables of target %q: %w", o.Target, err)
	}
	if len(out) == 0 && o.Table != "" {
		return nil, fmt.Errorf("table %s is not subscribed to target %q, or not by a role this one acts for (name it schema-qualified: the session's search_path is pg_catalog)", o.Table, o.Target)
	}
	return out, nil
}

// compare hashes each range on both sides; ranges start at every
// chunk-th source key, the first open below and the last above, so target
// rows outside the source's key span are counted too.
func (t comparedTable) compare(ctx context.Context, stx, dtx pgx.Tx, chunk int) (TableComparison, error) {
	res := TableComparison{SourceTable: t.tbl, Dest: t.dest}
	keys := make([]string, len(t.keyCols))
	for i, k := range t.keyCols {
		keys[i] = "t." + pgx.Identifier{k}.Sanitize()
	}
	keyList := strings.Join(keys, ", ")
	textKeys := make([]string, len(keys))
	for i, k := range keys {
		textKeys[i] = k + "::text"
	}
	rows, err := stx.Query(ctx, fmt.Sprintf(`SELECT b FROM (SELECT ARRAY[%s] AS b, row_number() OVER (ORDER BY %s) AS rn
	        FROM %s t WHERE (%s)) s WHERE rn %% $1 = 1 AND rn > 1 ORDER BY rn`, strings.Join(textKeys, ", "), keyList, t.tbl, t.filter), chunk)
	if err != nil {
		return res, fmt.Errorf("compare %s: read key bounds: %w", t.tbl, err)
	}
	bounds, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return res, fmt.Errorf("compare %s: read key bounds: %w", t.tbl, err)
	}
	for i := 0; i <= len(bounds); i++ {
		var lo, hi []string
		if i > 0 {
			lo = bounds[i-1]
		}
		if i < len(bounds) {
			hi = bounds[i]
		}
		cond, args := t.rangeSQL(keyList, lo, hi)
		var sn, dn int64
		var sh, dh string
		if err := stx.QueryRow(ctx, t.hashSQL(t.tbl, "("+t.filter+") AND "+cond), args...).Scan(&sn, &sh); err != nil {
			return res, fmt.Errorf("compare %s: hash source rows: %w", t.tbl, err)
		}
		if err := dtx.QueryRow(ctx, t.hashSQL(t.dest, cond), args...).Scan(&dn, &dh); err != nil {
			return res, fmt.Errorf("compare %s with %s in the target database: %w", t.tbl, t.dest, err)
		}
		res.Ranges++
		if sn != dn || sh != dh {
			res.Differ = append(res.Differ, RangeDiff{From: lo, To: hi, SourceRows: sn, TargetRows: dn})
		}
	}
	return res, nil
}

// rangeSQL is "(keys) >= (lo) AND (keys) < (hi)" with the bounds as
// parameters cast to the source's key types (nil: open).
func (t comparedTable) rangeSQL(keyList string, lo, hi []string) (string, []any) {
	cond := []string{"true"}
	var args []any
	for _, b := range []struct {
		vals []string
		op   string
	}{{lo, ">="}, {hi, "<"}} {
		if b.vals == nil {
			continue
		}
		ps := make([]string, len(b.vals))
		for i, v := range b.vals {
			args = append(args, v)
			ps[i] = fmt.Sprintf("$%d::%s", len(args), t.keyTypes[i])
		}
		cond = append(cond, fmt.Sprintf("(%s) %s (%s)", keyList, b.op, strings.Join(ps, ", ")))
	}
	return strings.Join(cond, " AND "), args
}

// hashSQL counts and hashes the shipped columns of from's rows matching
// where, cast to the source's types (so int against bigint on the target
// still compares equal): the formula of pgshadow._hash_sql.
func (t comparedTable) hashSQL(from, where string) string {
	cols := make([]string, len(t.cols))
	for i, c := range t.cols {
		cols[i] = fmt.Sprintf("t.%s::%s::text", pgx.Identifier{c}.Sanitize(), t.colTypes[i])
	}
	return fmt.Sprintf(`SELECT count(*)::bigint, coalesce(sum(('x' || substr(md5(ROW(%s)::text), 1, 15))::bit(60)::bigint::numeric), 0)::text
	   FROM %s t WHERE %s`, strings.Join(cols, ", "), from, where)
}
