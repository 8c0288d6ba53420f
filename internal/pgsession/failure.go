package pgsession

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// recordTimeout bounds recording a failure: a source that stopped answering
// must not hold the command or the daemon on top of the call that failed.
const recordTimeout = 10 * time.Second

// RecordFailure records a call that failed as a whole (shadow_export or
// CALL shadow_run raised, so its transaction rolled back and kept nothing)
// with pgshadow.record_failure, in a transaction of its own: on the
// caller's subscriptions of target ("" : every target; asyncOnly: only
// those shadow_run ships), into shadow_status.last_error, shadow_errors and
// shadow_failures. A call cancelled at its deadline leaves conn closed: then
// a fresh session is opened from cfg (nil: none). what names the call in the
// message ("pgshadow export"). It returns how many subscriptions it recorded
// the failure on.
func RecordFailure(ctx context.Context, conn *pgx.Conn, cfg *pgx.ConnConfig, target string, asyncOnly bool,
	what string, cause error) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if conn == nil || conn.IsClosed() {
		if cfg == nil {
			return 0, errors.New("record the failure: the connection is closed")
		}
		c, err := pgx.ConnectConfig(ctx, cfg.Copy())
		if err != nil {
			return 0, fmt.Errorf("record the failure: %w", err)
		}
		defer c.Close(ctx)
		conn = c
	}
	state, msg := FailureState(cause)
	var t any
	if target != "" {
		t = target
	}
	var n int
	err := conn.QueryRow(ctx, "SELECT pgshadow.record_failure($1, $2, $3, $4)",
		t, state, what+": "+msg, asyncOnly).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("record the failure: %w", err)
	}
	return n, nil
}

// FailureState returns the SQLSTATE and message of a failed call: the
// server's for an error the server raised, 57014 (query_canceled) for a
// call that ran out of time on the client, 08006 (connection_failure)
// otherwise.
func FailureState(err error) (string, string) {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		if err == error(pgErr) {
			return pgErr.Code, pgErr.Message
		}
		return pgErr.Code, err.Error() // wrapped: keeps what the caller added
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "57014", err.Error()
	default:
		return "08006", err.Error()
	}
}

// CancelOnDone returns the context to run a statement on conn under. When
// ctx ends, the server is asked to cancel the statement, so its transaction
// rolls back, its locks go and the connection stays usable (a client that
// only hung up would leave the statement running on the server); a server
// that does not end it within CancelGrace (one that stopped answering) is
// given up, and the connection with it: the returned context ends then.
// stop releases both.
func CancelOnDone(ctx context.Context, conn *pgx.Conn) (context.Context, func()) {
	wait, giveUp := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		cctx, cancel := context.WithTimeout(context.Background(), CancelGrace)
		defer cancel()
		_ = conn.PgConn().CancelRequest(cctx)
		time.AfterFunc(CancelGrace, giveUp)
	})
	return wait, func() { stop(); giveUp() }
}
