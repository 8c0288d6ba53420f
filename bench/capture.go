// Figures 1, 2 and 9 (and the capture half of 5): what tracking a table costs
// its writers, against the same table untracked, mimeo's row trigger and
// plain triggers, measured in one interleaved loop.

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
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

// resetCapture starts a measurement of c alike for every capturer: it runs
// stmt (VACUUM, TRUNCATE) on c's table, empties c's key store and takes a
// checkpoint on the source.
func (b *bench) resetCapture(c capturer, stmt string) error {
	if err := b.exec(b.s, stmt+" "+ident(c.table)); err != nil {
		return err
	}
	if err := b.resetStore(c); err != nil {
		return err
	}
	return b.checkpoint(b.s)
}

// peerCapturers adds to cs, for figure 1, the practical limits of trigger
// capture: a plain row trigger writing (key, op, xid8) into a queue table,
// and a statement trigger that does nothing (the cost of firing one at all).
func (b *bench) peerCapturers(cs []capturer, prefix string, rows int) ([]capturer, error) {
	row, nop := prefix+"_rowtrig", prefix+"_nop"
	for _, t := range []string{row, nop} {
		if err := b.createTable(b.s, t, rows, true); err != nil {
			return nil, err
		}
	}
	err := b.exec(b.s, fmt.Sprintf(`CREATE TABLE %[1]s (id bigint NOT NULL, op "char" NOT NULL, xid xid8 NOT NULL DEFAULT pg_current_xact_id());
CREATE FUNCTION %[2]s() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO %[1]s (id, op) VALUES (OLD.id, 'D');
    ELSE
        INSERT INTO %[1]s (id, op) VALUES (NEW.id, left(TG_OP, 1));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER capture AFTER INSERT OR UPDATE OR DELETE ON %[3]s FOR EACH ROW EXECUTE FUNCTION %[2]s();
CREATE FUNCTION %[4]s() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER capture AFTER INSERT OR UPDATE OR DELETE ON %[5]s FOR EACH STATEMENT EXECUTE FUNCTION %[4]s()`,
		ident(row+"_q"), ident(row+"_fn"), ident(row), ident(nop+"_fn"), ident(nop)))
	if err != nil {
		return nil, err
	}
	return append(cs, capturer{name: "row trigger", table: row, store: ident(row + "_q")}, capturer{name: "no-op trigger", table: nop}), nil
}

// oltpOps are figure 1's single-row statements; %[1]s is the table, %[2]s
// its sequence of new keys (from rows+1), %[3]s its sequence of keys to
// delete (from 1: every repetition deletes rows no earlier one deleted).
var oltpOps = []struct{ name, script string }{
	{"update", "\\set id random(1, %[4]d)\nUPDATE %[1]s SET i = i + 1 WHERE id = :id;\n"},
	{"insert", "INSERT INTO %[1]s VALUES (nextval('%[2]s'), 1, 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwx', now(), 1);\n"},
	{"delete", "DELETE FROM %[1]s WHERE id = (SELECT nextval('%[3]s'));\n"},
}

