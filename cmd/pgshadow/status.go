// `pgshadow status`: prints the shadow_status view as an aligned table.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgshadow/pgshadow/internal/pgsession"
)

func runStatus(ctx context.Context, args []string) error {
	fs := newFlagSet("status", "pgshadow status [-d CONNSTR] [-target NAME] [-timeout D]\n"+
		"       pgshadow status -check [-warn-lag D] [-crit-lag D] [-warn-pending N] [-crit-pending N] [-d CONNSTR] [-target NAME] [-timeout D]")
	dsn := fs.String("d", "", dsnHelp)
	target := fs.String("target", "", "show only this target")
	timeout := fs.Duration("timeout", time.Minute, timeoutHelp)
	check := fs.Bool("check", false, "alert check, as a Nagios/Icinga plugin: one line \"PGSHADOW OK|WARNING|CRITICAL|UNKNOWN - ...\" with perfdata, exit 0/1/2/3; a subscription with an error is CRITICAL")
	var th thresholds
	fs.DurationVar(&th.warnLag, "warn-lag", 0, "-check: WARNING when a subscription's oldest pending change is older (0: no limit)")
	fs.DurationVar(&th.critLag, "crit-lag", 0, "-check: CRITICAL when a subscription's oldest pending change is older (0: no limit)")
	fs.Int64Var(&th.warnPending, "warn-pending", 0, "-check: WARNING when a subscription has more keys pending (0: no limit)")
	fs.Int64Var(&th.critPending, "crit-pending", 0, "-check: CRITICAL when a subscription has more keys pending (0: no limit)")
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) && slices.ContainsFunc(args, isCheckFlag) {
			return checkVerdict(unknown, "bad arguments: "+err.Error(), "")
		}
		return err
	}
	ctx, cancel := withTimeout(ctx, *timeout)
	defer cancel()
	if fs.NArg() > 0 {
		if *check {
			return checkVerdict(unknown, fmt.Sprintf("bad arguments: unexpected argument %q", fs.Arg(0)), "")
		}
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *check {
		return runCheck(ctx, *dsn, *target, th)
	}
	conn, err := connectDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	schema, err := pgsession.APISchema(ctx, conn)
	if err != nil {
		return oneLine(err)
	}
	header, rows, right, err := queryText(ctx, conn,
		`SELECT * FROM `+schema+`.shadow_status WHERE $1 = '' OR target = $1 ORDER BY target, "table"::text`, *target)
	if err != nil {
		return oneLine(fmt.Errorf("read shadow_status (is pgshadow installed in this database?): %w", err))
	}
	if len(rows) == 0 {
		fmt.Println("no subscriptions")
		return nil
	}
	printTable(os.Stdout, header, rows, right)
	return nil
}

// queryText runs a query and returns its column names, its rows as
// PostgreSQL's text output (NULL as ""), and which columns are numeric.
func queryText(ctx context.Context, conn *pgx.Conn, sql string, args ...any) ([]string, [][]string, []bool, error) {
	rows, err := conn.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	var header []string
	var right []bool
	for _, f := range rows.FieldDescriptions() {
		header = append(header, f.Name)
		switch f.DataTypeOID {
		case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.NumericOID, pgtype.Float4OID, pgtype.Float8OID:
			right = append(right, true)
		default:
			right = append(right, false)
		}
	}
	var out [][]string
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]string, len(raw))
		for i, v := range raw {
			// keep each row on one line whatever a value holds
			row[i] = strings.Join(strings.Fields(string(v)), " ")
		}
		out = append(out, row)
	}
	return header, out, right, rows.Err()
}

// printTable writes rows under header in aligned columns, numbers
// right-aligned, like psql.
func printTable(w io.Writer, header []string, rows [][]string, right []bool) {
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, v := range r {
			width[i] = max(width[i], utf8.RuneCountInString(v))
		}
	}
	line := func(cells []string, alignRight func(int) bool) {
		var b strings.Builder
		for i, c := range cells {
			if i > 0 {
				b.WriteString(" | ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if alignRight(i) {
				b.WriteString(pad + c)
			} else if i < len(cells)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header, func(int) bool { return false })
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	fmt.Fprintln(w, strings.Join(sep, "-+-"))
	for _, r := range rows {
		line(r, func(i int) bool { return right[i] })
	}
}
