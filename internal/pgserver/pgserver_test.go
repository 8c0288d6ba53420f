// Tests of pgserver's own failure handling; the happy paths are covered by
// the pgtest self-test, which starts servers through this package.
package pgserver_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgshadow/pgshadow/internal/pgserver"
)

func TestStartFailureReportsServerLogAndCleansUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs initdb")
	}
	// Not t.TempDir: its parent is private, and the server runs as another
	// OS user when the tests run as root.
	parent, err := os.MkdirTemp("", "pgserver-test-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(parent) })
	require.NoError(t, os.Chmod(parent, 0o755))
	_, err = pgserver.Start(context.Background(), pgserver.Options{
		Name:     "broken",
		BaseDir:  parent,
		Settings: map[string]string{"shared_buffers": "lots"},
	})
	require.Error(t, err)
	require.Contains(t, err.Error(), `invalid value for parameter "shared_buffers"`, "error lacks the server log")
	left, _ := os.ReadDir(parent)
	require.Empty(t, left, "failed start left files behind")
}

func TestStartRejectsBadSettingName(t *testing.T) {
	_, err := pgserver.Start(context.Background(), pgserver.Options{Settings: map[string]string{"a = 1\nb": "x"}})
	require.ErrorContains(t, err, "invalid setting name")
}

func TestConnStringQuotesValues(t *testing.T) {
	s := &pgserver.Server{Host: "127.0.0.1", Port: 5999}
	require.Equal(t, `host=127.0.0.1 port=5999 user=u password='it\'s a \\ pw' dbname=d sslmode=disable`,
		s.ConnStringAs("d", "u", `it's a \ pw`))
}

func TestStartExplainsUnreachableBaseDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another OS user")
	}
	_, err := pgserver.Start(context.Background(), pgserver.Options{Name: "private", BaseDir: t.TempDir()})
	require.ErrorContains(t, err, "not traversable")
}
