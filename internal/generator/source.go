// Source handling: reading pgshadow.control and turning one SQL source file
// into the text that goes into the extension scripts or into the migrations.

package generator

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// variant says which install path a script is assembled for. The same source
// serves both: what only one may run checks at run time where it is
// (pgshadow._dump_catalog: is there an extension?), so the variants differ
// only in what the generator adds (the psql guard, check_function_bodies).
type variant string

const (
	extensionVariant variant = "extension"
	migrationVariant variant = "migration"
)

var (
	defaultVersionRE = regexp.MustCompile(`(?m)^\s*default_version\s*=\s*'([^']*)'`)
	directiveRE      = regexp.MustCompile(`^\s*--\s*#\s*(if|endif|else|elif|ifdef|ifndef|include)\b\s*(.*?)\s*$`)
	// a statement of its own calling pg_extension_config_dump, which fails
	// outside CREATE EXTENSION
	configDumpRE = regexp.MustCompile(`(?i)^\s*SELECT\s+(pg_catalog\.)?pg_extension_config_dump\b`)
	// psql meta-commands: golang-migrate sends a migration to the server as
	// one multi-statement query, where a backslash line is a syntax error.
	metaCommandRE = regexp.MustCompile(`^\s*\\[a-zA-Z!?]`)
	// The guard that stops `psql -f` from running an extension script; the
	// server strips it under CREATE EXTENSION, migrations must not carry it.
	echoGuardRE = regexp.MustCompile(`^\s*\\echo\b.*\\quit\s*$`)
)

// readDefaultVersion returns default_version from pgshadow.control.
func readDefaultVersion(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, controlFile))
	if err != nil {
		return "", fmt.Errorf("read control file: %w", err)
	}
	return DefaultVersion(data)
}

// DefaultVersion returns default_version from the text of pgshadow.control.
func DefaultVersion(data []byte) (string, error) {
	m := defaultVersionRE.FindSubmatch(data)
	if m == nil {
		return "", fmt.Errorf("%s: no default_version = '...' line", controlFile)
	}
	v := string(m[1])
	if _, err := parseVersion(v); err != nil {
		return "", fmt.Errorf("%s: default_version: %w", controlFile, err)
	}
	return v, nil
}

// sourceOptions say what a source may contain besides plain SQL.
type sourceOptions struct {
	// allowGuard permits the `\echo ... \quit` guard line, which hand-written
	// upgrade scripts carry; it is kept for the extension and dropped for
	// migrations. Full-install sources get the guard from the generator.
	allowGuard bool
	// code renders what `-- #include code` stands for (see code.go); nil
	// where the directive may not appear.
	code func(v variant, from string) ([]byte, error)
	// table renders what `-- #include table NAME` stands for (see code.go);
	// nil where the directive may not appear.
	table func(name string) ([]byte, error)
}

// preprocess returns src (named name, relative to the repository root, for
// messages) as seen by variant v: directives resolved, marker lines dropped,
// lines ending in "\n". It rejects what cannot run on that path.
func preprocess(name string, src []byte, v variant, opts sourceOptions) ([]byte, error) {
	text := strings.ReplaceAll(string(src), "\r\n", "\n")
	text = strings.TrimSuffix(text, "\n")
	var out bytes.Buffer
	for i, line := range strings.Split(text, "\n") {
		lineNo := i + 1
		if m := directiveRE.FindStringSubmatch(line); m != nil {
			keyword, arg := m[1], m[2]
			if keyword != "include" {
				return nil, fmt.Errorf("%s:%d: unsupported directive -- #%s (only -- #include: what one install path may not run checks at run time)", name, lineNo, keyword)
			}
			// "table NAME": a table the version adds, as the sources create it
			if table, isTable := strings.CutPrefix(arg, "table "); isTable {
				if opts.table == nil {
					return nil, fmt.Errorf("%s:%d: -- #include table belongs in an upgrade script to the current version", name, lineNo)
				}
				ddl, err := opts.table(strings.TrimSpace(table))
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %w", name, lineNo, err)
				}
				out.Write(ddl)
				continue
			}
			// "code": the current sources'; "code from pgshadow--X.sql":
			// a released full script's (a down step restores it)
			from, isFrom := strings.CutPrefix(arg, "code from ")
			if !isFrom {
				from = ""
			}
			if arg != "code" && !isFrom {
				return nil, fmt.Errorf("%s:%d: unknown -- #include %s (want code, code from pgshadow--X.sql, or table NAME)", name, lineNo, arg)
			}
			if opts.code == nil {
				return nil, fmt.Errorf("%s:%d: -- #include code belongs in an upgrade script to the current version or its down step", name, lineNo)
			}
			code, err := opts.code(v, strings.TrimSpace(from))
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, lineNo, err)
			}
			out.Write(code)
			continue
		}
		if metaCommandRE.MatchString(line) {
			switch {
			case opts.allowGuard && echoGuardRE.MatchString(line):
				if v == migrationVariant {
					continue
				}
			case opts.allowGuard:
				return nil, fmt.Errorf("%s:%d: psql meta-command %q: only the \\echo ... \\quit guard may appear, migrations run without psql", name, lineNo, strings.TrimSpace(line))
			default:
				return nil, fmt.Errorf("%s:%d: psql meta-command %q: sources run without psql (the generator adds the \\echo guard itself)", name, lineNo, strings.TrimSpace(line))
			}
		}
		if strings.Contains(line, "@extschema@") {
			return nil, fmt.Errorf("%s:%d: @extschema@ is replaced only under CREATE EXTENSION, and migrations run the same text", name, lineNo)
		}
		if configDumpRE.MatchString(line) {
			return nil, fmt.Errorf("%s:%d: pg_extension_config_dump works only under CREATE EXTENSION, and migrations run the same text: list the table in pgshadow._dump_catalog()", name, lineNo)
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}
