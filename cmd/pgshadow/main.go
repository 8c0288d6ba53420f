package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"
)

// command is a subcommand: its line in pgshadow help, and what runs it on
// the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// declareFunc adds a subcommand's flags to fs and returns its body, which
// runs once they are parsed.
type declareFunc func(fs *flagSet) func(ctx context.Context) error

// commands are pgshadow's subcommands, by name; the summaries are what
// pgshadow help lists.
var commands = map[string]command{
	"compare": {"compare a file target's tables with a target database, by key range (exit code 2: they differ)",
		bounded("compare", "pgshadow compare [-d CONNSTR] -target NAME -dest CONNSTR [-table T] [-chunk N] [-timeout D]", compareCommand)},
	"demo": {"replicate a sample table between two throwaway local servers, by push and by files, and verify", runDemo},
	"export": {"ship a push target's pending changes (shadow_export), or write a file target's as a batch directory",
		bounded("export", "pgshadow export [-d CONNSTR] -target NAME [-dir DIR] [-timeout D] [-quiet | -progress D]", exportCommand)},
	"gen":      {"print the SQL that tracking and subscribing a table would run", runGen},
	"generate": {"assemble sql/ into pgshadow--<version>.sql, upgrade scripts and migrations/", runGenerate},
	"import": {"apply exported batch directories to a target database",
		bounded("import", "pgshadow import [-d CONNSTR] {-dir BATCHDIR | -inbox DIR [-prune]} [-timeout D] [-quiet | -progress D]", importCommand)},
	"migrate": {"install or upgrade pgshadow as plain SQL with golang-migrate (up, down, version, force)", runMigrate},
	"run": {"ship async subscriptions soon after commit (daemon; wakes on NOTIFY pgshadow)",
		flagsOnly("run", "pgshadow run -d CONNSTR [-target NAME] [-interval 5s] [-timeout 30m] [-metrics ADDR]", daemonCommand)},
	"ship": {"stream the pending changes of a file target into a target database, without files",
		bounded("ship", "pgshadow ship [-source CONNSTR] -dest CONNSTR -target NAME [-timeout D] [-quiet | -progress D]", shipCommand)},
	"status": {"show what is pending per target and table (the shadow_status view)", runStatus},
}

// flagsOnly is the run of a subcommand that takes flags and no positional
// arguments; usage is the synopsis -h shows.
func flagsOnly(name, usage string, declare declareFunc) func(ctx context.Context, args []string) error {
	return func(ctx context.Context, args []string) error {
		fs := newFlagSet(name, usage)
		body := declare(fs)
		if err := fs.parseFlagsOnly(args); err != nil {
			return err
		}
		return body(ctx)
	}
}

// bounded is flagsOnly for the commands that move or compare data: it adds
// -timeout (default: none), and the body runs under ctx bounded by it.
func bounded(name, usage string, declare declareFunc) func(ctx context.Context, args []string) error {
	return flagsOnly(name, usage, func(fs *flagSet) func(ctx context.Context) error {
		fs.withTimeout()
		body := declare(fs)
		return func(ctx context.Context) error {
			ctx, cancel := withTimeout(ctx, *fs.timeout)
			defer cancel()
			return body(ctx)
		}
	})
}

// flagSet is a flag.FlagSet that reports problems as errors instead of
// printing them, so every failure ends as one line on stderr; only -h prints.
type flagSet struct {
	*flag.FlagSet
	usage   string
	timeout *time.Duration // -timeout, when the command takes it (withTimeout)
}

// newFlagSet returns the flag set for a subcommand; usage is the synopsis
// -h shows, e.g. "pgshadow generate [-root DIR] [-check]".
func newFlagSet(name, usage string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, usage: usage}
}

// Parse parses args; on -h it prints the usage and returns flag.ErrHelp,
// which ends the program successfully.
func (f *flagSet) Parse(args []string) error {
	err := f.FlagSet.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Printf("usage: %s\n", f.usage)
		f.SetOutput(os.Stdout)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
	return err
}

// withTimeout adds -timeout (default: none) to f, for bounded.
func (f *flagSet) withTimeout() *flagSet {
	f.timeout = f.Duration("timeout", 0, timeoutHelp)
	return f
}

// parseFlagsOnly parses args and refuses positional arguments.
func (f *flagSet) parseFlagsOnly(args []string) error {
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.Arg(0))
	}
	return nil
}

// fileTargetFlag is -target of the commands that work on a file target.
func fileTargetFlag(f *flagSet) *string {
	return f.String("target", "", "file target, created with shadow_add_target(NAME, NULL)")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(os.Stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "pgshadow: unknown command %q (run pgshadow help)\n", args[0])
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, args[1:])
	var code exitCode
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &code):
		return int(code) // the command printed its own verdict (status -check)
	default:
		fmt.Fprintf(os.Stderr, "pgshadow %s: %v\n", args[0], err)
		return 1
	}
}

func printUsage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: pgshadow <command> [flags] [args]  (pgshadow <command> -h for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
}

// exitCode ends the program with that code and prints nothing more.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }
