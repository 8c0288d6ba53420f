// Figure 4: pgshadow against native logical replication (publication and
// subscription) between the same two servers, the source running with
// wal_level=logical. Two scenarios: 1M rows inserted in one statement, and
// 100k keys each updated 10 times (where shipping net change pays).

package main

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

const lrDB = "lbench" // target database of figure 4

// logicalPair holds the connections of figure 4.
type logicalPair struct {
	src, dst *pgx.Conn
}

func (b *bench) figLogical() error {
	n, k, times := b.sz.lrRows, b.sz.netKeys, b.sz.netTimes
	f := b.rep.fig(4, "Against native logical replication", map[string]any{"poll": pollInterval, "rows": n, "keys": k, "times": times})

	b.logf("figure 4: setting up publication, subscription and pgshadow on the logical source")
	if err := b.createDB(b.dst, lrDB); err != nil {
		return err
	}
	var p logicalPair
	var err error
	if p.src, err = b.connect(b.lsrc, benchDB); err != nil {
		return err
	}
	if p.dst, err = b.connect(b.dst, lrDB); err != nil {
		return err
	}
	if err := b.createGen(p.src, n); err != nil {
		return err
	}
	if err := b.installPgshadow(p.src, lrDB); err != nil {
		return err
	}
	for _, t := range []string{"l_pub", "l_sh"} {
		if err := b.exec(p.src, fmt.Sprintf("CREATE TABLE %s %s", t, tableDef)); err != nil {
			return err
		}
		if err := b.exec(p.dst, fmt.Sprintf("CREATE TABLE %s %s", t, tableDef)); err != nil {
			return err
		}
	}
	if err := b.exec(p.src, "CREATE PUBLICATION bench_pub FOR TABLE l_pub"); err != nil {
		return err
	}
	conn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s", b.lsrc.Host, b.lsrc.Port, benchDB, b.lsrc.User, b.lsrc.Password)
	if err := b.exec(p.dst, fmt.Sprintf("CREATE SUBSCRIPTION bench_sub CONNECTION %s PUBLICATION bench_pub WITH (copy_data = false)", lit(conn))); err != nil {
		return err
	}
	if err := b.subscribe(p.src, "f4", "l_sh"); err != nil {
		return err
	}
	if err := b.slotActive(p, true); err != nil {
		return err
	}

	// Scenario A: one big INSERT into an empty table.
	resA, err := b.interleave("fig 4 A", b.cfg.reps, b.lrVariants(p, lrScenario{
		prepare: func(table string) error {
			if err := b.exec(p.src, "TRUNCATE "+table); err != nil {
				return err
			}
			if table == "l_sh" {
				_, err := b.export(p.src, "f4") // ships the TRUNCATE
				return err
			}
			return b.waitFor("the TRUNCATE to replicate", 5*time.Minute, func() (bool, error) {
				var empty bool
				err := p.dst.QueryRow(b.ctx, "SELECT NOT EXISTS (SELECT FROM l_pub)").Scan(&empty)
				return empty, err
			})
		},
		write: func(table string) (func() (bool, error), error) {
			err := b.exec(p.src, fmt.Sprintf("INSERT INTO %s SELECT * FROM gen WHERE id <= %d", table, n))
			return func() (bool, error) {
				var ok bool
				err := p.dst.QueryRow(b.ctx, fmt.Sprintf("SELECT EXISTS (SELECT FROM %s WHERE id = %d)", table, n)).Scan(&ok)
				return ok, err
			}, err
		},
		shipped: func(r exportResult) error {
			if r.upserts != int64(n) {
				return fmt.Errorf("shadow_export shipped %d rows, want %d", r.upserts, n)
			}
			return nil
		},
	}))
	if err != nil {
		return err
	}
	label := rowsLabel(n)
	b.rep.add(f, row{what: "A, live: " + label + " inserted rows on the target, from the start of the INSERT", unit: seconds,
		oursName: "pgshadow", ours: resA.get("pgshadow", "total"), oursCPU: resA.cpu("pgshadow", "total"),
		baseName: "logical replication", base: resA.get("logical-live", "total"), baseCPU: resA.cpu("logical-live", "total"),
		goal: atMost(1.0, "<= 1.0 (no slower)")})
	b.rep.add(f, row{what: "A, live: the part after the INSERT committed", unit: seconds,
		oursName: "pgshadow", ours: resA.get("pgshadow", "after-commit"), oursCPU: resA.cpu("pgshadow", "after-commit"),
		baseName: "logical replication", base: resA.get("logical-live", "after-commit"), baseCPU: resA.cpu("logical-live", "after-commit")})
	b.rep.add(f, row{what: "A, catch-up: " + label + "-row backlog", unit: seconds,
		oursName: "pgshadow", ours: resA.get("pgshadow", "after-commit"), oursCPU: resA.cpu("pgshadow", "after-commit"),
		baseName: "logical replication", base: resA.get("logical-catchup", "catchup"), baseCPU: resA.cpu("logical-catchup", "catchup")})

	// Scenario B: k keys updated `times` times, in separate transactions.
	resB, err := b.interleave("fig 4 B", b.cfg.reps, b.lrVariants(p, lrScenario{
		prepare: func(table string) error {
			if err := b.exec(p.src, "VACUUM ANALYZE "+table); err != nil {
				return err
			}
			return b.exec(p.dst, "VACUUM ANALYZE "+table)
		},
		write: func(table string) (func() (bool, error), error) {
			for j := 0; j < times; j++ {
				q := fmt.Sprintf("UPDATE %s SET i = i + 1, ts = ts + interval '1 second' WHERE id <= %d", table, k)
				if err := b.exec(p.src, q); err != nil {
					return nil, err
				}
			}
			want, err := b.queryInt(p.src, fmt.Sprintf("SELECT i FROM %s WHERE id = %d", table, k))
			return func() (bool, error) {
				got, err := b.queryInt(p.dst, fmt.Sprintf("SELECT i FROM %s WHERE id = %d", table, k))
				return got == want, err
			}, err
		},
		shipped: func(r exportResult) error {
			// a backlog cut into several batches ships a key once per batch
			// it changed in; the note under the figure says how it went
			if r.keys < int64(k) {
				return fmt.Errorf("shadow_export shipped %d keys, want %d", r.keys, k)
			}
			return nil
		},
	}))
	if err != nil {
		return err
	}
	kl := rowsLabel(k)
	b.rep.add(f, row{what: fmt.Sprintf("B, catch-up: %s keys x %d updates (net change)", kl, times), unit: seconds,
		oursName: "pgshadow", ours: resB.get("pgshadow", "after-commit"), oursCPU: resB.cpu("pgshadow", "after-commit"),
		baseName: "logical replication", base: resB.get("logical-catchup", "catchup"), baseCPU: resB.cpu("logical-catchup", "catchup"),
		goal: atMost(0.2, "<= 0.2 (5x faster)")})
	f.rows[len(f.rows)-1].note = fmt.Sprintf("shadow_export with its default batch_size shipped the %d-change backlog in %.0f batch(es), %.0f keys in all (medians)",
		k*times, median(resB.get("pgshadow", "batches")), median(resB.get("pgshadow", "keys")))
	b.rep.add(f, row{what: fmt.Sprintf("B, live: %s keys x %d updates, from the first UPDATE", kl, times), unit: seconds,
		oursName: "pgshadow", ours: resB.get("pgshadow", "total"), oursCPU: resB.cpu("pgshadow", "total"),
		baseName: "logical replication", base: resB.get("logical-live", "total"), baseCPU: resB.cpu("logical-live", "total")})
	return nil
}

