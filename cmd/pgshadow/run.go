// The `run` subcommand: the async-mode daemon. It ships every async
// subscription of one database shortly after commit (see package daemon),
// until SIGINT or SIGTERM.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/pgshadow/pgshadow/daemon"
)

func init() {
	register("run", "ship async subscriptions soon after commit (daemon; wakes on NOTIFY pgshadow)", runDaemon)
}

func runDaemon(ctx context.Context, args []string) error {
	fs := newFlagSet("run", "pgshadow run -d CONNSTR [-target NAME] [-interval 5s] [-timeout 30m]")
	dsn := fs.String("d", "", "connection string (DSN or URL) of the source database; empty: the PG* environment variables")
	target := fs.String("target", "", "ship to this target only (default: every target)")
	interval := fs.Duration("interval", 5*time.Second, "longest wait between runs when no NOTIFY arrives")
	runTimeout := fs.Duration("timeout", 30*time.Minute, "longest one run (CALL shadow_run) may take before it is cancelled and the connection opened again")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *interval <= 0 {
		return fmt.Errorf("-interval must be positive, got %s", *interval)
	}
	logger := log.New(os.Stderr, "pgshadow run: ", log.LstdFlags|log.Lmsgprefix)
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

func orAll(target string) string {
	if target == "" {
		return "all"
	}
	return target
}
