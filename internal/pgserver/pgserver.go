package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// AdminUser and AdminPassword are the superuser every server is created with.
// The password is fixed because these servers only ever listen on 127.0.0.1
// and live for one test run.
const (
	AdminUser     = "pgshadow_admin"
	AdminPassword = "pgshadow_admin_pw"
)

// Options say what kind of server to start.
type Options struct {
	// Name identifies the server in directory names, container names and errors.
	Name string
	// BinDir holds initdb, pg_ctl and postgres. Empty means discover it:
	// $PG_CONFIG --bindir, `pg_config --bindir` on PATH, the directory of
	// initdb on PATH, else the newest /usr/lib/postgresql/*/bin.
	BinDir string
	// Settings are extra postgresql.conf settings (e.g. wal_level=logical),
	// applied on top of the harness defaults at start.
	Settings map[string]string
	// BaseDir is the parent of the server's private directory; empty means
	// the system temp dir. The private directory is removed by Stop.
	BaseDir string
	// StandbyOf, when set, makes the server a streaming physical standby of
	// that (local) server, from a pg_basebackup instead of initdb; Promote
	// turns it into a primary.
	StandbyOf *Server
	// Env is extra environment for the server's programs (local servers
	// only), e.g. LOCPATH for a locale built by the test.
	Env []string
}

// Server is one running (or killed) PostgreSQL server.
type Server struct {
	Name string
	Host string
	Port int
	// User and Password are a superuser that logs in with scram over TCP.
	User     string
	Password string
	// BaseDir is the server's private directory (contains DataDir); Stop
	// removes it. Empty for the container backend, as are DataDir,
	// SocketDir and LogFile.
	BaseDir   string
	DataDir   string
	SocketDir string
	LogFile   string

	mu      sync.Mutex
	backend backend
}

// backend is what differs between a local initdb/pg_ctl server and a
// container. Server serializes calls with its mutex.
type backend interface {
	stop() error
	kill() error
	restart(ctx context.Context) error
	promote(ctx context.Context) error
	applySettings(settings map[string]string) error
	pause(stop bool) error
	logTail(n int) string
}

// Start creates and starts a fresh server. On failure the error contains the
// tail of the server log.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Name == "" {
		o.Name = "pg"
	}
	if err := checkSettings(o.Settings); err != nil {
		return nil, fmt.Errorf("pgserver %s: %w", o.Name, err)
	}
	s := &Server{Name: o.Name, Host: "127.0.0.1", User: AdminUser, Password: AdminPassword}
	var err error
	if image := os.Getenv("PGSHADOW_TEST_IMAGE"); image != "" {
		if o.StandbyOf != nil {
			return nil, fmt.Errorf("pgserver %s: standbys are not supported with containers", o.Name)
		}
		err = startContainer(ctx, s, o, image)
	} else {
		err = startLocal(ctx, s, o)
	}
	if err != nil {
		return nil, fmt.Errorf("pgserver %s: %w", o.Name, err)
	}
	return s, nil
}

// ConnString is a libpq key/value DSN for the superuser on database db.
func (s *Server) ConnString(db string) string {
	return s.ConnStringAs(db, s.User, s.Password)
}

// ConnStringAs is a libpq key/value DSN for user on database db.
func (s *Server) ConnStringAs(db, user, password string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable",
		s.Host, s.Port, dsnQuote(user), dsnQuote(password), dsnQuote(db))
}

// Stop shuts the server down and removes its files. Calling it again is a
// no-op.
func (s *Server) Stop() error {
	return s.locked("stop", s.backend.stop)
}

// Kill stops the server abruptly (an immediate shutdown, so the next start
// runs crash recovery) and keeps its data for Restart.
func (s *Server) Kill() error {
	return s.locked("kill", s.backend.kill)
}

// Restart starts the server again on the same port with the same data. A
// server that is still running is shut down (fast) first.
func (s *Server) Restart(ctx context.Context) error {
	return s.locked("restart", func() error { return s.backend.restart(ctx) })
}

// Promote ends recovery of a standby (Options.StandbyOf) and waits until it
// accepts writes.
func (s *Server) Promote(ctx context.Context) error {
	return s.locked("promote", func() error { return s.backend.promote(ctx) })
}