// lrScenario is one workload of figure 4, run on l_pub (logical
// replication) and on l_sh (pgshadow).
type lrScenario struct {
	prepare func(table string) error // untimed, before the writes
	// write runs the source writes and returns a check that the target has
	// their final state
	write   func(table string) (applied func() (bool, error), err error)
	shipped func(exportResult) error // checks what shadow_export reported
}

// lrVariants are the three contenders of a scenario: logical replication
// live (subscription enabled throughout), logical replication catching up a
// backlog (writes while disabled, clock starts at ENABLE), and pgshadow
// (writes, then shadow_export; its export time is its catch-up).
func (b *bench) lrVariants(p logicalPair, sc lrScenario) []variant {
	prepare := func(table string) error {
		if err := sc.prepare(table); err != nil {
			return err
		}
		return b.checkpoint(p.src, p.dst)
	}
	vs := []variant{
		{name: "logical-live", run: func(rep int, rec func(string, float64)) error {
			if err := prepare("l_pub"); err != nil {
				return err
			}
			m := b.startMark()
			applied, err := sc.write("l_pub")
			if err != nil {
				return err
			}
			m1 := b.startMark()
			if err := b.waitFor("the writes to replicate", 30*time.Minute, applied); err != nil {
				return err
			}
			m.rec(b, rec, "total")
			m1.rec(b, rec, "after-commit")
			return b.samePair(p, "l_pub")
		}},
		{name: "logical-catchup", run: func(rep int, rec func(string, float64)) error {
			if err := prepare("l_pub"); err != nil {
				return err
			}
			if err := b.setSubscription(p, false); err != nil {
				return err
			}
			applied, err := sc.write("l_pub")
			if err != nil {
				return err
			}
			if err := b.checkpoint(p.src, p.dst); err != nil {
				return err
			}
			m := b.startMark()
			if err := b.exec(p.dst, "ALTER SUBSCRIPTION bench_sub ENABLE"); err != nil {
				return err
			}
			if err := b.waitFor("the backlog to replicate", 30*time.Minute, applied); err != nil {
				return err
			}
			m.rec(b, rec, "catchup")
			return b.samePair(p, "l_pub")
		}},
		b.lrPgshadow(p, sc, prepare),
	}
	return vs
}

