// The CLI contender of figure 3: the filemode package that `pgshadow export`
// and `pgshadow import` are thin mains over, exporting a file target's batch
// to a directory and importing it into the target database.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgshadow/pgshadow/filemode"
)

func (b *bench) cliAvailable() bool { return true }

// cliVariant ships table (already mirrored on the target) through a file
// target of its own; each run times export plus import and removes the batch
// directory afterwards (untimed).
func (b *bench) cliVariant(table string, n int) (variant, error) {
	if err := b.exec(b.s, fmt.Sprintf("SELECT shadow_add_target('f3files', NULL); SELECT shadow_subscribe('f3files', %s, initial_copy => false)",
		lit(table))); err != nil {
		return variant{}, err
	}
	dir := filepath.Join(b.tmpDir, "files")
	return variant{name: "cli", run: func(rep int, rec func(string, float64)) error {
		if err := b.changeAll(table); err != nil {
			return err
		}
		if err := b.vacuumBoth(table, table); err != nil {
			return err
		}
		if err := b.checkpoint(b.s, b.d); err != nil {
			return err
		}
		var ex *filemode.ExportResult
		var im *filemode.ImportResult
		// timed in two parts, so the report can say where the time goes
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
			return err
		}
		iw, ic, err := b.measure(func() (err error) {
			if im, err = filemode.Import(b.ctx, b.d, filemode.ImportOptions{Dir: ex.BatchDir}); err != nil {
				return fmt.Errorf("pgshadow import: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		rec("ship", ew+iw)
		rec("ship.cpu", ec+ic)
		rec("export", ew)
		rec("import", iw)
		if len(im.Tables) != 1 || im.Tables[0].Inserted != int64(n) {
			return fmt.Errorf("pgshadow import applied %+v, want %d rows of %s", im.Tables, n, table)
		}
		if err := os.RemoveAll(ex.BatchDir); err != nil {
			return err
		}
		return b.sameContent(b.s, table, b.d, table)
	}}, nil
}
