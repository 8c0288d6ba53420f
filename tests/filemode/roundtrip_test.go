// File mode ends where push mode ends: after every round of changes, the
// database fed by exported and imported files holds the same rows as the one
// fed by shadow_export, whatever the servers' session defaults.
package filemode_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgshadow/pgshadow/filemode"
	"github.com/pgshadow/pgshadow/tests/pgtest"
)

const ordersDDL = `
CREATE TABLE orders (
    id       bigint PRIMARY KEY,
    customer text,
    amount   numeric(12,2),
    ratio    float8,
    placed   timestamptz,
    local_ts timestamp,
    due      date,
    wait     interval,
    doc      jsonb,
    blob     bytea,
    tags     text[]
);
CREATE TABLE lines (
    order_id bigint,
    line     int,
    item     text NOT NULL,
    qty      int,
    PRIMARY KEY (line, order_id)  -- key order differs from column order
);`

// awkwardOrders inserts rows whose text form depends on session settings or
// needs COPY escaping.
const awkwardOrders = `
INSERT INTO orders VALUES
 (9001, E'tab\there\nnewline \\backslash "quote" ''apos''', 'NaN', 'NaN', 'infinity', '2001-02-03 04:05:06', '0044-03-15 BC',
  '1 year 2 mons -3 days 04:05:06.789', '{"k": "\u00e9\\n", "n": [1, 2.50, null]}', '\x00ff5c0a', ARRAY['a,b', NULL, '"q"', '']),
 (9002, '', 1234567890.12, '-0', '2024-02-29 23:59:59.999999+05:30', '2024-02-29 23:59:59.999999', '2024-02-29', '-1 day 04:05:06', 'null', '', '{}'),
 (9003, 'ünïcødé ✓', -0.01, 1e-300, '1999-12-31 23:00:00-11', '-infinity', '1970-01-01', '0', '[]', '\x5c4e', NULL),
 (9004, NULL, NULL, 'Infinity', '-infinity', NULL, 'infinity', '100 years', NULL, NULL, ARRAY[NULL]::text[]);`

// alterDatabase sets per-database defaults that change how values print and
// parse; they apply to the connections opened afterwards.
func alterDatabase(t *testing.T, d *pgtest.DB, settings map[string]string) {
	t.Helper()
	for k, v := range settings {
		d.Exec(t, fmt.Sprintf("ALTER DATABASE %q SET %s = %s", d.Name, k, pgtest.Lit(v)))
	}
}

