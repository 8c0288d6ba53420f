package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	quick := flag.Bool("quick", false, "smaller sizes and shorter runs (under 3 minutes), for checking a change")
	out := flag.String("out", "BENCHMARKS.md", "where to write the report (empty: do not write)")
	only := flag.String("only", "", "comma-separated figure numbers to run (default: all)")
	reps := flag.Int("reps", 3, "repetitions per measurement (at least 3)")
	flag.Parse()
	if *reps < 3 {
		fmt.Fprintln(os.Stderr, "bench: -reps must be at least 3 (figures are medians)")
		os.Exit(2)
	}
	want, err := parseOnly(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config{quick: *quick, out: *out, only: want, reps: *reps}); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

type config struct {
	quick bool
	out   string
	only  map[int]bool // nil: all figures
	reps  int
}

func (c config) wants(fig int) bool { return c.only == nil || c.only[fig] }

func parseOnly(s string) (map[int]bool, error) {
	if s == "" {
		return nil, nil
	}
	m := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 9 {
			return nil, fmt.Errorf("-only: %q is not a figure number 1..9", f)
		}
		m[n] = true
	}
	return m, nil
}

func run(ctx context.Context, cfg config) error {
	start := time.Now()
	b, err := setup(ctx, cfg)
	if b != nil {
		defer b.close()
	}
	if err != nil {
		return err
	}

	// Figures 1, 2 and 5 share runs (mimeo's capture is measured in the same
	// interleaved loops as pgshadow's), as do 3 and 5 (shipping).
	steps := []struct {
		figs []int
		run  func() error
	}{
		{[]int{1, 5}, b.figOLTP},
		{[]int{2, 5}, b.figBulk},
		{[]int{3, 5}, b.figShip},
		{[]int{4}, b.figLogical},
		{[]int{6}, b.figScale},
		{[]int{7}, b.figBloat},
		{[]int{8}, b.figLag},
		{[]int{9}, b.figTPCB},
	}
	for _, s := range steps {
		wanted := false
		for _, f := range s.figs {
			wanted = wanted || cfg.wants(f)
		}
		if !wanted {
			continue
		}
		b.rep.loads = append(b.rep.loads, loadavg())
		stepStart := time.Now()
		if err := s.run(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// the step's first figure is the one it exists for (5 shares steps)
		if fig, ok := b.rep.figures[s.figs[0]]; ok {
			fig.elapsed = time.Since(stepStart)
		}
	}
	b.rep.loads = append(b.rep.loads, loadavg())
	b.rep.elapsed = time.Since(start)
	b.rep.printSummary(os.Stdout)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(b.rep.markdown()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cfg.out, err)
		}
		b.logf("wrote %s (%s in all)", cfg.out, time.Since(start).Round(time.Second))
	}
	return nil
}
