// The report: figures made of rows that each hold pgshadow's measurements,
// a named baseline's measurements from the same run, their ratio and the
// goal; printed as they come in and written as BENCHMARKS.md at the end.

package main

import (
	_ "embed"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// unit says how a quantity prints and which direction is better.
type unit struct {
	name         string // "s", "tx/s", "MB"
	higherBetter bool
	scale        float64 // printed value = raw value / scale
	digits       int
}

var (
	seconds    = unit{name: "s", scale: 1, digits: 2}
	throughput = unit{name: "tx/s", higherBetter: true, scale: 1, digits: 0}
	megabytes  = unit{name: "MB", scale: 1 << 20, digits: 2}
)

func (u unit) format(v float64) string {
	return num(v/u.scale, u.digits) + " " + u.name
}

func num(v float64, digits int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", digits, v)
}

// goal bounds ratio = median(ours) / median(base): ratio <= max, or (min > 0)
// ratio >= min.
type goal struct {
	max, min float64
	text     string
}

func atMost(max float64, text string) *goal  { return &goal{max: max, text: text} }
func atLeast(min float64, text string) *goal { return &goal{min: min, text: text} }

func (g *goal) met(ratio float64) bool {
	if math.IsNaN(ratio) {
		return false
	}
	if g.min > 0 {
		return ratio >= g.min
	}
	return ratio <= g.max
}

// row is one measured comparison.
type row struct {
	what     string
	unit     unit
	oursName string
	ours     []float64
	baseName string
	base     []float64
	// CPU seconds of the servers and the benchmark for the same runs (per
	// transaction for throughput); empty where not measured
	oursCPU, baseCPU []float64
	goal             *goal  // nil: shown for reference, no goal
	note             string // short remark printed under the table
}

func (r row) ratio() float64 {
	b := median(r.base)
	if b == 0 {
		return math.NaN()
	}
	return median(r.ours) / b
}

// cpuRatio compares the CPU spent per unit of work, oriented like ratio():
// for throughput it is base/ours, so that below 1 means pgshadow costs more.
func (r row) cpuRatio() float64 {
	if len(r.oursCPU) == 0 || len(r.baseCPU) == 0 {
		return math.NaN()
	}
	o, b := median(r.oursCPU), median(r.baseCPU)
	if r.unit.higherBetter {
		o, b = b, o
	}
	if b == 0 {
		return math.NaN()
	}
	return o / b
}

func (r row) verdict() string {
	if r.goal == nil {
		return "reference"
	}
	if r.goal.met(r.ratio()) {
		return "pass"
	}
	return "**miss**"
}

// figure is one numbered benchmark of the issue.
type figure struct {
	num     int
	title   string
	method  string // how it is measured, one paragraph
	rows    []row
	notes   []string
	blocked string // set when the figure could not be measured, with the reason
	elapsed time.Duration
}

// analysis is the hand-kept explanation of missed goals, appended to every
// report (numbers in the tables are from the run; its own are dated).
//
//go:embed analysis.md
var analysis string

type report struct {
	quick    bool
	date     time.Time
	machine  []string // "key: value" lines
	settings []string
	figures  map[int]*figure
	elapsed  time.Duration
	loads    []string // /proc/loadavg at the start of each figure and at the end
	log      io.Writer
}

// methods says how each figure is measured (methods.md): per figure a
// text/template of one paragraph, filled in with the run's sizes.
//
//go:embed methods.md
var methodsText string

var methods = parseMethods(methodsText)

// parseMethods reads methods.md: a line "## N" starts figure N, whose lines
// up to the next heading are joined with spaces into one paragraph; what
// stands before the first heading is a comment.
func parseMethods(text string) map[int]*template.Template {
	paragraphs := map[int][]string{}
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if num, ok := strings.CutPrefix(line, "## "); ok {
			var err error
			if n, err = strconv.Atoi(num); err != nil {
				panic("bench: methods.md: heading " + line + ": " + err.Error())
			}
			continue
		}
		if n > 0 && strings.TrimSpace(line) != "" {
			paragraphs[n] = append(paragraphs[n], strings.TrimSpace(line))
		}
	}
	ts := map[int]*template.Template{}
	for n, lines := range paragraphs {
		name := "methods.md figure " + strconv.Itoa(n)
		ts[n] = template.Must(template.New(name).Option("missingkey=error").Parse(strings.Join(lines, " ")))
	}
	return ts
}

