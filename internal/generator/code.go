// The code of a version: its functions, procedures and views, taken from the
// sources so an upgrade script need not copy them. An upgrade script says
// `-- #include code` where they go; the generator puts there every such
// definition of the current sources as CREATE OR REPLACE, with the COMMENT,
// GRANT and REVOKE statements that follow them. The upgrade's hand-written
// part changes the tables and drops what CREATE OR REPLACE cannot change (a
// function whose result type or name changed, one that no longer exists), so
// an upgraded database equals a fresh install by construction, and the
// install tests compare the two.

package generator

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var (
	// statements that define code, and those that describe or grant it
	codeStmtRE   = regexp.MustCompile(`(?is)^CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|VIEW)\b`)
	codeExtrasRE = regexp.MustCompile(`(?is)^(COMMENT\s+ON\s+(FUNCTION|PROCEDURE|VIEW)|(GRANT|REVOKE)\b.*\bON\s+(FUNCTION|PROCEDURE)\b)`)
	createRE     = regexp.MustCompile(`(?is)^CREATE\s+(OR\s+REPLACE\s+)?`)
)

// codeObjects renders, for variant v, every code definition of sources.
func codeObjects(root string, sources []string, v variant) ([]byte, error) {
	var b bytes.Buffer
	for _, name := range sources {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("read source: %w", err)
		}
		text, err := preprocess(name, src, v, sourceOptions{})
		if err != nil {
			return nil, err
		}
		code, err := codeOf(name, string(text))
		if err != nil {
			return nil, err
		}
		b.Write(code)
	}
	return b.Bytes(), nil
}

// codeOf keeps the code definitions (and their comments and grants) of the
// SQL text of source name.
func codeOf(name, text string) ([]byte, error) {
	stmts, err := splitStatements(name, text)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, s := range stmts {
		switch {
		case codeStmtRE.MatchString(s):
			s = createRE.ReplaceAllString(s, "CREATE OR REPLACE ")
		case !codeExtrasRE.MatchString(s):
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\n-- code of: " + name + "\n")
		}
		b.WriteString(s + ";\n")
	}
	return b.Bytes(), nil
}

// tableObjects renders, for `-- #include table NAME` in an upgrade, the
// statements of the sources that create table NAME and set it up: CREATE
// TABLE, its indexes, comments, row security and policies, and the grants
// and ALTER TABLEs that name it alone. A table a version adds is written once,
// in sql/; what else the upgrade must do for it (fill it, grant it with
// others) stays in the upgrade.
func tableObjects(root string, sources []string, table string) ([]byte, error) {
	if !tableNameRE.MatchString(table) {
		return nil, fmt.Errorf("-- #include table %s: want a schema-qualified name such as pgshadow.t", table)
	}
	q := regexp.QuoteMeta(table)
	stmtREs := []*regexp.Regexp{
		regexp.MustCompile(`(?is)^CREATE\s+(UNLOGGED\s+)?TABLE\s+` + q + `\s*\(`),
		regexp.MustCompile(`(?is)^CREATE\s+(UNIQUE\s+)?INDEX\b[^;]*?\bON\s+(ONLY\s+)?` + q + `\s*(\(|USING\b)`),
		regexp.MustCompile(`(?is)^(GRANT|REVOKE)\b[^;]*?\bON\s+(TABLE\s+)?` + q + `\s+(TO|FROM)\b`),
		regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+` + q + `\s`),
		regexp.MustCompile(`(?is)^CREATE\s+POLICY\s+\S+\s+ON\s+` + q + `\s`),
		regexp.MustCompile(`(?is)^COMMENT\s+ON\s+(TABLE\s+` + q + `\s|COLUMN\s+` + q + `\.)`),
	}
	var found []string
	for _, name := range sources {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("read source: %w", err)
		}
		stmts, err := splitStatements(name, string(src))
		if err != nil {
			return nil, err
		}
		for _, st := range stmts {
			for _, re := range stmtREs {
				if re.MatchString(st) {
					found = append(found, st)
					break
				}
			}
		}
	}
	if len(found) == 0 || !stmtREs[0].MatchString(found[0]) {
		return nil, fmt.Errorf("-- #include table %s: %s/ does not create it before its other statements about it", table, sqlDir)
	}
	var b bytes.Buffer
	b.WriteString("-- table " + table + ", as " + sqlDir + "/ creates it\n")
	for _, st := range found {
		b.WriteString(st + ";\n")
	}
	return b.Bytes(), nil
}

var tableNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$`)

// releasedCode renders the code definitions of a released full script
// (pgshadow--X.sql in the root, kept as released), for a down step that
// restores that version. Its code is the same for both install paths.
func releasedCode(root, file string) ([]byte, error) {
	if !fullNameRE.MatchString(file) {
		return nil, fmt.Errorf("-- #include code from %s: want a full script pgshadow--X.sql", file)
	}
	data, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		return nil, fmt.Errorf("read released script: %w", err)
	}
	var kept []string
	for _, line := range strings.Split(string(data), "\n") {
		if !echoGuardRE.MatchString(line) {
			kept = append(kept, line)
		}
	}
	return codeOf(file, strings.Join(kept, "\n"))
}

// splitStatements cuts SQL text at top-level semicolons, honouring quotes,
// dollar quotes and comments; each statement is returned without the
// comments and blank lines before it and without its semicolon.
func splitStatements(name, text string) ([]string, error) {
	var out []string
	start := -1 // first character of the current statement
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(text)
			}
			continue
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			depth, j := 0, i
			for j < len(text) {
				if strings.HasPrefix(text[j:], "/*") {
					depth++
					j += 2
				} else if strings.HasPrefix(text[j:], "*/") {
					depth--
					j += 2
					if depth == 0 {
						break
					}
				} else {
					j++
				}
			}
			if depth != 0 {
				return nil, fmt.Errorf("%s: unterminated /* comment", name)
			}
			i = j
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		}
		if start < 0 {
			start = i
		}
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for {
				k := strings.IndexByte(text[j:], c)
				if k < 0 {
					return nil, fmt.Errorf("%s: unterminated %c quote at byte %d", name, c, i)
				}
				j += k + 1
				if j < len(text) && text[j] == c { // doubled: an escaped quote
					j++
					continue
				}
				break
			}
			i = j
		case c == '$':
			if m := dollarTagRE.FindString(text[i:]); m != "" {
				k := strings.Index(text[i+len(m):], m)
				if k < 0 {
					return nil, fmt.Errorf("%s: unterminated %s quote at byte %d", name, m, i)
				}
				i += len(m) + k + len(m)
			} else {
				i++
			}
		case c == ';':
			out = append(out, strings.TrimSpace(text[start:i]))
			start = -1
			i++
		default:
			i++
		}
	}
	if start >= 0 && strings.TrimSpace(text[start:]) != "" {
		return nil, fmt.Errorf("%s: the last statement has no closing semicolon", name)
	}
	return out, nil
}

var dollarTagRE = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)?\$`)
