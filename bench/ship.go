// Figure 3 (and the shipping half of 5): moving one change set of updated
// rows from the source to the target by shadow_export (push over dblink),
// by the CLI (`pgshadow ship` streaming, and file export + import for
// reference), and by mimeo's refresh_dml, against the
// raw limit, a COPY ... TO STDOUT | COPY ... FROM STDIN pipe between the same
// two servers.

package main

import (
	"fmt"
)

// changeAll updates every row of table, the change set figures 3 and 5 ship.
func (b *bench) changeAll(table string) error {
	return b.exec(b.s, fmt.Sprintf("UPDATE %s SET i = i + 1, ts = ts + interval '1 second'", ident(table)))
}

// vacuumBoth vacuums table on the source and dest on the target, so dead
// rows left by the previous repetition cost every contender alike.
func (b *bench) vacuumBoth(table, dest string) error {
	return parallel(
		func() error { return b.exec(b.s, "VACUUM ANALYZE "+ident(table)) },
		func() error { return b.exec(b.d, "VACUUM ANALYZE "+ident(dest)) })
}

// changeShipped starts a repetition of figure 3: it changes every row of
// each table (changeAll), vacuums it on both sides (vacuumBoth), then takes
// a checkpoint on both servers.
func (b *bench) changeShipped(tables ...string) error {
	for _, t := range tables {
		if err := b.changeAll(t); err != nil {
			return err
		}
		if err := b.vacuumBoth(t, t); err != nil {
			return err
		}
	}
	return b.checkpoint(b.s, b.d)
}

// createBoth creates table with rows 1..rows on the source and the same rows
// on the target (the data is a function of the key, so both sides generate
// it at once), so a subscription can start with initial_copy => false.
// Every figure checks the two sides are equal after shipping.
func (b *bench) createBoth(table string, rows int) error {
	return parallel(
		func() error { return b.createTable(b.s, table, rows, rows <= b.genRows()) },
		func() error { return b.createTable(b.d, table, rows, false) })
}

