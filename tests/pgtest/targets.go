package pgtest

import (
	"testing"

	"github.com/pgshadow/pgshadow/internal/pgserver"
)

// Target names NewPushAndFiles gives on the source.
const (
	PushTarget = "push"
	FileTarget = "files"
)

// PushAndFiles is a source database with pgshadow and two targets: push
// target PushTarget feeds Push (over foreign server "tgt"), file target
// FileTarget has no server; its batches are exported to Dir and imported
// into Files. The file mode suites build their scenarios on it.
type PushAndFiles struct {
	Src   *DB // pgshadow installed
	Push  *DB // fed by shadow_export
	Files *DB // fed by the file target's batches
	Dir   string
}

// NewPushAndFiles creates the three databases, on servers src, push and
// files, and both targets.
func NewPushAndFiles(t testing.TB, src, push, files *pgserver.Server) *PushAndFiles {
	t.Helper()
	e := &PushAndFiles{
		Src:   NewDBWithExtension(t, src),
		Push:  NewDB(t, push),
		Files: NewDB(t, files),
		Dir:   t.TempDir(),
	}
	e.Src.AddPushTarget(t, PushTarget, "tgt", e.Push)
	e.Src.Exec(t, "SELECT shadow_add_target($1, NULL)", FileTarget)
	return e
}
