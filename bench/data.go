// Test data and the setup every figure shares: the row shape the issue asks
// for (bigint key, int, ~50-byte text, timestamptz, numeric), a staging table
// to insert from, pgshadow with its targets, and the raw COPY pipe.

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// tableDef is the column list of every benchmark table.
const tableDef = "(id bigint PRIMARY KEY, i int NOT NULL, t text NOT NULL, ts timestamptz NOT NULL, n numeric NOT NULL)"

// genSQL selects rows lo..hi of the benchmark data; t is 50 characters.
func genSQL(lo, hi int) string {
	return fmt.Sprintf("SELECT g, (g %% 1000)::int, md5(g::text) || left(md5((-g)::text), 18),"+
		" timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', round(g / 7.0, 2)"+
		" FROM generate_series(%d, %d) g", lo, hi)
}

// createTable creates name with the benchmark shape and fills it with rows
// 1..rows (from the staging table gen when it holds them).
func (b *bench) createTable(c *pgx.Conn, name string, rows int, fromGen bool) error {
	src := genSQL(1, rows)
	if fromGen {
		src = fmt.Sprintf("SELECT * FROM gen WHERE id <= %d", rows)
	}
	// VACUUM refuses to run in the implicit transaction of a multi-statement string
	if err := b.exec(c, fmt.Sprintf("CREATE TABLE %[1]s %[2]s; INSERT INTO %[1]s %[3]s", ident(name), tableDef, src)); err != nil {
		return err
	}
	return b.exec(c, "VACUUM ANALYZE "+ident(name))
}

// createGen creates the staging table gen holding rows 1..rows.
func (b *bench) createGen(c *pgx.Conn, rows int) error {
	return b.createTable(c, "gen", rows, false)
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func lit(s string) string {
	out := "'"
	for _, r := range s {
		if r == '\'' {
			out += "''"
		} else {
			out += string(r)
		}
	}
	return out + "'"
}

// installPgshadow creates the extension in the database c is connected to
// and a foreign server "dst" for database dstDB on the target server, with a
// user mapping; targets are created per figure.
func (b *bench) installPgshadow(c *pgx.Conn, dstDB string) error {
	return b.exec(c, "CREATE EXTENSION IF NOT EXISTS pgshadow CASCADE;\n"+
		b.dst.ForeignServerSQL("dst", dstDB)+";\n"+b.dst.UserMappingSQL("dst"))
}

// subscribe tracks table name and ships it to a target of its own (so each
// figure's shadow_export call ships only its own table); the target table
// must already hold the rows (initial_copy => false).
func (b *bench) subscribe(c *pgx.Conn, target, table string) error {
	return b.exec(c, fmt.Sprintf("SELECT shadow_add_target(%s, 'dst'); SELECT shadow_subscribe(%[1]s, %s, initial_copy => false)",
		lit(target), lit(table)))
}

// shadowTable is the name of the shadow table of a tracked table, from
// pgshadow's catalog (the naming scheme is pgshadow's business).
func (b *bench) shadowTable(c *pgx.Conn, table string) (string, error) {
	return b.queryText(c, "SELECT format('pgshadow.%I', shadow) FROM pgshadow.tracked WHERE tbl = $1::regclass", table)
}

// exportResult sums shadow_export's rows.
type exportResult struct {
	keys, upserts, deletes int64
	batches                int
}

// export runs shadow_export(target) and sums what it shipped. A table whose
// row reports an error fails the call: shadow_export only raises when every
// table failed.
func (b *bench) export(c *pgx.Conn, target string) (exportResult, error) {
	var r exportResult
	rows, err := c.Query(b.ctx, "SELECT batches, keys, upserts, deletes, to_jsonb(e) ->> 'error' FROM shadow_export($1) e", target)
	if err != nil {
		return r, fmt.Errorf("shadow_export(%s): %w", lit(target), err)
	}
	defer rows.Close()
	for rows.Next() {
		var bt int
		var k, u, d int64
		var failed *string
		if err := rows.Scan(&bt, &k, &u, &d, &failed); err != nil {
			return r, fmt.Errorf("shadow_export(%s): %w", lit(target), err)
		}
		if failed != nil {
			return r, fmt.Errorf("shadow_export(%s): a table failed: %s", lit(target), *failed)
		}
		r.batches += bt
		r.keys += k
		r.upserts += u
		r.deletes += d
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("shadow_export(%s): %w", lit(target), err)
	}
	return r, nil
}

// copyPipe streams `COPY (query) TO STDOUT` from one connection into
// `COPY table FROM STDIN` on another: the raw limit of moving rows between
// two servers, with nothing but a pipe in between.
func (b *bench) copyPipe(from *pgx.Conn, query string, to *pgx.Conn, table string) (float64, error) {
	var secs float64
	err := timeIt(&secs, func() error {
		pr, pw := io.Pipe()
		errc := make(chan error, 1)
		go func() {
			_, err := from.PgConn().CopyTo(b.ctx, pw, fmt.Sprintf("COPY (%s) TO STDOUT", query))
			pw.CloseWithError(err)
			errc <- err
		}()
		_, err := to.PgConn().CopyFrom(b.ctx, pr, fmt.Sprintf("COPY %s FROM STDIN", ident(table)))
		pr.CloseWithError(io.ErrClosedPipe)
		if werr := <-errc; werr != nil && err == nil {
			err = werr
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("COPY pipe into %s: %w", table, err)
	}
	return secs, nil
}

// sameContent checks that table has the same rows on both sides (count and
// an order-independent checksum): a benchmark that ships wrong data measures
// nothing.
func (b *bench) sameContent(src *pgx.Conn, srcTable string, dst *pgx.Conn, dstTable string) error {
	const q = "SELECT count(*)::text || ' ' || coalesce(sum(hashtext(id::text || i::text || t || ts::text || n::text)::bigint), 0)::text FROM %s"
	a, err := b.queryText(src, fmt.Sprintf(q, ident(srcTable)))
	if err != nil {
		return err
	}
	z, err := b.queryText(dst, fmt.Sprintf(q, ident(dstTable)))
	if err != nil {
		return err
	}
	if a != z {
		return fmt.Errorf("%s differs after shipping: source (count checksum) %s, target %s", dstTable, a, z)
	}
	return nil
}

func timeIt(secs *float64, f func() error) error {
	t := time.Now()
	err := f()
	*secs = time.Since(t).Seconds()
	return err
}
