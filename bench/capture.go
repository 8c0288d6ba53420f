// Figures 1 and 2 (and the capture half of 5): what tracking a table costs
// its writers, against the same table untracked and against mimeo's row
// trigger, measured in one interleaved loop.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// capturer is one way of (not) tracking a table.
type capturer struct {
	name  string // variant name: untracked, pgshadow, mimeo
	table string
	store string // where captured keys go (emptied before each repetition); "" for none
}

// capturers creates table prefix_plain, prefix_shadow and (if mimeo works)
// prefix_mimeo with rows rows each, and tracks the latter two.
func (b *bench) capturers(prefix string, rows int) ([]capturer, error) {
	cs := []capturer{{name: "untracked", table: prefix + "_plain"}, {name: "pgshadow", table: prefix + "_shadow"}}
	if b.mimeoErr == nil {
		cs = append(cs, capturer{name: "mimeo", table: prefix + "_mimeo", store: mimeoQueue(prefix + "_mimeo")})
	}
	for i := range cs {
		if err := b.createTable(b.s, cs[i].table, rows, true); err != nil {
			return nil, err
		}
	}
	if err := b.exec(b.s, fmt.Sprintf("SELECT shadow_track(%s)", lit(cs[1].table))); err != nil {
		return nil, err
	}
	var err error
	if cs[1].store, err = b.shadowTable(b.s, cs[1].table); err != nil {
		return nil, err
	}
	if len(cs) == 3 {
		if err := b.mimeoTrack(b.d, cs[2].table); err != nil {
			b.mimeoErr = err
			b.logf("mimeo left out: %v", err)
			cs = cs[:2]
		}
	}
	return cs, nil
}

// resetStore empties a capturer's key store, so every repetition starts alike.
func (b *bench) resetStore(c capturer) error {
	if c.store == "" {
		return nil
	}
	return b.exec(b.s, "TRUNCATE "+c.store)
}

func (b *bench) figOLTP() error {
	n, secs := b.sz.oltpRows, b.sz.oltpSecs
	f := b.rep.fig(1, "Capture overhead, single-row OLTP", fmt.Sprintf(
		"pgbench (`-n -M prepared -c 2 -j 2 -T %d`, `PGOPTIONS=-c synchronous_commit=off`) runs "+
			"`UPDATE tbl SET i = i + 1 WHERE id = :id` with `:id` uniformly random over %d rows, "+
			"on an untracked table and on a table tracked by pgshadow (statement-level capture trigger). "+
			"Before each run: VACUUM of the table, capture store emptied, CHECKPOINT. Figure: transactions per second.",
		secs, n))
	b.logf("figure 1: creating %d-row tables", n)
	cs, err := b.capturers("o", n)
	if err != nil {
		return err
	}
	var vs []variant
	for _, c := range cs {
		script := filepath.Join(b.tmpDir, c.table+".pgbench")
		body := fmt.Sprintf("\\set id random(1, %d)\nUPDATE %s SET i = i + 1 WHERE id = :id;\n", n, c.table)
		if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
			return err
		}
		vs = append(vs, variant{name: c.name, run: func(rep int, rec func(string, float64)) error {
			if err := b.exec(b.s, "VACUUM "+ident(c.table)); err != nil {
				return err
			}
			if err := b.resetStore(c); err != nil {
				return err
			}
			if err := b.checkpoint(b.s); err != nil {
				return err
			}
			var tps float64
			var txs int64
			_, cpu, err := b.measure(func() (err error) {
				tps, txs, err = b.pgbench(script, secs)
				return err
			})
			if err != nil {
				return err
			}
			rec("tps", tps)
			rec("tps.cpu", cpu/float64(max(txs, 1)))
			return nil
		}})
	}
	res, err := b.interleave("fig 1", b.cfg.reps, vs)
	if err != nil {
		return err
	}
	b.rep.add(f, row{what: "single-row UPDATE throughput", unit: throughput,
		oursName: "pgshadow", ours: res.get("pgshadow", "tps"), oursCPU: res.cpu("pgshadow", "tps"),
		baseName: "untracked", base: res.get("untracked", "tps"), baseCPU: res.cpu("untracked", "tps"),
		goal: atLeast(0.90, ">= 0.90")})
	if b.mimeoErr == nil {
		f5 := b.fig5()
		b.rep.add(f5, row{what: "capture: single-row UPDATE throughput (fig. 1 runs)", unit: throughput,
			oursName: "pgshadow", ours: res.get("pgshadow", "tps"), oursCPU: res.cpu("pgshadow", "tps"),
			baseName: "mimeo", base: res.get("mimeo", "tps"), baseCPU: res.cpu("mimeo", "tps"),
			note: "higher is better here; ratio > 1 means pgshadow keeps more throughput than mimeo"})
		b.rep.add(f5, row{what: "capture: mimeo's own overhead, single-row UPDATE", unit: throughput,
			oursName: "mimeo", ours: res.get("mimeo", "tps"), oursCPU: res.cpu("mimeo", "tps"),
			baseName: "untracked", base: res.get("untracked", "tps"), baseCPU: res.cpu("untracked", "tps")})
	}
	return nil
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
var failedLine = regexp.MustCompile(`number of failed transactions: ([0-9]+)`)
var txLine = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)

