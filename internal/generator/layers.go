// The layering rule of sql/: a source file's number says what it may call.
// Its code may name only the pgshadow objects that it or an earlier file
// defines, so reading the files in order never meets a call of something not
// yet read. Names inside string literals do not count: those are dynamic SQL
// or statements for a remote server, resolved when they run.

package generator

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var (
	// an object of schema pgshadow that a source creates
	definesRE = regexp.MustCompile(`(?im)^CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE|VIEW|TABLE|TYPE)\s+(?:IF\s+NOT\s+EXISTS\s+)?pgshadow\.(\w+)`)
	// a use of one: pgshadow.name
	usesRE = regexp.MustCompile(`(?i)\bpgshadow\.(\w+)`)
)

// checkLayers reports the first use, in sources (in install order), of a
// pgshadow object that only a later source defines.
func checkLayers(root string, sources []string) error {
	texts := make([]string, len(sources))
	definedIn := map[string]int{}
	for i, name := range sources {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return fmt.Errorf("read source: %w", err)
		}
		texts[i] = codeOnly(string(src))
		for _, m := range definesRE.FindAllStringSubmatch(texts[i], -1) {
			obj := strings.ToLower(m[1])
			if _, seen := definedIn[obj]; !seen {
				definedIn[obj] = i
			}
		}
	}
	for i, name := range sources {
		for n, line := range strings.Split(texts[i], "\n") {
			for _, m := range usesRE.FindAllStringSubmatch(line, -1) {
				if at, ok := definedIn[strings.ToLower(m[1])]; ok && at > i {
					return fmt.Errorf("%s:%d: pgshadow.%s is defined in %s, a later file: a source may use only what it or an earlier one defines (move one of them)",
						name, n+1, m[1], sources[at])
				}
			}
		}
	}
	return nil
}

// codeOnly blanks the comments and the single-quoted string literals of SQL
// text, keeping its line breaks so line numbers stay right. Dollar-quoted
// function bodies are code and are kept.
func codeOnly(s string) string {
	var b strings.Builder
	const (
		code = iota
		quoted
		lineComment
		blockComment
	)
	state, escapes := code, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		next := byte(0)
		if i+1 < len(s) {
			next = s[i+1]
		}
		switch state {
		case code:
			switch {
			case c == '-' && next == '-':
				state = lineComment
				continue
			case c == '/' && next == '*':
				state = blockComment
				continue
			case c == '\'':
				state = quoted
				escapes = i > 0 && (s[i-1] == 'E' || s[i-1] == 'e')
				b.WriteByte(' ')
				continue
			}
			b.WriteByte(c)
		case quoted:
			switch {
			case escapes && c == '\\':
				i++
			case c == '\'' && next == '\'':
				i++
			case c == '\'':
				state = code
			case c == '\n':
				b.WriteByte('\n')
			}
		case lineComment:
			if c == '\n' {
				state = code
				b.WriteByte('\n')
			}
		case blockComment:
			if c == '*' && next == '/' {
				state = code
				i++
			} else if c == '\n' {
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}