func (b *bench) figShip() error {
	n := b.sz.shipRows
	label := rowsLabel(n)
	f := b.rep.fig(3, "Shipping", map[string]any{"rows": n, "half": n / 2})
	b.logf("figure 3: creating %d-row tables on both sides", n)

	tables := []string{"s_push", "s_copy"}
	if b.mimeoErr == nil {
		tables = append(tables, "s_mimeo")
	}
	cli := b.cliAvailable()
	if cli {
		tables = append(tables, "s_cli", "s_files")
	}
	for _, t := range tables {
		if err := b.createBoth(t, n); err != nil {
			return err
		}
	}
	if err := b.subscribe(b.s, "f3", "s_push"); err != nil {
		return err
	}
	// consistent against per-table export of two tables of n/2 rows
	pairs := map[string][]string{"f3pt": {"s_pt_a", "s_pt_b"}, "f3cs": {"s_cs_a", "s_cs_b"}}
	for target, ts := range pairs {
		for _, t := range ts {
			if err := b.createBoth(t, n/2); err != nil {
				return err
			}
			if err := b.subscribe(b.s, target, t); err != nil {
				return err
			}
		}
	}
	if err := b.exec(b.s, "SELECT shadow_alter_target('f3cs', consistent => true)"); err != nil {
		return err
	}
	// The floor: what applying the change set as delete + insert costs on the
	// target alone, from a local table (no reading on the source, no
	// transport). Any apply that replaces changed rows pays at least this.
	if err := b.exec(b.d, fmt.Sprintf("CREATE TABLE s_floor %s; CREATE UNLOGGED TABLE s_floor_stage %[1]s; INSERT INTO s_floor SELECT * FROM s_push",
		tableDef)); err != nil {
		return err
	}

	vs := []variant{
		{name: "copy", run: func(rep int, rec func(string, float64)) error {
			if err := b.exec(b.d, "TRUNCATE s_copy"); err != nil {
				return err
			}
			if err := b.changeShipped("s_copy"); err != nil {
				return err
			}
			err := b.recTimed(rec, "ship", func() error {
				_, err := b.copyPipe(b.s, "SELECT * FROM s_copy", b.d, "s_copy")
				return err
			})
			if err != nil {
				return err
			}
			return b.sameContent(b.s, "s_copy", b.d, "s_copy")
		}},
		{name: "pgshadow", run: func(rep int, rec func(string, float64)) error {
			if err := b.changeShipped("s_push"); err != nil {
				return err
			}
			var r exportResult
			err := b.recTimed(rec, "ship", func() (err error) {
				r, err = b.export(b.s, "f3")
				return err
			})
			if err != nil {
				return err
			}
			if r.keys != int64(n) || r.upserts != int64(n) {
				return fmt.Errorf("shadow_export shipped %d keys / %d rows, want %d", r.keys, r.upserts, n)
			}
			return b.sameContent(b.s, "s_push", b.d, "s_push")
		}},
	}
	for _, v := range []struct {
		name, target string
		consistent   bool
	}{{"pertable", "f3pt", false}, {"consistent", "f3cs", true}} {
		v := v
		vs = append(vs, variant{name: v.name, run: func(rep int, rec func(string, float64)) error {
			if err := b.changeShipped(pairs[v.target]...); err != nil {
				return err
			}
			var r exportResult
			err := b.recTimed(rec, "ship", func() (err error) {
				if !v.consistent {
					r, err = b.export(b.s, v.target)
					return err
				}
				if err := b.exec(b.s, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
					return err
				}
				if r, err = b.export(b.s, v.target); err != nil {
					_ = b.exec(b.s, "ROLLBACK")
					return err
				}
				return b.exec(b.s, "COMMIT; SELECT pgshadow.file_purge("+lit(v.target)+")")
			})
			if err != nil {
				return err
			}
			if r.keys != int64(n/2*2) {
				return fmt.Errorf("%s export shipped %d keys, want %d", v.name, r.keys, n/2*2)
			}
			for _, t := range pairs[v.target] {
				if err := b.sameContent(b.s, t, b.d, t); err != nil {
					return err
				}
			}
			return nil
		}})
	}
	vs = append(vs, variant{name: "floor", run: func(rep int, rec func(string, float64)) error {
		if err := b.exec(b.d, "TRUNCATE s_floor_stage; INSERT INTO s_floor_stage SELECT id, i + 1, t, ts + interval '1 second', n FROM s_floor"); err != nil {
			return err
		}
		if err := b.vacuumBoth("s_push", "s_floor"); err != nil {
			return err
		}
		if err := b.exec(b.d, "VACUUM ANALYZE s_floor_stage"); err != nil {
			return err
		}
		if err := b.checkpoint(b.s, b.d); err != nil {
			return err
		}
		return b.recTimed(rec, "ship", func() error {
			return b.exec(b.d, "BEGIN; DELETE FROM s_floor f USING s_floor_stage k WHERE f.id = k.id; INSERT INTO s_floor SELECT * FROM s_floor_stage; COMMIT")
		})
	}})
	if b.mimeoErr == nil {
		if err := b.mimeoTrack(b.d, "s_mimeo"); err != nil {
			b.mimeoErr = err
		} else {
			vs = append(vs, variant{name: "mimeo", run: func(rep int, rec func(string, float64)) error {
				if err := b.changeAll("s_mimeo"); err != nil {
					return err
				}
				if err := b.vacuumBoth("s_mimeo", "s_mimeo"); err != nil {
					return err
				}
				// the queue table holds the rows the previous refresh deleted
				if err := b.exec(b.s, "VACUUM ANALYZE "+mimeoQueue("s_mimeo")); err != nil {
					return err
				}
				if err := b.checkpoint(b.s, b.d); err != nil {
					return err
				}
				err := b.recTimed(rec, "ship", func() error {
					_, err := b.mimeoRefresh(b.d, "s_mimeo")
					return err
				})
				if err != nil {
					return err
				}
				return b.sameContent(b.s, "s_mimeo", b.d, "s_mimeo")
			}})
		}
	}
	if cli {
		v, err := b.cliVariant("s_cli", n)
		if err != nil {
			return err
		}
		fv, err := b.filesVariant("s_files", n)
		if err != nil {
			return err
		}
		vs = append(vs, v, fv)
	}

	res, err := b.interleave("fig 3", b.cfg.reps, vs)
	if err != nil {
		return err
	}
	copyT, copyCPU := res.get("copy", "ship"), res.cpu("copy", "ship")
	b.rep.add(f, row{what: label + " changed rows, server-side push", unit: seconds,
		oursName: "shadow_export", ours: res.get("pgshadow", "ship"), oursCPU: res.cpu("pgshadow", "ship"),
		baseName: "COPY pipe", base: copyT, baseCPU: copyCPU,
		goal: atMost(1.5, "<= 1.5x")})
	b.rep.add(f, row{what: "floor: DELETE + INSERT of the " + label + " rows on the target from a local table", unit: seconds,
		oursName: "target alone", ours: res.get("floor", "ship"), oursCPU: res.cpu("floor", "ship"),
		baseName: "COPY pipe", base: copyT, baseCPU: copyCPU,
		note: "no source, no transport: the least any apply that replaces changed rows by key costs; its ratio bounds what shipping can reach against a COPY into an empty table"})
	b.rep.add(f, row{what: "2 tables of " + rowsLabel(n/2) + " changed rows, consistent export (one snapshot, one remote transaction)",
		unit:     seconds,
		oursName: "consistent", ours: res.get("consistent", "ship"), oursCPU: res.cpu("consistent", "ship"),
		baseName: "per table", base: res.get("pertable", "ship"), baseCPU: res.cpu("pertable", "ship"),
		note: "the cost of shipping a target's tables at one snapshot in one remote transaction instead of one per table"})
	if cli {
		b.rep.add(f, row{what: label + " changed rows, CLI `pgshadow ship` (streaming)", unit: seconds,
			oursName: "pgshadow ship", ours: res.get("cli", "ship"), oursCPU: res.cpu("cli", "ship"),
			baseName: "COPY pipe", base: copyT, baseCPU: copyCPU,
			goal: atMost(1.15, "<= 1.15x")})
		b.rep.add(f, row{what: label + " changed rows, CLI export + import through files (reference)", unit: seconds,
			oursName: "export + import", ours: res.get("files", "ship"), oursCPU: res.cpu("files", "ship"),
			baseName: "COPY pipe", base: copyT, baseCPU: copyCPU,
			note: fmt.Sprintf("of which export (source to files, fsynced) %.2f s and import (files to target) %.2f s (medians)",
				median(res.get("files", "export")), median(res.get("files", "import")))})
	} else {
		f.notes = append(f.notes, "CLI ship and export/import: not measured in this run (the filemode package was not available when it ran).")
	}
	if b.mimeoErr == nil {
		f5 := b.fig5()
		b.rep.add(f5, row{what: "shipping " + label + " changed rows (fig. 3 runs)", unit: seconds,
			oursName: "shadow_export", ours: res.get("pgshadow", "ship"), oursCPU: res.cpu("pgshadow", "ship"),
			baseName: "mimeo refresh_dml", base: res.get("mimeo", "ship"), baseCPU: res.cpu("mimeo", "ship"),
			goal: atMost(1.0/3, "<= 0.333 (3x faster)")})
		b.rep.add(f5, row{what: "shipping: mimeo against the raw COPY pipe", unit: seconds,
			oursName: "mimeo refresh_dml", ours: res.get("mimeo", "ship"), oursCPU: res.cpu("mimeo", "ship"),
			baseName: "COPY pipe", base: copyT, baseCPU: copyCPU})
	} else {
		b.fig5().blocked = b.mimeoErr.Error()
	}
	return nil
}
