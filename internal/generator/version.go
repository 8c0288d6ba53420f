// Versions and the upgrade path: which hand-written upgrade scripts exist,
// and the one linear order in which migrations apply them.

package generator

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	versionRE     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
	upgradeNameRE = regexp.MustCompile(`^pgshadow--(.+)--(.+?)(\.down)?\.sql$`)
	fullNameRE    = regexp.MustCompile(`^pgshadow--([^-]+)\.sql$`)
)

// version is a dotted numeric version; it compares numerically, so 0.10.0
// comes after 0.9.0.
type version []int

func parseVersion(s string) (version, error) {
	if !versionRE.MatchString(s) {
		return nil, fmt.Errorf("version %q: want dotted numbers such as 1.2.3", s)
	}
	parts := strings.Split(s, ".")
	v := make(version, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("version %q: %w", s, err)
		}
		v[i] = n
	}
	return v, nil
}

// compareVersions orders a and b numerically; missing parts count as zero.
func compareVersions(a, b string) int {
	va, _ := parseVersion(a)
	vb, _ := parseVersion(b)
	for i := 0; i < len(va) || i < len(vb); i++ {
		var x, y int
		if i < len(va) {
			x = va[i]
		}
		if i < len(vb) {
			y = vb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// upgrade is one hand-written sql/updates/pgshadow--From--To.sql.
type upgrade struct {
	from, to string
	source   string // path relative to the root
	down     string // the matching .down.sql, or "" when there is none
}

// readUpgrades lists sql/updates, sorted by target version.
func readUpgrades(root string) ([]upgrade, error) {
	entries, err := os.ReadDir(filepath.Join(root, updatesDir))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list upgrades: %w", err)
	}
	ups := map[string]*upgrade{}
	downs := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		rel := path.Join(updatesDir, name)
		m := upgradeNameRE.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("%s: upgrade scripts are named pgshadow--FROM--TO.sql (or .down.sql)", rel)
		}
		from, to := m[1], m[2]
		for _, v := range []string{from, to} {
			if _, err := parseVersion(v); err != nil {
				return nil, fmt.Errorf("%s: %w", rel, err)
			}
		}
		if compareVersions(from, to) >= 0 {
			return nil, fmt.Errorf("%s: upgrades must go to a newer version", rel)
		}
		key := from + "--" + to
		if m[3] != "" {
			downs[key] = rel
			continue
		}
		ups[key] = &upgrade{from: from, to: to, source: rel}
	}
	for key, rel := range downs {
		u, ok := ups[key]
		if !ok {
			return nil, fmt.Errorf("%s: no matching upgrade %s", rel, path.Join(updatesDir, "pgshadow--"+key+".sql"))
		}
		u.down = rel
	}
	list := make([]upgrade, 0, len(ups))
	for _, u := range ups {
		list = append(list, *u)
	}
	sort.Slice(list, func(i, j int) bool { return compareVersions(list[i].to, list[j].to) < 0 })
	return list, nil
}

// upgradePath orders the upgrades into the single chain that ends at
// current, and returns the version the chain starts from (current itself
// when there are no upgrades). Migrations are a numbered line, so forks and
// gaps are errors rather than guesses.
func upgradePath(ups []upgrade, current string) (first string, chain []upgrade, err error) {
	if len(ups) == 0 {
		return current, nil, nil
	}
	byFrom := map[string]upgrade{}
	targets := map[string]bool{}
	for _, u := range ups {
		if other, dup := byFrom[u.from]; dup {
			return "", nil, fmt.Errorf("%s and %s both start at %s: migrations need one linear upgrade path", other.source, u.source, u.from)
		}
		byFrom[u.from] = u
		targets[u.to] = true
	}
	var starts []string
	for _, u := range ups {
		if !targets[u.from] {
			starts = append(starts, u.from)
		}
	}
	sort.Slice(starts, func(i, j int) bool { return compareVersions(starts[i], starts[j]) < 0 })
	if len(starts) != 1 {
		return "", nil, fmt.Errorf("upgrade scripts in %s do not form one path: it would start at each of %s", updatesDir, strings.Join(starts, ", "))
	}
	first = starts[0]
	for v := first; ; {
		u, ok := byFrom[v]
		if !ok {
			if v != current {
				return "", nil, fmt.Errorf("upgrade path in %s ends at %s, but %s says default_version = '%s': add %s",
					updatesDir, v, controlFile, current, path.Join(updatesDir, "pgshadow--"+v+"--"+current+".sql"))
			}
			break
		}
		chain = append(chain, u)
		v = u.to
	}
	return first, chain, nil
}

// releasedVersions lists the full install scripts pgshadow--X.sql in the
// root other than the current version's: released, so never rewritten.
func releasedVersions(root, current string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	var out []string
	for _, e := range entries {
		m := fullNameRE.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil || m[1] == current {
			continue
		}
		if _, err := parseVersion(m[1]); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out = append(out, m[1])
	}
	sort.Slice(out, func(i, j int) bool { return compareVersions(out[i], out[j]) < 0 })
	return out, nil
}
