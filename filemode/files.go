// Durable files: every file of a batch directory, and the directories
// holding it, are fsynced before the watermarks move, so a crash never
// leaves a batch the source thinks was written but the disk lost.

package filemode

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func writeMetered(path string, write func(io.Writer) error) (File, error) {
	return writeMeteredWith(path, newMeter(nil, "", -1, false), write)
}

// writeMeteredWith creates path, runs write on it through m, then flushes
// and fsyncs it.
func writeMeteredWith(path string, m *meter, write func(io.Writer) error) (File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(meterWriter{bw, m}); err != nil {
		return File{}, err
	}
	if err := bw.Flush(); err != nil {
		return File{}, err
	}
	if err := f.Sync(); err != nil {
		return File{}, fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return File{}, err
	}
	m.finish()
	return File{Name: filepath.Base(path), Size: m.size(), SHA256: m.sha256()}, nil
}

func writeFileSync(path string, data []byte) error {
	_, err := writeMetered(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	return err
}

// mkdirAllSync creates dir and its missing parents, fsyncing the parent of
// each directory it creates so the new entries survive a crash. It reports
// whether dir itself was created.
func mkdirAllSync(dir string) (created bool, err error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	// missing runs from dir up; create from the top down
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return false, err
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return false, err
		}
	}
	if fi, err := os.Stat(dir); err != nil {
		return false, err
	} else if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	return len(missing) > 0, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
