package pgshadow

import (
	"strings"
	"testing"
	"testing/fstest"
)

// A binary built without generating the current version's migrations
// refuses to run them rather than install an older version.
func TestMigrationsMustReachTheBuiltVersion(t *testing.T) {
	if _, err := Migrations(); err != nil {
		t.Fatalf("the migrations built into this test binary: %v (run make generate)", err)
	}
	tree := func(files ...string) fstest.MapFS {
		m := fstest.MapFS{"pgshadow.control": {Data: []byte("comment = 'x'\ndefault_version = '0.10.0'\n")}}
		for _, f := range files {
			m["migrations/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;\n")}
		}
		return m
	}
	if _, err := complete(tree("000001_pgshadow_0_9_0.up.sql", "000002_pgshadow_0_10_0.up.sql", "000002_pgshadow_0_10_0.down.sql")); err != nil {
		t.Errorf("complete migrations refused: %v", err)
	}
	_, err := complete(tree("000001_pgshadow_0_9_0.up.sql", "000001_pgshadow_0_9_0.down.sql"))
	if err == nil || !strings.Contains(err.Error(), "up to pgshadow 0.9.0, not 0.10.0") {
		t.Errorf("migrations ending at 0.9.0 for 0.10.0: got %v, want a refusal naming both versions", err)
	}
}
