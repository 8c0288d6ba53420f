package filemode

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// On a terminal a stream's progress is one line redrawn in place, with a bar
// when the total is known, ended by a newline when the stream is done;
// elsewhere every report is a line of its own.
func TestProgressRendering(t *testing.T) {
	var term bytes.Buffer
	tr := (&Progress{Out: &term, Terminal: true, Every: 1}).Track("import public.t rows", 1000, false)
	tr.Set(250, 0)
	tr.Set(1000, 2e6)
	tr.Finish()
	out := term.String()
	if strings.Count(out, "\r\x1b[K") != 3 || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("terminal output is not one line redrawn three times, ended once: %q", out)
	}
	for _, want := range []string{
		"import public.t rows: [######..................] 250 of 1000 rows (25.0%), ",
		"import public.t rows: [########################] 1000 of 1000 rows (100.0%), ",
		" rows/s, 2.0 MB, done in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q: %q", want, out)
		}
	}

	var log bytes.Buffer
	tr = (&Progress{Out: &log, Every: 1}).Track("export public.t rows", 4000, true)
	tr.Set(1000, 0)
	tr.Finish()
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	if len(lines) != 2 || strings.ContainsAny(log.String(), "\r\x1b[") {
		t.Fatalf("log output is not two plain lines: %q", log.String())
	}
	if !regexp.MustCompile(`^export public\.t rows: 1000 of ~4000 rows \(25\.0%\), \d+ rows/s$`).MatchString(lines[0]) {
		t.Errorf("log line %q", lines[0])
	}
	if !strings.Contains(lines[1], ", done in ") {
		t.Errorf("last log line %q does not say done", lines[1])
	}

	var none bytes.Buffer
	tr = (&Progress{Out: &none}).Track("ship public.t rows", -1, false)
	tr.Set(5, 0)
	tr.Finish()
	if none.Len() != 0 {
		t.Errorf("a stream shorter than the interval printed %q", none.String())
	}
	(*Progress)(nil).Track("silent", 1, false).Finish()
}
