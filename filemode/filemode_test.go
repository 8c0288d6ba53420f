// Unit tests of the parts that need no server: the .columns format and the
// rules deciding whether a batch continues what a target has applied (the
// integration tests in tests/filemode run them against real servers).
package filemode

import (
	"bytes"
	"strings"
	"testing"
)

func TestColumnsRoundTripAwkwardNames(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: "bigint", Key: 2},
		{Name: "tab\there\nnew\\line", Type: "character varying(20)", Key: 1},
		{Name: `"quoted" é`, Type: "public.\"my type\"[]"},
	}
	var b bytes.Buffer
	if err := writeColumns(&b, cols); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 4 {
		t.Errorf("columns file has %d lines, want a comment and one per column:\n%s", n, b.String())
	}
	got, err := parseColumns(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cols) {
		t.Fatalf("parsed %d columns, want %d", len(got), len(cols))
	}
	for i := range cols {
		if got[i] != cols[i] {
			t.Errorf("column %d: parsed %+v, wrote %+v", i, got[i], cols[i])
		}
	}
	keys, err := keyColumns(got)
	if err != nil || len(keys) != 2 || keys[0].Name != cols[1].Name || keys[1].Name != "id" {
		t.Errorf("key columns %+v (%v), want the tab\\there column, then id", keys, err)
	}
}

func TestColumnsRejectsMalformedFiles(t *testing.T) {
	for name, text := range map[string]string{
		"two fields":         "id\tint\n",
		"bad key position":   "id\tint\tyes\n",
		"bad escape":         "i\\d\tint\t1\n",
		"no columns":         "# nothing\n",
		"gap in key":         "a\tint\t1\nb\tint\t3\n",
		"no key":             "a\tint\t0\n",
		"key position twice": "a\tint\t1\nb\tint\t1\n",
	} {
		cols, err := parseColumns([]byte(text))
		if err == nil {
			_, err = keyColumns(cols)
		}
		if err == nil {
			t.Errorf("%s: %q accepted", name, text)
		}
	}
}

func TestDecide(t *testing.T) {
	prev := &applied{subID: 7, batchNo: 4, manifestSHA: "m4", oldSnap: "100:110:", newSnap: "120:130:", batchDir: "d4"}
	batch := func(sub, no int64, old, new string, full bool) Table {
		return Table{SubID: sub, BatchNo: no, OldSnapshot: old, NewSnapshot: new, FullCopy: full}
	}
	cases := []struct {
		name    string
		prev    *applied
		t       Table
		sha     string
		outcome string // "" = refused
		reason  string
	}{
		{"first batch 1", nil, batch(7, 1, "1:1:", "5:5:", false), "x", Applied, ""},
		{"first full copy later", nil, batch(7, 9, "1:1:", "5:5:", true), "x", Applied, ""},
		{"first incremental later", nil, batch(7, 3, "1:1:", "5:5:", false), "x", "", "neither batch 1 nor a full copy"},
		{"next in chain", prev, batch(7, 5, "120:130:", "140:150:", false), "m5", Applied, ""},
		{"next from another export", prev, batch(7, 5, "121:131:", "140:150:", false), "m5", "", "continues a different export of batch 4"},
		{"next full copy after resync", prev, batch(7, 5, "125:135:", "140:150:", true), "m5", Applied, ""},
		{"same batch again", prev, batch(7, 4, "100:110:", "120:130:", false), "m4", AlreadyApplied, ""},
		{"re-export superseding", prev, batch(7, 4, "100:110:", "125:140:", false), "m4b", Applied, ""},
		{"stale export of the same batch", prev, batch(7, 4, "100:110:", "115:125:", false), "m4a", "", "does not supersede"},
		{"skipping a batch", prev, batch(7, 6, "140:150:", "160:170:", false), "m6", "", "expected batch 5"},
		{"older batch", prev, batch(7, 2, "50:60:", "70:80:", false), "m2", AlreadyApplied, ""},
		{"new subscription's full copy", prev, batch(8, 1, "1:1:", "200:210:", true), "n1", Applied, ""},
		{"new subscription incremental", prev, batch(8, 1, "1:1:", "200:210:", false), "n1", "", "fed by subscription 7"},
		{"older subscription's full copy", prev, batch(6, 1, "1:1:", "90:95:", true), "o1", "", "older than subscription 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			outcome, reason := decide(c.prev, c.t, c.sha)
			if outcome != c.outcome || !strings.Contains(reason, c.reason) || (c.reason == "") != (reason == "") {
				t.Errorf("decide: outcome %q, reason %q; want outcome %q, reason containing %q", outcome, reason, c.outcome, c.reason)
			}
		})
	}
}
