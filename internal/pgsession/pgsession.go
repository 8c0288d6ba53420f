package pgsession

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
)

// ConnectTimeout bounds a connection attempt (TCP, TLS and authentication)
// when the connection string sets no connect_timeout: a server that accepts
// TCP but never answers (stopped, or behind a half-open link) would otherwise
// hold the command for ever.
const ConnectTimeout = 10 * time.Second

// SearchPath is the search_path of every session: built-in objects and the
// session's own temporary ones only.
const SearchPath = "pg_catalog, pg_temp"

// keepAlive detects a peer that vanished (host down, link cut) on an idle or
// waiting connection within about half a minute.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// CancelGrace is how long a cancelled statement may take to end after the
// server was asked to cancel it, before the client stops waiting for it.
const CancelGrace = 5 * time.Second

// Configure applies the defaults above to a parsed configuration. A context
// that ends during a statement ends the wait at once (pgx's default), also
// on a server that no longer answers.
func Configure(cfg *pgx.ConnConfig) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
	cfg.RuntimeParams["search_path"] = SearchPath
	d := &net.Dialer{KeepAliveConfig: keepAlive}
	cfg.DialFunc = d.DialContext
}

// Connect parses a connection string (libpq syntax or URL; empty means the
// PG* environment variables), applies Configure and connects.
func Connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	Configure(cfg)
	return pgx.ConnectConfig(ctx, cfg)
}

// apiSchemaSQL finds the schema of the public API: the extension's schema,
// or, for a migrations install (no extension), the schema whose
// shadow_export belongs to the owner of schema pgshadow (an outsider's
// function of that name has another owner).
const apiSchemaSQL = `
SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pgshadow'
UNION
SELECT n.nspname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proname = 'shadow_export'
   AND p.proowner = (SELECT o.nspowner FROM pg_catalog.pg_namespace o WHERE o.nspname = 'pgshadow')
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname = 'pgshadow')`

// APISchema returns the schema of pgshadow's public functions and views,
// quoted as an identifier, ready to prefix a name.
func APISchema(ctx context.Context, conn *pgx.Conn) (string, error) {
	rows, err := conn.Query(ctx, apiSchemaSQL)
	if err != nil {
		return "", fmt.Errorf("find the pgshadow schema: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("find the pgshadow schema: %w", err)
	}
	switch len(names) {
	case 0:
		return "", errors.New("pgshadow is not installed in this database (no extension pgshadow, no pgshadow functions)")
	case 1:
		return pgx.Identifier{names[0]}.Sanitize(), nil
	default:
		return "", fmt.Errorf("pgshadow's functions are in several schemas (%v): install it once per database", names)
	}
}