// lrPgshadow is the pgshadow contender of a scenario: writes, then
// shadow_export.
func (b *bench) lrPgshadow(p logicalPair, sc lrScenario, prepare func(string) error) variant {
	return variant{name: "pgshadow", run: func(rep int, rec func(string, float64)) error {
		if err := prepare("l_sh"); err != nil {
			return err
		}
		m := b.startMark()
		if _, err := sc.write("l_sh"); err != nil {
			return err
		}
		m1 := b.startMark()
		r, err := b.export(p.src, "f4")
		if err != nil {
			return err
		}
		m.rec(b, rec, "total")
		m1.rec(b, rec, "after-commit")
		rec("batches", float64(r.batches))
		rec("keys", float64(r.keys))
		if err := sc.shipped(r); err != nil {
			return err
		}
		return b.samePair(p, "l_sh")
	}}
}

// mark is a point in wall-clock and CPU time to measure from.
type mark struct {
	t   time.Time
	cpu float64
}

func (b *bench) startMark() mark { return mark{time.Now(), b.cpuSeconds()} }

// rec records wall-clock and CPU seconds since the mark as metric.
func (m mark) rec(b *bench, rec func(string, float64), metric string) {
	rec(metric, time.Since(m.t).Seconds())
	rec(metric+".cpu", b.cpuSeconds()-m.cpu)
}

// setSubscription enables or disables the subscription and waits until the
// source's slot is (in)active accordingly, so a disabled subscription really
// has stopped consuming.
func (b *bench) setSubscription(p logicalPair, enabled bool) error {
	verb := "DISABLE"
	if enabled {
		verb = "ENABLE"
	}
	if err := b.exec(p.dst, "ALTER SUBSCRIPTION bench_sub "+verb); err != nil {
		return err
	}
	return b.slotActive(p, enabled)
}

func (b *bench) slotActive(p logicalPair, active bool) error {
	return b.waitFor(fmt.Sprintf("slot bench_sub active=%v", active), 2*time.Minute, func() (bool, error) {
		var a bool
		err := p.src.QueryRow(b.ctx, "SELECT coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = 'bench_sub'), false)").Scan(&a)
		return a == active, err
	})
}

func (b *bench) samePair(p logicalPair, table string) error {
	return b.sameContent(p.src, table, p.dst, table)
}
