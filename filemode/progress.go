// Progress reporting and checksumming on the COPY streams: rows are counted
// as lines (COPY text escapes newlines inside values), at most one progress
// line per second so a large table shows it is moving without flooding.

package filemode

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"time"
)

// meter counts bytes and lines passing through it, hashes them, and prints
// progress to out (if not nil) at most once per interval.
type meter struct {
	out      io.Writer
	label    string
	interval time.Duration
	start    time.Time
	last     time.Time
	rows     int64
	bytes    int64
	sum      hash.Hash
}

func newMeter(out io.Writer, label string) *meter {
	now := time.Now()
	return &meter{out: out, label: label, interval: time.Second, start: now, last: now, sum: sha256.New()}
}

// newProgress is a meter that only counts and reports, for a stream no
// checksum describes (ship).
func newProgress(out io.Writer, label string) *meter {
	m := newMeter(out, label)
	m.sum = nil
	return m
}

func (m *meter) count(p []byte) {
	m.rows += int64(bytes.Count(p, []byte{'\n'}))
	m.bytes += int64(len(p))
	if m.sum != nil {
		m.sum.Write(p)
	}
	if m.out == nil {
		return
	}
	if now := time.Now(); now.Sub(m.last) >= m.interval {
		m.last = now
		secs := now.Sub(m.start).Seconds()
		fmt.Fprintf(m.out, "%s: %d rows, %.0f rows/s, %.1f MB\n", m.label, m.rows, float64(m.rows)/secs, float64(m.bytes)/1e6)
	}
}

func (m *meter) sha256() string { return hex.EncodeToString(m.sum.Sum(nil)) }

// meterWriter passes writes to w through the meter.
type meterWriter struct {
	w io.Writer
	m *meter
}

func (mw meterWriter) Write(p []byte) (int, error) {
	n, err := mw.w.Write(p)
	mw.m.count(p[:n])
	return n, err
}

// meterReader passes reads from r through the meter.
type meterReader struct {
	r io.Reader
	m *meter
}

func (mr meterReader) Read(p []byte) (int, error) {
	n, err := mr.r.Read(p)
	mr.m.count(p[:n])
	return n, err
}
