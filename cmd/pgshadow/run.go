// The `run` subcommand: the async-mode daemon. It ships every async
// subscription of one database shortly after commit (see package daemon),
// until SIGINT or SIGTERM.

package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/pgshadow/pgshadow/daemon"
)

// daemonCommand declares run's flags and returns its body.
func daemonCommand(fs *flagSet) func(context.Context) error {
	dsn := fs.String("d", "", "connection string (DSN or URL) of the source database; empty: the PG* environment variables")
	target := fs.String("target", "", "ship to this target only (default: every target)")
	interval := fs.Duration("interval", 5*time.Second, "longest wait between runs when no NOTIFY arrives")
	runTimeout := fs.Duration("timeout", 30*time.Minute, "longest one run (CALL shadow_run) may take before it is cancelled and the connection opened again")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. :9187), read from shadow_status at each scrape")
	return func(ctx context.Context) error {
		if *interval <= 0 {
			return fmt.Errorf("-interval must be positive, got %s", *interval)
		}
		logger := log.New(os.Stderr, "pgshadow run: ", log.LstdFlags|log.Lmsgprefix)
		if *metricsAddr != "" {
			stop, err := serveMetrics(*metricsAddr, *dsn, *target, logger)
			if err != nil {
				return err
			}
			defer stop()
		}
		logger.Printf("started (target %s, interval %s)", orAll(*target), *interval)
		err := daemon.Run(ctx, daemon.Config{
			ConnString: *dsn,
			Target:     *target,
			Interval:   *interval,
			RunTimeout: *runTimeout,
			Logf:       logger.Printf,
		})
		if err == nil {
			logger.Printf("stopped")
		}
		return err
	}
}

func orAll(target string) string {
	if target == "" {
		return "all"
	}
	return target
}

// serveMetrics listens on addr and serves daemon.Metrics at /metrics until
// the returned stop is called.
func serveMetrics(addr, dsn, target string, logger *log.Logger) (func(), error) {
	m, err := daemon.NewMetrics(dsn, target, logger.Printf)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Printf("metrics: %v", err)
		}
	}()
	logger.Printf("metrics at http://%s/metrics", ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		m.Close()
	}, nil
}
