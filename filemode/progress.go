// Progress reporting and checksumming on the COPY streams: rows are counted
// as lines (COPY text escapes newlines inside values). On a terminal a
// table's progress is one line redrawn in place (a bar when the total is
// known); elsewhere (a log, cron mail) a plain line every few seconds, and
// one when the table is done, so a large table shows it is moving without
// flooding.

package filemode

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Progress says where long copies report how far they got.
type Progress struct {
	Out      io.Writer     // nil: silent
	Terminal bool          // Out is a terminal: redraw one line in place
	Every    time.Duration // between reports; 0: 200ms on a terminal, 10s otherwise
}

func (p *Progress) every() time.Duration {
	switch {
	case p.Every > 0:
		return p.Every
	case p.Terminal:
		return 200 * time.Millisecond
	}
	return 10 * time.Second
}

// Tracker reports the progress of one stream of rows toward a total.
type Tracker struct {
	p         *Progress // nil: silent
	label     string
	total     int64 // < 0: unknown
	estimated bool  // total is an estimate (a table's row count statistics)
	start     time.Time
	last      time.Time
	shown     bool // something was printed
	rows      int64
	bytes     int64
}

// Track starts reporting a stream called label; total < 0 when unknown.
func (p *Progress) Track(label string, total int64, estimated bool) *Tracker {
	now := time.Now()
	return &Tracker{p: p, label: label, total: total, estimated: estimated, start: now, last: now}
}

// Set records that rows (and bytes, 0 when not counted) have passed, and
// reports if a report is due.
func (t *Tracker) Set(rows, bytes int64) {
	t.rows, t.bytes = rows, bytes
	if t.p == nil || t.p.Out == nil {
		return
	}
	if now := time.Now(); now.Sub(t.last) >= t.p.every() {
		t.last = now
		t.report(false)
	}
}

// Finish reports the end of the stream: on a terminal it ends the redrawn
// line; elsewhere it prints a last line if the stream lasted a report
// interval (a short one stays silent).
func (t *Tracker) Finish() {
	if t.p == nil || t.p.Out == nil {
		return
	}
	if t.shown || time.Since(t.start) >= t.p.every() {
		t.report(true)
	}
}

func (t *Tracker) report(done bool) {
	secs := time.Since(t.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(t.rows) / secs
	}
	var b strings.Builder
	of := ""
	if t.total >= 0 {
		approx := ""
		if t.estimated {
			approx = "~"
		}
		pct := 100.0
		if t.total > 0 && t.rows < t.total {
			pct = 100 * float64(t.rows) / float64(t.total)
		}
		of = fmt.Sprintf(" of %s%d rows (%.1f%%)", approx, t.total, pct)
		if t.p.Terminal {
			const width = 24
			n := int(pct / 100 * width)
			fmt.Fprintf(&b, "[%s%s] ", strings.Repeat("#", n), strings.Repeat(".", width-n))
		}
	}
	if of == "" {
		of = " rows"
	}
	mb := ""
	if t.bytes > 0 {
		mb = fmt.Sprintf(", %.1f MB", float64(t.bytes)/1e6)
	}
	state := ""
	if done {
		state = fmt.Sprintf(", done in %.1fs", secs)
	}
	line := fmt.Sprintf("%s: %s%d%s, %.0f rows/s%s%s", t.label, b.String(), t.rows, of, rate, mb, state)
	if t.p.Terminal {
		// back to the line's start, erase it, redraw; a newline only at the end
		end := ""
		if done {
			end = "\n"
		}
		fmt.Fprintf(t.p.Out, "\r\x1b[K%s%s", line, end)
	} else {
		fmt.Fprintln(t.p.Out, line)
	}
	t.shown = true
}

// meter counts bytes and lines passing through it, hashes them, and reports
// progress through a Tracker.
type meter struct {
	t   *Tracker
	sum hash.Hash
}

// newMeter meters a stream that a checksum describes; total as for Track.
func newMeter(p *Progress, label string, total int64, estimated bool) *meter {
	return &meter{t: p.Track(label, total, estimated), sum: sha256.New()}
}

// newProgress is a meter that only counts and reports, for a stream no
// checksum describes (ship).
func newProgress(p *Progress, label string, total int64, estimated bool) *meter {
	m := newMeter(p, label, total, estimated)
	m.sum = nil
	return m
}

// Write counts and hashes p; it never fails, so io.TeeReader(r, m) meters
// what is read from r.
func (m *meter) Write(p []byte) (int, error) {
	if m.sum != nil {
		m.sum.Write(p)
	}
	m.t.Set(m.t.rows+int64(bytes.Count(p, []byte{'\n'})), m.t.bytes+int64(len(p)))
	return len(p), nil
}

func (m *meter) size() int64 { return m.t.bytes }

func (m *meter) finish() { m.t.Finish() }

func (m *meter) sha256() string { return hex.EncodeToString(m.sum.Sum(nil)) }

// meterWriter passes writes to w through the meter.
type meterWriter struct {
	w io.Writer
	m *meter
}

func (mw meterWriter) Write(p []byte) (int, error) {
	n, err := mw.w.Write(p)
	mw.m.Write(p[:n])
	return n, err
}