// pgbench runs a custom script with 2 clients on 2 threads for secs seconds
// and returns its tps (without connection time) and transaction count.
func (b *bench) pgbench(script string, secs int) (float64, int64, error) {
	cmd := exec.CommandContext(b.ctx, filepath.Join(b.bin, "pgbench"), "-n", "-M", "prepared",
		"-c", "2", "-j", "2", "-T", strconv.Itoa(secs), "-f", script,
		"-h", b.src.Host, "-p", strconv.Itoa(b.src.Port), "-U", b.src.User, benchDB)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+b.src.Password, "PGOPTIONS=-c synchronous_commit=off", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	name := filepath.Base(script)
	if err != nil {
		return 0, 0, fmt.Errorf("pgbench %s: %w\n%s", name, err, out)
	}
	if m := failedLine.FindSubmatch(out); m != nil && string(m[1]) != "0" {
		return 0, 0, fmt.Errorf("pgbench %s: %s transactions failed\n%s", name, m[1], out)
	}
	m, mt := tpsLine.FindSubmatch(out), txLine.FindSubmatch(out)
	if m == nil || mt == nil {
		return 0, 0, fmt.Errorf("pgbench %s: no tps or transaction count in its output:\n%s", name, out)
	}
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, 0, err
	}
	txs, err := strconv.ParseInt(string(mt[1]), 10, 64)
	return tps, txs, err
}

func (b *bench) fig5() *figure {
	return b.rep.fig(5, "Against mimeo", "mimeo 1.5 (Debian's postgresql-15-mimeo) with DML replication (`dml_maker`, "+
		"row trigger into a queue table on the source, `refresh_dml` pulling over dblink into the destination), "+
		"set up as its howto describes. Capture rows come from the interleaved runs of figures 1 and 2; "+
		"shipping rows from those of figure 3 (same change set, same servers).")
}

func (b *bench) figBulk() error {
	n := b.sz.bulkRows
	f := b.rep.fig(2, "Capture overhead, bulk", fmt.Sprintf(
		"`INSERT INTO tbl SELECT * FROM gen` of %d rows into an empty table, then (after VACUUM ANALYZE and CHECKPOINT) "+
			"`UPDATE tbl SET i = i + 1, ts = ts + interval '1 second'` of all of them, on an untracked and a tracked table. "+
			"Before each repetition the table is truncated and the capture store emptied. Figure: statement time.", n))
	b.logf("figure 2: creating tables")
	cs, err := b.capturers("b", 0)
	if err != nil {
		return err
	}
	var vs []variant
	for _, c := range cs {
		vs = append(vs, variant{name: c.name, run: func(rep int, rec func(string, float64)) error {
			if err := b.exec(b.s, "TRUNCATE "+ident(c.table)); err != nil {
				return err
			}
			if err := b.resetStore(c); err != nil {
				return err
			}
			if err := b.checkpoint(b.s); err != nil {
				return err
			}
			err := b.recTimed(rec, "insert", func() error {
				return b.exec(b.s, fmt.Sprintf("INSERT INTO %s SELECT * FROM gen WHERE id <= %d", ident(c.table), n))
			})
			if err != nil {
				return err
			}
			if err := b.exec(b.s, "VACUUM ANALYZE "+ident(c.table)); err != nil {
				return err
			}
			if err := b.checkpoint(b.s); err != nil {
				return err
			}
			return b.recTimed(rec, "update", func() error {
				return b.exec(b.s, fmt.Sprintf("UPDATE %s SET i = i + 1, ts = ts + interval '1 second'", ident(c.table)))
			})
		}})
	}
	res, err := b.interleave("fig 2", b.cfg.reps, vs)
	if err != nil {
		return err
	}
	label := rowsLabel(n)
	b.rep.add(f, row{what: label + "-row INSERT ... SELECT", unit: seconds,
		oursName: "pgshadow", ours: res.get("pgshadow", "insert"), oursCPU: res.cpu("pgshadow", "insert"),
		baseName: "untracked", base: res.get("untracked", "insert"), baseCPU: res.cpu("untracked", "insert"),
		goal: atMost(1.2, "<= 1.2x")})
	b.rep.add(f, row{what: label + "-row UPDATE", unit: seconds,
		oursName: "pgshadow", ours: res.get("pgshadow", "update"), oursCPU: res.cpu("pgshadow", "update"),
		baseName: "untracked", base: res.get("untracked", "update"), baseCPU: res.cpu("untracked", "update"),
		goal: atMost(1.2, "<= 1.2x")})
	if b.mimeoErr == nil {
		f5 := b.fig5()
		for _, m := range []string{"insert", "update"} {
			what := label + "-row INSERT ... SELECT"
			if m == "update" {
				what = label + "-row UPDATE"
			}
			b.rep.add(f5, row{what: "capture: " + what + " (fig. 2 runs)", unit: seconds,
				oursName: "pgshadow", ours: res.get("pgshadow", m), oursCPU: res.cpu("pgshadow", m),
				baseName: "mimeo", base: res.get("mimeo", m), baseCPU: res.cpu("mimeo", m)})
			b.rep.add(f5, row{what: "capture: mimeo's own overhead, " + what, unit: seconds,
				oursName: "mimeo", ours: res.get("mimeo", m), oursCPU: res.cpu("mimeo", m),
				baseName: "untracked", base: res.get("untracked", m), baseCPU: res.cpu("untracked", m)})
		}
	}
	return nil
}

// rowsLabel prints 1000000 as 1M and 100000 as 100k.
func rowsLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1_000 && n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strings.TrimSpace(strconv.Itoa(n))
}
