// Figures 6 and 7: shipping cost must follow the number of changes, not the
// size of the table; and the shadow table must not grow over many export
// cycles (bloat).

package main

import (
	"fmt"
	"math/rand"
	"sync"
	"time"
)

func (b *bench) figScale() error {
	big, small := b.sz.scaleBig, b.sz.scaleSmall
	f := b.rep.fig(6, "Scale: cost follows the changes, not the table", map[string]any{"big": rowsLabel(big), "small": rowsLabel(small)})
	b.logf("figure 6: creating the %d-row and %d-row tables (this takes a while)", big, small)
	tables := []struct {
		name, target string
		rows         int
	}{{"sc_big", "f6big", big}, {"sc_small", "f6small", small}}
	for _, t := range tables {
		if err := b.createBoth(t.name, t.rows); err != nil {
			return err
		}
		if err := b.subscribe(b.s, t.target, t.name); err != nil {
			return err
		}
	}
	perRow := map[string][]string{}
	for _, n := range b.sz.scaleChanges {
		var vs []variant
		for _, t := range tables {
			step := t.rows / n
			vs = append(vs, variant{name: t.name, run: func(rep int, rec func(string, float64)) error {
				if err := b.exec(b.s, fmt.Sprintf("UPDATE %s SET i = i + 1 WHERE id IN (SELECT generate_series(%d, %d, %d))",
					t.name, step, step*n, step)); err != nil {
					return err
				}
				if err := b.vacuumBoth(t.name, t.name); err != nil {
					return err
				}
				if err := b.checkpoint(b.s, b.d); err != nil {
					return err
				}
				var r exportResult
				err := b.recTimed(rec, "ship", func() (err error) {
					r, err = b.export(b.s, t.target)
					return err
				})
				if err != nil {
					return err
				}
				if r.keys != int64(n) {
					return fmt.Errorf("shadow_export shipped %d keys, want %d", r.keys, n)
				}
				return nil
			}})
		}
		res, err := b.interleave(fmt.Sprintf("fig 6 N=%d", n), b.cfg.reps, vs)
		if err != nil {
			return err
		}
		b.rep.add(f, row{what: fmt.Sprintf("ship %s changed rows", rowsLabel(n)), unit: seconds,
			oursName: rowsLabel(big) + "-row table", ours: res.get("sc_big", "ship"), oursCPU: res.cpu("sc_big", "ship"),
			baseName: rowsLabel(small) + "-row table", base: res.get("sc_small", "ship"), baseCPU: res.cpu("sc_small", "ship"),
			goal: atMost(1.25, "<= 1.25")})
		for _, t := range tables {
			perRow[t.name] = append(perRow[t.name], fmt.Sprintf("%s: %.1f µs", rowsLabel(n), median(res.get(t.name, "ship"))/float64(n)*1e6))
		}
	}
	for _, t := range tables {
		f.notes = append(f.notes, fmt.Sprintf("time per changed row, %s-row table: %v", rowsLabel(t.rows), perRow[t.name]))
		// checked once at the end: a checksum of 10M rows per repetition would dominate the figure
		if err := b.sameContent(b.s, t.name, b.d, t.name); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) figBloat() error {
	rows, cycles, changes := b.sz.bloatRows, b.sz.bloatCycles, b.sz.bloatChanges
	f := b.rep.fig(7, "No bloat", map[string]any{"rows": rowsLabel(rows), "cycles": cycles, "changes": rowsLabel(changes)})
	if err := b.createBoth("bl", rows); err != nil {
		return err
	}
	if err := b.subscribe(b.s, "f7", "bl"); err != nil {
		return err
	}
	shadow, err := b.shadowTable(b.s, "bl")
	if err != nil {
		return err
	}
	size := func() (float64, error) {
		// the shadow may be partitioned: sum its partitions
		n, err := b.queryInt(b.s, "SELECT coalesce((SELECT sum(pg_total_relation_size(relid))::bigint FROM pg_partition_tree($1::regclass)),"+
			" pg_total_relation_size($1::regclass))", shadow)
		return float64(n), err
	}
	// sizes of the shadow table over the cycles, before and after each export
	type sizes struct{ first, last, peak float64 }
	track := func(z *sizes, c int, s float64) {
		if c == 0 {
			z.first = s
		}
		z.last, z.peak = s, max(z.peak, s)
	}
	cyclesRun := func(label string) (before, after sizes, err error) {
		for c := 0; c < cycles; c++ {
			lo := (c*changes)%rows + 1
			if err = b.exec(b.s, fmt.Sprintf("UPDATE bl SET i = i + 1 WHERE id BETWEEN %d AND %d", lo, lo+changes-1)); err != nil {
				return
			}
			var s, a float64
			if s, err = size(); err != nil {
				return
			}
			track(&before, c, s)
			var r exportResult
			if r, err = b.export(b.s, "f7"); err != nil {
				return
			}
			if r.keys < int64(changes) {
				err = fmt.Errorf("cycle %d: shadow_export shipped %d keys, want at least %d", c+1, r.keys, changes)
				return
			}
			if a, err = size(); err != nil {
				return
			}
			track(&after, c, a)
			if c == 0 || (c+1)%max(1, cycles/5) == 0 {
				b.logf("fig 7 %s: cycle %d/%d: shadow table %.2f MB before export, %.2f MB after", label, c+1, cycles, s/(1<<20), a/(1<<20))
			}
		}
		return
	}
	report := func(label, note string, before, after sizes) {
		b.rep.add(f, row{what: fmt.Sprintf("%s: shadow table after cycle %d vs after cycle 1", label, cycles), unit: megabytes,
			oursName: fmt.Sprintf("cycle %d", cycles), ours: []float64{after.last}, baseName: "cycle 1", base: []float64{after.first},
			goal: atMost(2, "<= 2x"), note: fmt.Sprintf("largest after any cycle: %.2f MB%s", after.peak/(1<<20), note)})
		b.rep.add(f, row{what: fmt.Sprintf("%s: shadow table before export %d vs before export 1", label, cycles), unit: megabytes,
			oursName: fmt.Sprintf("cycle %d", cycles), ours: []float64{before.last}, baseName: "cycle 1", base: []float64{before.first},
			note: fmt.Sprintf("largest before any export: %.2f MB", before.peak/(1<<20))})
	}

	before, after, err := cyclesRun("quiet")
	if err != nil {
		return err
	}
	report("quiet", "", before, after)
	if err := b.sameContent(b.s, "bl", b.d, "bl"); err != nil {
		return err
	}

	// Busy: a second session keeps writing while the cycles run.
	w, err := b.connect(b.src, benchDB)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var werr error
	var writes int
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewSource(1))
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := w.Exec(b.ctx, "UPDATE bl SET i = i + 1 WHERE id = $1", rng.Intn(rows)+1); err != nil {
				werr = err
				return
			}
			writes++
		}
	}()
	start := time.Now()
	before, after, err = cyclesRun("busy")
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("fig 7 background writer: %w", werr)
	}
	// a last export so the comparison below includes the writer's last changes
	if _, err := b.export(b.s, "f7"); err != nil {
		return err
	}
	report("busy", fmt.Sprintf("; the other session wrote %d rows (%.0f/s)", writes, float64(writes)/time.Since(start).Seconds()),
		before, after)
	return b.sameContent(b.s, "bl", b.d, "bl")
}
