// The local backend: initdb + pg_ctl from the machine's PostgreSQL
// installation, one private directory per server under the temp dir. When run
// as root, every PostgreSQL program runs as an unprivileged OS user because
// the server refuses to run as root.

package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// confInclude is written by the harness on every (re)start; postgresql.conf
// includes it last so its values win over initdb's, while ALTER SYSTEM (read
// later still, from postgresql.auto.conf) keeps working in tests.
const confInclude = "pgshadow_test.conf"

// maxSocketPath keeps "<dir>/.s.PGSQL.NNNNN" under the ~107 bytes a unix
// socket path may have.
const maxSocketPath = 90

type local struct {
	s         *Server
	bin       string
	cred      *syscall.Credential
	extraDirs []string // removed with BaseDir (a socket dir outside it)
	settings  map[string]string
	env       []string
	removed   bool
}

func startLocal(ctx context.Context, s *Server, o Options) (err error) {
	bin := o.BinDir
	if bin == "" {
		if bin, err = findBinDir(); err != nil {
			return err
		}
	}
	cred, err := osCredential()
	if err != nil {
		return err
	}
	parent := o.BaseDir
	if parent == "" {
		parent = os.TempDir()
	}
	// The "pgshadow-test" prefix ends up in the postmaster's -D argument, so
	// an orphan cleanup can find leftover servers by command line; the
	// optional PGSHADOW_TEST_TAG (set by .ci/run) lets it find only its own,
	// not a benchmark's or another checkout's running on the same machine.
	tag := ""
	if t := os.Getenv("PGSHADOW_TEST_TAG"); t != "" {
		tag = safeName(t) + "-"
	}
	base, err := os.MkdirTemp(parent, "pgshadow-test-"+tag+safeName(s.Name)+"-")
	if err != nil {
		return fmt.Errorf("create base dir: %w", err)
	}
	l := &local{s: s, bin: bin, cred: cred, settings: defaultSettings(), env: o.Env}
	mergeSettings(l.settings, o.Settings)
	s.backend = l
	s.BaseDir = base
	s.DataDir = filepath.Join(base, "data")
	s.LogFile = filepath.Join(base, "postgres.log")
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n--- server log (%s) ---\n%s", err, s.LogFile, l.logTail(30))
			_ = l.stop()
		}
	}()

	if err := os.Chmod(base, 0o755); err != nil {
		return err
	}
	if err := checkTraversable(filepath.Dir(base), cred); err != nil {
		return err
	}
	if err := l.chown(base); err != nil {
		return err
	}
	s.SocketDir = filepath.Join(base, "sock")
	if len(s.SocketDir) > maxSocketPath {
		if s.SocketDir, err = os.MkdirTemp("/tmp", "pgshadow-test-sock-"); err != nil {
			return fmt.Errorf("create socket dir: %w", err)
		}
		l.extraDirs = append(l.extraDirs, s.SocketDir)
	} else if err := os.Mkdir(s.SocketDir, 0o755); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	if err := l.chown(s.SocketDir); err != nil {
		return err
	}

	if o.StandbyOf != nil {
		// the copy's postgresql.conf already includes the managed settings
		// file, which start rewrites with this server's port
		if err := l.basebackup(ctx, o.StandbyOf); err != nil {
			return err
		}
		return l.startOnFreePort(ctx)
	}
	if err := l.initdb(ctx); err != nil {
		return err
	}
	conf, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(conf, "\n# settings managed by the pgshadow test harness\ninclude '%s'\n", confInclude)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("edit postgresql.conf: %w", err)
	}
	return l.startOnFreePort(ctx)
}

func (l *local) startOnFreePort(ctx context.Context) (err error) {
	s := l.s
	// The free port may be taken between probing and binding; a few retries
	// on fresh ports make that race harmless.
	for attempt := 1; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return err
		}
		logStart := fileSize(s.LogFile)
		err = l.start(ctx)
		if err == nil {
			return nil
		}
		if attempt == 5 || !strings.Contains(readFrom(s.LogFile, logStart), "already in use") {
			return err
		}
	}
}