func (b *bench) figOLTP() error {
	n, secs := b.sz.oltpRows, b.sz.oltpSecs
	f := b.rep.fig(1, "Capture overhead, single-row OLTP", map[string]any{"secs": secs, "rows": n})
	b.logf("figure 1: creating %d-row tables", n)
	cs, err := b.capturers("o", n)
	if err != nil {
		return err
	}
	if cs, err = b.peerCapturers(cs, "o", n); err != nil {
		return err
	}
	var vs []variant
	for _, c := range cs {
		ins, del := c.table+"_ins", c.table+"_del"
		if err := b.exec(b.s, fmt.Sprintf("CREATE SEQUENCE %s START %d; CREATE SEQUENCE %s START 1", ident(ins), n+1, ident(del))); err != nil {
			return err
		}
		scripts := map[string]string{}
		for _, op := range oltpOps {
			script := filepath.Join(b.tmpDir, c.table+"_"+op.name+".pgbench")
			if err := os.WriteFile(script, []byte(fmt.Sprintf(op.script, c.table, ins, del, n)), 0o644); err != nil {
				return err
			}
			scripts[op.name] = script
		}
		vs = append(vs, variant{name: c.name, run: func(rep int, rec func(string, float64)) error {
			for _, op := range oltpOps {
				if err := b.resetCapture(c, "VACUUM"); err != nil {
					return err
				}
				var tps float64
				var txs int64
				_, cpu, err := b.measure(func() (err error) {
					tps, txs, err = b.pgbench(scripts[op.name], secs)
					return err
				})
				if err != nil {
					return err
				}
				rec(op.name, tps)
				rec(op.name+".cpu", cpu/float64(max(txs, 1)))
			}
			return nil
		}})
	}
	res, err := b.interleave("fig 1", b.cfg.reps, vs)
	if err != nil {
		return err
	}
	for _, op := range oltpOps {
		what := "single-row " + strings.ToUpper(op.name) + " throughput"
		b.rep.add(f, row{what: what, unit: throughput,
			oursName: "pgshadow", ours: res.get("pgshadow", op.name), oursCPU: res.cpu("pgshadow", op.name),
			baseName: "untracked", base: res.get("untracked", op.name), baseCPU: res.cpu("untracked", op.name),
			goal: atLeast(0.85, ">= 0.85")})
		for _, peer := range []string{"mimeo", "row trigger", "no-op trigger"} {
			if peer == "mimeo" && b.mimeoErr != nil {
				continue
			}
			b.rep.add(f, row{what: what + ", peer: " + peer, unit: throughput,
				oursName: peer, ours: res.get(peer, op.name), oursCPU: res.cpu(peer, op.name),
				baseName: "untracked", base: res.get("untracked", op.name), baseCPU: res.cpu("untracked", op.name)})
		}
		if b.mimeoErr == nil {
			b.rep.add(f, row{what: what + ", pgshadow against mimeo", unit: throughput,
				oursName: "pgshadow", ours: res.get("pgshadow", op.name), oursCPU: res.cpu("pgshadow", op.name),
				baseName: "mimeo", base: res.get("mimeo", op.name), baseCPU: res.cpu("mimeo", op.name),
				goal: atLeast(1.0, ">= 1 (never below mimeo)")})
		}
	}
	if b.mimeoErr == nil {
		f5 := b.fig5()
		b.rep.add(f5, row{what: "capture: single-row UPDATE throughput (fig. 1 runs)", unit: throughput,
			oursName: "pgshadow", ours: res.get("pgshadow", "update"), oursCPU: res.cpu("pgshadow", "update"),
			baseName: "mimeo", base: res.get("mimeo", "update"), baseCPU: res.cpu("mimeo", "update"),
			note: "higher is better here; ratio > 1 means pgshadow keeps more throughput than mimeo"})
	}
	return nil
}