// A mix of inserts, updates, deletes, key updates and TRUNCATE over several
// batches ends with the same rows through files as through push mode, with
// source and target sessions defaulting to different, unusual settings.
func TestFileModeMatchesPushMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alterDatabase(t, e.Src, map[string]string{"DateStyle": "SQL, DMY", "IntervalStyle": "sql_standard",
		"TimeZone": "America/Caracas", "extra_float_digits": "-3", "bytea_output": "escape"})
	alterDatabase(t, e.Files, map[string]string{"DateStyle": "German, MDY", "IntervalStyle": "sql_standard",
		"TimeZone": "Asia/Kathmandu"})
	e.All(t, ordersDDL)
	e.Src.Exec(t, `INSERT INTO orders (id, customer, amount, ratio, placed, local_ts, due, wait, doc, blob, tags)
		SELECT g, 'c' || g, g * 1.25, g / 3.0, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
		       '2024-01-01 12:00'::timestamp - g * interval '1 day 1 second',
		       '2024-01-01'::date + g, g * interval '1 minute', jsonb_build_object('g', g), int4send(g), ARRAY['x' || g]
		  FROM generate_series(1, 50) g`)
	e.Src.Exec(t, "INSERT INTO lines SELECT o, l, 'item ' || l, l FROM generate_series(1, 20) o, generate_series(1, 3) l")
	e.Subscribe(t, "orders")
	e.Subscribe(t, "lines")

	var dirs []string
	sync := func(round string) *filemode.Manifest {
		t.Helper()
		dir := e.Sync(t)
		if dir == "" {
			t.Fatalf("round %s: the export wrote no batch directory although changes were pending", round)
		}
		dirs = append(dirs, dir)
		e.Same(t, "orders")
		e.Same(t, "lines")
		m, _, err := filemode.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	table := func(m *filemode.Manifest, name string) *filemode.Table {
		t.Helper()
		for i := range m.Tables {
			if m.Tables[i].SourceTable == name {
				return &m.Tables[i]
			}
		}
		return nil
	}

	// round 1: the initial copy
	m := sync("initial copy")
	if o := table(m, "public.orders"); o == nil || !o.FullCopy || o.BatchNo != 1 || o.Rows != 50 {
		t.Errorf("first batch of orders: %+v, want a full copy, batch 1, 50 rows", o)
	}

	// round 2: inserts, updates, deletes, a key update, in several transactions
	e.Src.Exec(t, awkwardOrders)
	e.Src.Exec(t, "UPDATE orders SET amount = amount * 2, doc = doc || '{\"u\": true}' WHERE id % 5 = 0")
	e.Src.Exec(t, "DELETE FROM orders WHERE id BETWEEN 10 AND 14")
	e.Src.Exec(t, "UPDATE orders SET id = id + 1000 WHERE id IN (3, 4)") // key update: old key deleted
	e.Src.Exec(t, "UPDATE lines SET line = line + 10, qty = qty * 7 WHERE order_id = 2")
	e.Src.Exec(t, "DELETE FROM lines WHERE order_id = 3")
	e.Src.Exec(t, "INSERT INTO orders VALUES (20000, 'rolled back')")
	e.Src.Exec(t, "BEGIN; INSERT INTO orders VALUES (20001, 'never'); ROLLBACK")
	e.Src.Exec(t, "DELETE FROM orders WHERE id = 20000")
	m = sync("mixed changes")
	if o := table(m, "public.orders"); o == nil || o.FullCopy || o.BatchNo != 2 || o.Keys == 0 {
		t.Errorf("second batch of orders: %+v, want incremental batch 2 with keys", o)
	}

	// round 3: TRUNCATE in the middle of changes makes the batch a full copy
	e.Src.Exec(t, "UPDATE lines SET qty = 0 WHERE line = 1")
	e.Src.Exec(t, "TRUNCATE lines")
	e.Src.Exec(t, "INSERT INTO lines VALUES (1, 1, 'after truncate', 1), (2, 1, E'a\\\\b', NULL)")
	e.Src.Exec(t, "UPDATE orders SET customer = customer || ' again' WHERE id > 9000")
	m = sync("truncate")
	if l := table(m, "public.lines"); l == nil || !l.FullCopy || l.Rows != 2 || l.Files.Keys != nil {
		t.Errorf("batch of lines after TRUNCATE: %+v, want a full copy of 2 rows without keys file", l)
	}
	if o := table(m, "public.orders"); o == nil || o.FullCopy {
		t.Errorf("batch of orders next to the TRUNCATE of lines: %+v, want incremental", o)
	}

	// round 4: only orders changes; lines gets no files and keeps its batch number
	e.Src.Exec(t, "UPDATE orders SET ratio = ratio + 1 WHERE id < 30")
	lines := e.watermark(t, "lines")
	m = sync("orders only")
	if len(m.Tables) != 1 || m.Tables[0].SourceTable != "public.orders" {
		t.Errorf("manifest of a run where only orders changed lists %d tables: %+v", len(m.Tables), m.Tables)
	}
	if got := e.watermark(t, "lines"); got != lines {
		t.Errorf("watermark of unchanged lines moved from %s to %s", lines, got)
	}

	// round 5: everything deleted
	e.Src.Exec(t, "DELETE FROM orders")
	e.Src.Exec(t, "DELETE FROM lines")
	sync("delete all")
	if n := e.Files.QueryInt(t, "SELECT count(*) FROM orders"); n != 0 {
		t.Errorf("file target holds %d orders after all were deleted", n)
	}

	// nothing pending: no directory
	if dir := e.Export(t); dir != "" {
		t.Errorf("an export with nothing pending wrote %s", dir)
	}
	// directory names sort in the order the runs happened
	names, err := os.ReadDir(filepath.Join(e.Dir, fileTarget))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range names {
		got = append(got, filepath.Join(e.Dir, fileTarget, n.Name()))
	}
	if !slices.Equal(got, dirs) {
		t.Errorf("batch directories in name order %v, want run order %v", got, dirs)
	}
}

// An export with nothing pending writes nothing at all, not even the
// target's directory, and moves no batch number.
func TestNothingPendingWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.SrcAndFiles(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	e.SubscribeFiles(t, "t", "initial_copy => false")
	before := e.watermark(t, "t")
	res, err := e.ExportErr(t, filemode.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BatchDir != "" || len(res.Unchanged) != 1 {
		t.Errorf("export with nothing pending: dir %q, unchanged %v; want no dir and public.t unchanged", res.BatchDir, res.Unchanged)
	}
	if entries, _ := os.ReadDir(e.Dir); len(entries) != 0 {
		t.Errorf("export with nothing pending left %v in %s", entries, e.Dir)
	}
	if after := e.watermark(t, "t"); !strings.HasSuffix(after, " batch 0") || !strings.HasSuffix(before, " batch 0") {
		t.Errorf("batch number moved without a batch: %s, then %s", before, after)
	}
}