// basebackup copies primary's data directory (WAL streamed along) into a
// standby's, with standby.signal and the connection to the primary.
func (l *local) basebackup(ctx context.Context, primary *Server) error {
	_, err := l.run(ctx, "pg_basebackup", "-D", l.s.DataDir, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
		"-d", primary.ConnString("postgres"))
	return err
}

func (l *local) promote(ctx context.Context) error {
	if l.removed {
		return errStopped
	}
	_, err := l.run(ctx, "pg_ctl", "promote", "-w", "-t", "60", "-D", l.s.DataDir)
	return err
}

func (l *local) initdb(ctx context.Context) error {
	pwfile := filepath.Join(l.s.BaseDir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(l.s.Password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := l.chown(pwfile); err != nil {
		return err
	}
	_, err := l.run(ctx, "initdb", "-D", l.s.DataDir, "-U", l.s.User, "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	return err
}

// start writes the managed settings and starts the postmaster on s.Port,
// waiting until it accepts connections.
func (l *local) start(ctx context.Context) error {
	if err := l.writeConf(); err != nil {
		return err
	}
	_, err := l.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", l.s.DataDir, "-l", l.s.LogFile)
	if err != nil {
		// pg_ctl may give up waiting while the postmaster lives on.
		l.shutdown("immediate")
		return err
	}
	return nil
}

func (l *local) writeConf() error {
	settings := map[string]string{}
	mergeSettings(settings, l.settings)
	settings["port"] = strconv.Itoa(l.s.Port)
	settings["unix_socket_directories"] = l.s.SocketDir
	var b strings.Builder
	b.WriteString("# Written by the pgshadow test harness on every start; edits are lost.\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(settings[k], "'", "''"))
	}
	path := filepath.Join(l.s.DataDir, confInclude)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return l.chown(path)
}

func (l *local) running() bool {
	_, err := os.Stat(filepath.Join(l.s.DataDir, "postmaster.pid"))
	return err == nil
}

// shutdown stops a running postmaster with the given pg_ctl mode; a fast
// shutdown that does not finish in time is escalated to immediate.
func (l *local) shutdown(mode string) error {
	if !l.running() {
		return nil
	}
	ctx := context.Background()
	_, err := l.run(ctx, "pg_ctl", "stop", "-w", "-t", "30", "-m", mode, "-D", l.s.DataDir)
	if err != nil && mode != "immediate" {
		_, err2 := l.run(ctx, "pg_ctl", "stop", "-w", "-t", "30", "-m", "immediate", "-D", l.s.DataDir)
		if err2 == nil {
			return nil
		}
		return errors.Join(err, err2)
	}
	return err
}

func (l *local) stop() error {
	if l.removed {
		return nil
	}
	err := l.shutdown("fast")
	// Remove the files even if the shutdown failed: a leftover server without
	// its data directory dies soon, a leftover directory stays forever.
	l.removed = true
	for _, dir := range append([]string{l.s.BaseDir}, l.extraDirs...) {
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

func (l *local) kill() error {
	if l.removed {
		return errStopped
	}
	return l.shutdown("immediate")
}

// pause signals the postmaster and every backend, found as the processes
// whose parent is the postmaster (they need not share its process group).
func (l *local) pause(stop bool) error {
	if l.removed {
		return errStopped
	}
	data, err := os.ReadFile(filepath.Join(l.s.DataDir, "postmaster.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		return fmt.Errorf("postmaster.pid: %w", err)
	}
	sig := syscall.SIGSTOP
	if !stop {
		sig = syscall.SIGCONT
	}
	pids := []int{pid}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			pids = append(pids, child)
		}
	}
	if stop { // the postmaster first, so it forks nothing new meanwhile
		for _, p := range pids {
			_ = syscall.Kill(p, sig)
		}
		return nil
	}
	for i := len(pids) - 1; i >= 0; i-- {
		_ = syscall.Kill(pids[i], sig)
	}
	return nil
}

func (l *local) restart(ctx context.Context) error {
	if l.removed {
		return errStopped
	}
	if err := l.shutdown("fast"); err != nil {
		return err
	}
	if err := l.start(ctx); err != nil {
		return fmt.Errorf("%w\n--- server log (%s) ---\n%s", err, l.s.LogFile, l.logTail(30))
	}
	return nil
}

func (l *local) applySettings(settings map[string]string) error {
	if l.removed {
		return errStopped
	}
	mergeSettings(l.settings, settings)
	if !l.running() {
		return l.writeConf()
	}
	return l.restart(context.Background())
}

func (l *local) logTail(n int) string {
	data, err := os.ReadFile(l.s.LogFile)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	return tailLines(string(data), n)
}

// run executes a PostgreSQL program from the bin dir as the server's OS user
// and returns its combined output; a failure's error includes that output.
func (l *local) run(ctx context.Context, prog string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(l.bin, prog), args...)
	cmd.Dir = l.s.BaseDir
	cmd.Env = append(cleanEnv(), l.env...)
	cmd.WaitDelay = 5 * time.Second
	if l.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: l.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", prog, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// checkTraversable fails early, with a clear message, when the unprivileged
// OS user cannot reach dir (otherwise initdb fails with a bare "permission
// denied" from chdir).
func checkTraversable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		switch {
		case !ok, perm&0o001 != 0:
		case st.Uid == cred.Uid && perm&0o100 != 0:
		case st.Gid == cred.Gid && perm&0o010 != 0:
		default:
			return fmt.Errorf("directory %s (mode %v) is not traversable by uid %d, which runs PostgreSQL; use a BaseDir whose parents are world-searchable", d, perm, cred.Uid)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (l *local) chown(path string) error {
	if l.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(l.cred.Uid), int(l.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// cleanEnv drops PG* variables so that a developer's PGDATA, PGPORT or
// PGHOST cannot redirect initdb or pg_ctl.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// osCredential picks the unprivileged OS user to run PostgreSQL as when we
// are root: $PGSHADOW_TEST_OSUSER, else postgres, else nobody.
func osCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	names := []string{"postgres", "nobody"}
	if name := os.Getenv("PGSHADOW_TEST_OSUSER"); name != "" {
		names = []string{name}
	}
	for _, name := range names {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("OS user %s has non-numeric uid/gid %s/%s", name, u.Uid, u.Gid)
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and none of the OS users %v exists to run PostgreSQL as (set PGSHADOW_TEST_OSUSER)", names)
}

// findBinDir locates initdb and pg_ctl: $PGSHADOW_BINDIR (the private
// installation `make test` prepares with tests/pgroot), $PG_CONFIG, pg_config
// on PATH, initdb on PATH, then the newest Debian-style /usr/lib/postgresql/*/bin.
func findBinDir() (string, error) {
	var tried []string
	if dir := os.Getenv("PGSHADOW_BINDIR"); dir != "" {
		if hasServerBinaries(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("PGSHADOW_BINDIR=%s holds no initdb, pg_ctl and postgres", dir)
	}
	pgConfigs := []string{os.Getenv("PG_CONFIG")}
	if p, err := exec.LookPath("pg_config"); err == nil {
		pgConfigs = append(pgConfigs, p)
	}
	for _, pc := range pgConfigs {
		if pc == "" {
			continue
		}
		out, err := exec.Command(pc, "--bindir").Output()
		dir := strings.TrimSpace(string(out))
		if err == nil && hasServerBinaries(dir) {
			return dir, nil
		}
		tried = append(tried, pc+" --bindir")
	}
	if p, err := exec.LookPath("initdb"); err == nil && hasServerBinaries(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	tried = append(tried, "initdb on PATH")
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, dir := range dirs {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	tried = append(tried, "/usr/lib/postgresql/*/bin")
	return "", fmt.Errorf("no PostgreSQL server binaries found (tried %s); set Options.BinDir or PG_CONFIG", strings.Join(tried, ", "))
}

func hasServerBinaries(dir string) bool {
	for _, prog := range []string{"initdb", "pg_ctl", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, prog)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// pgMajor extracts the version from /usr/lib/postgresql/<major>/bin.
func pgMajor(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func safeName(name string) string {
	name = unsafeName.ReplaceAllString(name, "_")
	if len(name) > 20 {
		name = name[:20]
	}
	return name
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the file's contents from offset on.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	data, _ := io.ReadAll(f)
	return string(data)
}
