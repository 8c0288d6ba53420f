package main

// Figure 8: async mode's lag from commit to visible on the target under
// steady load, shipped by the daemon behind `pgshadow run`.

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/pgshadow/pgshadow/daemon"
)

func (b *bench) figLag() error {
	f := b.rep.fig(8, "Async lag", map[string]any{"rate": b.sz.lagRate, "secs": b.sz.lagSecs})
	for _, c := range []struct {
		conn  string
		extra string
	}{{"s", ""}, {"d", ", arrived timestamptz NOT NULL DEFAULT clock_timestamp()"}} {
		conn := b.s
		if c.conn == "d" {
			conn = b.d
		}
		if err := b.exec(conn, "CREATE TABLE lag_t (id bigint PRIMARY KEY, written timestamptz NOT NULL"+c.extra+")"); err != nil {
			return err
		}
	}
	if err := b.exec(b.s, "SELECT shadow_add_target('f8', 'dst'); SELECT shadow_subscribe('f8', 'lag_t', initial_copy => false, mode => 'async')"); err != nil {
		return err
	}

	ctx, stopDaemon := context.WithCancel(b.ctx)
	var dwg sync.WaitGroup
	dwg.Add(1)
	go func() {
		defer dwg.Done()
		_ = daemon.Run(ctx, daemon.Config{ConnString: b.src.ConnString(benchDB), Interval: time.Minute,
			Logf: func(format string, args ...any) {}})
	}()
	defer func() {
		stopDaemon()
		dwg.Wait()
	}()

	var lags []float64
	next := int64(0)
	for rep := 0; rep < b.cfg.reps; rep++ {
		first := next
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		var mu sync.Mutex
		for w := 0; w < 2; w++ {
			conn, err := b.connect(b.src, benchDB)
			if err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second * 2 / time.Duration(b.sz.lagRate))
				defer tick.Stop()
				end := time.Now().Add(time.Duration(b.sz.lagSecs) * time.Second)
				for time.Now().Before(end) {
					<-tick.C
					mu.Lock()
					next++
					id := next
					mu.Unlock()
					if _, err := conn.Exec(b.ctx, "INSERT INTO lag_t VALUES ($1, clock_timestamp())", id); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return fmt.Errorf("fig 8 writer: %w", err)
		}
		// wait for the last rows, then take this repetition's lags
		deadline := time.Now().Add(60 * time.Second)
		for {
			n, err := b.queryInt(b.d, "SELECT count(*) FROM lag_t WHERE id > $1", first)
			if err != nil {
				return err
			}
			if n == next-first {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("fig 8: the target has %d of %d rows 60 s after the writers stopped", n, next-first)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rows, err := b.d.Query(b.ctx, "SELECT extract(epoch FROM arrived - written)::float8 FROM lag_t WHERE id > $1", first)
		if err != nil {
			return err
		}
		var rl []float64
		for rows.Next() {
			var v float64
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			rl = append(rl, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		sort.Float64s(rl)
		med := rl[len(rl)/2]
		lags = append(lags, med)
		b.logf("fig 8 rep %d/%d: %d rows, median lag %.3f s, p90 %.3f s, max %.3f s", rep+1, b.cfg.reps,
			len(rl), med, rl[len(rl)*9/10], rl[len(rl)-1])
	}
	one := make([]float64, len(lags))
	for i := range one {
		one[i] = 1
	}
	b.rep.add(f, row{what: "median lag from commit to visible on the target, async mode", unit: seconds,
		oursName: "pgshadow async", ours: lags, baseName: "goal", base: one,
		goal: atMost(1, "median <= 1 s")})
	return nil
}