// method is figure n's method paragraph filled in with vals. The paragraph
// and the figure's code are one program: a figure without a paragraph, or a
// value the paragraph names and the code does not give, is a bug, and
// panics at the figure's start.
func method(n int, vals map[string]any) string {
	t, ok := methods[n]
	if !ok {
		panic(fmt.Sprintf("bench: methods.md has no figure %d", n))
	}
	var b strings.Builder
	if err := t.Execute(&b, vals); err != nil {
		panic("bench: " + err.Error())
	}
	return b.String()
}

// fig returns figure n, creating it on first use with title and its method
// paragraph (methods.md) filled in with vals.
func (rp *report) fig(n int, title string, vals map[string]any) *figure {
	if f, ok := rp.figures[n]; ok {
		return f
	}
	f := &figure{num: n, title: title, method: method(n, vals)}
	rp.figures[n] = f
	return f
}

// add appends a row and prints it at once, so a long run shows results as
// they come.
func (rp *report) add(f *figure, r row) {
	f.rows = append(f.rows, r)
	fmt.Fprintf(rp.log, "  fig %d | %s | %s %s | %s %s | ratio %s | CPU ratio %s | %s\n",
		f.num, r.what, r.oursName, r.unit.format(median(r.ours)), r.baseName, r.unit.format(median(r.base)),
		num(r.ratio(), 3), num(r.cpuRatio(), 3), r.verdictPlain())
}

func (r row) verdictPlain() string {
	return strings.Trim(r.verdict(), "*")
}

func (rp *report) printSummary(w io.Writer) {
	fmt.Fprintf(w, "\n=== pgshadow benchmarks (%s) ===\n", rp.modeLabel())
	for _, f := range rp.sortedFigures() {
		fmt.Fprintf(w, "\n%d. %s\n", f.num, f.title)
		if f.blocked != "" {
			fmt.Fprintf(w, "   BLOCKED: %s\n", f.blocked)
		}
		for _, r := range f.rows {
			goalText := "-"
			if r.goal != nil {
				goalText = r.goal.text
			}
			fmt.Fprintf(w, "   %-52s %-9s %12s | %-22s %12s | ratio %6s | CPU ratio %6s | goal %-14s %s\n",
				r.what, r.oursName, r.unit.format(median(r.ours)), r.baseName, r.unit.format(median(r.base)),
				num(r.ratio(), 3), num(r.cpuRatio(), 3), goalText, r.verdictPlain())
		}
	}
}

func (rp *report) modeLabel() string {
	if rp.quick {
		return "QUICK mode: reduced sizes, for checking a change only"
	}
	return "full run"
}

func (rp *report) sortedFigures() []*figure {
	var fs []*figure
	for _, f := range rp.figures {
		fs = append(fs, f)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].num < fs[j].num })
	return fs
}

// cell prints a median with the individual repetitions after it.
func cell(u unit, vals []float64) string {
	if len(vals) == 0 {
		return "n/a"
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = num(v/u.scale, u.digits)
	}
	return fmt.Sprintf("**%s** (%s)", u.format(median(vals)), strings.Join(parts, ", "))
}