// figTPCB: pgbench's built-in TPC-B-like script on two databases initialized
// alike, one untracked and one with its three keyed tables tracked.
func (b *bench) figTPCB() error {
	scale, secs := 10, b.sz.oltpSecs
	f := b.rep.fig(9, "Capture overhead, pgbench TPC-B", map[string]any{"scale": scale, "secs": secs})
	dbs := map[string]string{"untracked": "tpcb_plain", "pgshadow": "tpcb_shadow"}
	conns := map[string]*pgx.Conn{}
	for _, name := range []string{"untracked", "pgshadow"} {
		db := dbs[name]
		if err := b.createDB(b.src, db); err != nil {
			return err
		}
		b.logf("figure 9: pgbench -i -s %d %s", scale, db)
		cmd := exec.CommandContext(b.ctx, filepath.Join(b.bin, "pgbench"), "-i", "-q", "-s", strconv.Itoa(scale),
			"-h", b.src.Host, "-p", strconv.Itoa(b.src.Port), "-U", b.src.User, db)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+b.src.Password, "PGSSLMODE=disable")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pgbench -i %s: %w\n%s", db, err, out)
		}
		c, err := b.connect(b.src, db)
		if err != nil {
			return err
		}
		conns[name] = c
	}
	if err := b.exec(conns["pgshadow"], `CREATE EXTENSION pgshadow CASCADE;
		SELECT shadow_track(t) FROM unnest('{pgbench_accounts,pgbench_tellers,pgbench_branches}'::regclass[]) t`); err != nil {
		return err
	}
	var vs []variant
	for _, name := range []string{"untracked", "pgshadow"} {
		c := conns[name]
		vs = append(vs, variant{name: name, run: func(rep int, rec func(string, float64)) error {
			if err := b.exec(c, "VACUUM pgbench_accounts, pgbench_tellers, pgbench_branches, pgbench_history"); err != nil {
				return err
			}
			if name == "pgshadow" {
				if err := b.exec(c, `DO $$ DECLARE s text; BEGIN
					FOR s IN SELECT shadow FROM pgshadow.tracked LOOP EXECUTE format('TRUNCATE pgshadow.%I', s); END LOOP; END $$`); err != nil {
					return err
				}
			}
			if err := b.checkpoint(c); err != nil {
				return err
			}
			var tps float64
			var txs int64
			_, cpu, err := b.measure(func() (err error) {
				tps, txs, err = b.pgbenchArgs(dbs[name], "-c", "4", "-j", "2", "-T", strconv.Itoa(secs))
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
	res, err := b.interleave("fig 9", b.cfg.reps, vs)
	if err != nil {
		return err
	}
	b.rep.add(f, row{what: fmt.Sprintf("TPC-B scale %d, 4 clients", scale), unit: throughput,
		oursName: "pgshadow", ours: res.get("pgshadow", "tps"), oursCPU: res.cpu("pgshadow", "tps"),
		baseName: "untracked", base: res.get("untracked", "tps"), baseCPU: res.cpu("untracked", "tps"),
		goal: atLeast(0.80, ">= 0.80")})
	return nil
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
var failedLine = regexp.MustCompile(`number of failed transactions: ([0-9]+)`)
var txLine = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)

// pgbench runs a custom script with 2 clients on 2 threads for secs seconds
// and returns its tps (without connection time) and transaction count.
func (b *bench) pgbench(script string, secs int) (float64, int64, error) {
	return b.pgbenchArgs(benchDB, "-c", "2", "-j", "2", "-T", strconv.Itoa(secs), "-f", script)
}

// pgbenchArgs runs pgbench -n -M prepared with args against database db.
func (b *bench) pgbenchArgs(db string, args ...string) (float64, int64, error) {
	all := append([]string{"-n", "-M", "prepared"}, args...)
	all = append(all, "-h", b.src.Host, "-p", strconv.Itoa(b.src.Port), "-U", b.src.User, db)
	cmd := exec.CommandContext(b.ctx, filepath.Join(b.bin, "pgbench"), all...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+b.src.Password, "PGOPTIONS=-c synchronous_commit=off", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	name := strings.Join(args, " ")
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
	return b.rep.fig(5, "Against mimeo", nil)
}

func (b *bench) figBulk() error {
	n := b.sz.bulkRows
	f := b.rep.fig(2, "Capture overhead, bulk", map[string]any{"rows": n})
	b.logf("figure 2: creating tables")
	cs, err := b.capturers("b", 0)
	if err != nil {
		return err
	}
	var vs []variant
	for _, c := range cs {
		vs = append(vs, variant{name: c.name, run: func(rep int, rec func(string, float64)) error {
			if err := b.resetCapture(c, "TRUNCATE"); err != nil {
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
		goal: atMost(1.25, "<= 1.25x")})
	b.rep.add(f, row{what: label + "-row UPDATE", unit: seconds,
		oursName: "pgshadow", ours: res.get("pgshadow", "update"), oursCPU: res.cpu("pgshadow", "update"),
		baseName: "untracked", base: res.get("untracked", "update"), baseCPU: res.cpu("untracked", "update"),
		goal: atMost(1.25, "<= 1.25x")})
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
