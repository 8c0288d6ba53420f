package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// README's CLI line names every command `pgshadow help` lists, and no other.
func TestReadmeListsEveryCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^CLI: `pgshadow ([a-z |]+)`").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no line \"CLI: `pgshadow cmd | cmd ...`\"")
	}
	var listed, registered []string
	for _, c := range strings.Split(string(m[1]), "|") {
		listed = append(listed, strings.TrimSpace(c))
	}
	for c := range commands {
		registered = append(registered, c)
	}
	sort.Strings(listed)
	sort.Strings(registered)
	if strings.Join(listed, " ") != strings.Join(registered, " ") {
		t.Errorf("README lists commands %q, pgshadow help %q", listed, registered)
	}
}