func (rp *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pgshadow benchmarks\n\n")
	fmt.Fprintf(&b, "Generated by `make bench` (`go run ./bench`) on %s UTC, %s, in %s.\n",
		rp.date.UTC().Format("2006-01-02 15:04"), rp.modeLabel(), rp.elapsed.Round(time.Second))
	if rp.quick {
		fmt.Fprintf(&b, "\n> **Quick run**: sizes are reduced (see each figure); the goals are stated for the full sizes.\n")
	}
	b.WriteString(`
Each cell shows the **median** and, in parentheses, every repetition. pgshadow
and its baseline run interleaved (the order rotates each repetition) on the same
servers in the same run; ratio = pgshadow's median / the baseline's median.
*CPU ratio* compares the CPU time the servers and the benchmark process spent
on the same runs (oriented like the ratio): the machine may be shared, and
other load swings wall-clock times far more than the CPU our processes burn,
so a ratio that moves while the CPU ratio holds is noise, not cost. For
throughput the CPU ratio is the baseline's CPU per transaction over
pgshadow's, so below 1 means pgshadow spends more per transaction; a wall
ratio well above the CPU ratio means the CPUs were not saturated (latency or
other load bounded the baseline), so the extra CPU was partly hidden.
The servers are throwaway local clusters started by the benchmark itself
(internal/pgserver); settings below.

`)
	b.WriteString("Run it with `make bench` (full, well under 30 minutes) or `make bench QUICK=1` " +
		"(reduced sizes, under 3 minutes, for checking a change). It needs PostgreSQL 15 with contrib " +
		"(dblink, postgres_fdw) and pgbench; figure 5 also needs mimeo " +
		"(`apt-get install -y --no-install-recommends postgresql-15-mimeo`) and is reported as blocked without it. " +
		"`go run ./bench -only 3,4` runs single figures.\n\n## Machine\n\n")
	for _, l := range rp.machine {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	if len(rp.loads) > 0 {
		fmt.Fprintf(&b, "- load average (1, 5, 15 min) at the start of each step and at the end: %s\n", strings.Join(rp.loads, "; "))
	}
	b.WriteString("\n## Server settings\n\n")
	for _, l := range rp.settings {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	b.WriteString("\n## Summary\n\n| # | figure | measurement | ratio | CPU ratio | goal | result |\n|---|---|---|---|---|---|---|\n")
	for _, f := range rp.sortedFigures() {
		if f.blocked != "" {
			fmt.Fprintf(&b, "| %d | %s | — | — | — | — | blocked |\n", f.num, f.title)
		}
		for _, r := range f.rows {
			if r.goal == nil {
				continue
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", f.num, f.title, r.what, num(r.ratio(), 3), num(r.cpuRatio(), 3), r.goal.text, r.verdict())
		}
	}
	for _, f := range rp.sortedFigures() {
		fmt.Fprintf(&b, "\n## %d. %s\n\n%s\n\n", f.num, f.title, f.method)
		if f.elapsed > 0 {
			fmt.Fprintf(&b, "Setup and all repetitions took %s.\n\n", f.elapsed.Round(time.Second))
		}
		if f.blocked != "" {
			fmt.Fprintf(&b, "**Blocked:** %s\n\n", f.blocked)
		}
		if len(f.rows) > 0 {
			b.WriteString("| measurement | measured | baseline | ratio | CPU ratio | goal | result |\n|---|---|---|---|---|---|---|\n")
			for _, r := range f.rows {
				goalText := "—"
				if r.goal != nil {
					goalText = r.goal.text
				}
				fmt.Fprintf(&b, "| %s | %s: %s | %s: %s | %s | %s | %s | %s |\n",
					r.what, r.oursName, cell(r.unit, r.ours), r.baseName, cell(r.unit, r.base),
					num(r.ratio(), 3), num(r.cpuRatio(), 3), goalText, r.verdict())
			}
			b.WriteString("\n")
		}
		for _, r := range f.rows {
			if r.note != "" {
				fmt.Fprintf(&b, "- %s: %s\n", r.what, r.note)
			}
		}
		for _, n := range f.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\n" + analysis)
	return b.String()
}