// Pause stops every process of the server (SIGSTOP; a paused container)
// without closing a socket: the kernel still accepts connections and data, and
// nothing answers, like a hung server or a half-open link. Resume continues it.
func (s *Server) Pause() error {
	return s.locked("pause", func() error { return s.backend.pause(true) })
}

// Resume continues a server stopped by Pause.
func (s *Server) Resume() error {
	return s.locked("resume", func() error { return s.backend.pause(false) })
}

// Reload merges settings into the server's configuration and restarts it if
// it is running, so that settings needing a restart (wal_level) take effect
// too. An empty value removes a setting given earlier.
func (s *Server) Reload(settings map[string]string) error {
	if err := checkSettings(settings); err != nil {
		return fmt.Errorf("pgserver %s: %w", s.Name, err)
	}
	return s.locked("reload", func() error { return s.backend.applySettings(settings) })
}

// locked runs a backend operation under the server's mutex, so that e.g. a
// signal-triggered Stop cannot interleave with a test's Restart.
func (s *Server) locked(op string, f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := f(); err != nil {
		return fmt.Errorf("pgserver %s: %s: %w", s.Name, op, err)
	}
	return nil
}

// LogTail returns the last n lines of the server log.
func (s *Server) LogTail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backend.logTail(n)
}

// CreateRole creates a login role with a password (scram, like every TCP
// login on these servers). Extra attributes (e.g. "SUPERUSER",
// "REPLICATION") are appended verbatim.
func (s *Server) CreateRole(ctx context.Context, name, password string, attrs ...string) error {
	return s.adminExec(ctx, strings.Join(attrs, " "), "CREATE ROLE %I LOGIN PASSWORD %L", name, password)
}

// SetPassword changes a role's password.
func (s *Server) SetPassword(ctx context.Context, role, password string) error {
	return s.adminExec(ctx, "", "ALTER ROLE %I PASSWORD %L", role, password)
}

// adminExec builds a statement with the server's format() (so names and
// values are quoted by PostgreSQL itself), appends suffix and runs it as the
// superuser on database postgres.
func (s *Server) adminExec(ctx context.Context, suffix, format string, args ...string) error {
	conn, err := pgx.Connect(ctx, s.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("pgserver %s: connect: %w", s.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	fargs := []any{format}
	placeholders := []string{"$1::text"}
	for i, a := range args {
		fargs = append(fargs, a)
		placeholders = append(placeholders, "$"+strconv.Itoa(i+2)+"::text")
	}
	var stmt string
	if err := conn.QueryRow(ctx, "SELECT format("+strings.Join(placeholders, ", ")+")", fargs...).Scan(&stmt); err != nil {
		return fmt.Errorf("pgserver %s: format %q: %w", s.Name, format, err)
	}
	stmt = strings.TrimSpace(stmt + " " + suffix)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("pgserver %s: %s: %w", s.Name, stmt, err)
	}
	return nil
}

// defaultSettings trade durability for speed (these servers are disposable)
// and leave room for many concurrent test connections.
func defaultSettings() map[string]string {
	return map[string]string{
		"listen_addresses":    "127.0.0.1",
		"max_connections":     "200",
		"shared_buffers":      "128MB",
		"fsync":               "off",
		"full_page_writes":    "off",
		"password_encryption": "scram-sha-256",
		"log_line_prefix":     "%m [%p] %q%u@%d ",
	}
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

func checkSettings(settings map[string]string) error {
	for k := range settings {
		if !settingName.MatchString(k) {
			return fmt.Errorf("invalid setting name %q", k)
		}
	}
	return nil
}

// mergeSettings applies upd onto dst; an empty value deletes the key.
func mergeSettings(dst, upd map[string]string) {
	for k, v := range upd {
		if v == "" {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}

// dsnQuote quotes a libpq key/value DSN value when it needs it.
func dsnQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// may take it before the server binds it; callers retry on "address in use".
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var errStopped = errors.New("server was stopped and its files removed")

// tailLines returns the last n lines of text.
func tailLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
