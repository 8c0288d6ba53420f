// The CLI contenders of figure 3: the filemode package that `pgshadow ship`,
// `pgshadow export` and `pgshadow import` are thin mains over. Ship streams a
// file target's batch from the source straight into the target database;
// export + import go through a batch directory.

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgshadow/pgshadow/filemode"
)

func (b *bench) cliAvailable() bool { return true }

// cliRun is one timed shipping of a CLI variant; it returns the rows the
// target wrote.
type cliRun func(rec func(string, float64)) (inserted int64, err error)

// cliTarget subscribes table (already mirrored on the target) to a file
// target of its own and returns a variant that changes every row, then
// times ship.
func (b *bench) cliTarget(name, target, table string, n int, ship cliRun) (variant, error) {
	if err := b.exec(b.s, fmt.Sprintf("SELECT shadow_add_target(%s, NULL); SELECT shadow_subscribe(%[1]s, %s, initial_copy => false)",
		lit(target), lit(table))); err != nil {
		return variant{}, err
	}
	return variant{name: name, run: func(rep int, rec func(string, float64)) error {
		if err := b.changeShipped(table); err != nil {
			return err
		}
		inserted, err := ship(rec)
		if err != nil {
			return err
		}
		if inserted != int64(n) {
			return fmt.Errorf("%s wrote %d rows of %s, want %d", name, inserted, table, n)
		}
		return b.sameContent(b.s, table, b.d, table)
	}}, nil
}

// cliVariant times `pgshadow ship`: source COPY and target COPY streaming
// at once, no files.
func (b *bench) cliVariant(table string, n int) (variant, error) {
	return b.cliTarget("cli", "f3ship", table, n, func(rec func(string, float64)) (int64, error) {
		var res *filemode.ShipResult
		err := b.recTimed(rec, "ship", func() (err error) {
			if res, err = filemode.Ship(b.ctx, b.s, b.d, filemode.ShipOptions{Target: "f3ship"}); err != nil {
				return fmt.Errorf("pgshadow ship: %w", err)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if len(res.Tables) != 1 {
			return 0, fmt.Errorf("pgshadow ship applied %+v, want one table", res.Tables)
		}
		return res.Tables[0].Inserted, nil
	})
}

// filesVariant times export plus import through a batch directory, in two
// parts so the report can say where the time goes; the directory is removed
// afterwards (untimed).
func (b *bench) filesVariant(table string, n int) (variant, error) {
	dir := filepath.Join(b.tmpDir, "files")
	return b.cliTarget("files", "f3files", table, n, func(rec func(string, float64)) (int64, error) {
		var ex *filemode.ExportResult
		var im *filemode.ImportResult
		ew, ec, err := b.measure(func() (err error) {
			if ex, err = filemode.Export(b.ctx, b.s, filemode.ExportOptions{Target: "f3files", Dir: dir}); err != nil {
				return fmt.Errorf("pgshadow export: %w", err)
			}
			if ex.BatchDir == "" {
				return fmt.Errorf("pgshadow export wrote nothing, %d changed rows were pending", n)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		iw, ic, err := b.measure(func() (err error) {
			if im, err = filemode.Import(b.ctx, b.d, filemode.ImportOptions{Dir: ex.BatchDir}); err != nil {
				return fmt.Errorf("pgshadow import: %w", err)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		rec("ship", ew+iw)
		rec("ship.cpu", ec+ic)
		rec("export", ew)
		rec("import", iw)
		if len(im.Tables) != 1 {
			return 0, fmt.Errorf("pgshadow import applied %+v, want one table", im.Tables)
		}
		return im.Tables[0].Inserted, os.RemoveAll(ex.BatchDir)
	})
}
