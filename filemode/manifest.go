// The batch directory's description: manifest.json (what was exported, with
// sizes and checksums) and the .columns file format.

package filemode

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Format names the layout of a batch directory; Import refuses others.
const Format = "pgshadow-files/1"

// ManifestName is the file that describes a batch directory. It is written
// last, so a directory with a manifest is complete.
const ManifestName = "manifest.json"

// fixedSettings are the session settings both sides run COPY under: they fix
// how dates, intervals, floats, bytea and money print, so the text written by
// one server is read back as the same values by another. They are the Go home
// of the settings pgshadow._settings() holds for the SQL side (a test keeps
// the two equal).
var fixedSettings = [][2]string{
	{"DateStyle", "ISO, YMD"},
	{"IntervalStyle", "postgres"},
	{"TimeZone", "UTC"},
	{"extra_float_digits", "3"},
	{"bytea_output", "hex"},
	{"lc_monetary", "C"},
}

// FixedSettings returns the settings values travel under, as name/value
// pairs (a copy).
func FixedSettings() [][2]string {
	return append([][2]string(nil), fixedSettings...)
}

// Manifest describes one export run.
type Manifest struct {
	Format string `json:"format"`
	Source Source `json:"source"`
	Target string `json:"target"`
	// Encoding of the text files (pgx always talks UTF8).
	Encoding string `json:"encoding"`
	// Settings the files were written under (fixedSettings).
	Settings map[string]string `json:"settings"`
	Tables   []Table           `json:"tables"`
}

// Source identifies the database a batch comes from.
type Source struct {
	SystemIdentifier string `json:"system_identifier"`
	Database         string `json:"database"`
	// Origin is what the import sets pgshadow.origin to (the source's
	// pgshadow.node_name, else its database name), as push mode does.
	Origin        string `json:"origin"`
	ServerVersion string `json:"server_version"`
}

// ID is how a target's bookkeeping names the source: system identifier and
// database name, so two clusters with equal database names never mix.
func (s Source) ID() string {
	return s.SystemIdentifier + "/" + s.Database
}

// Table is one subscription's batch within an export run.
type Table struct {
	SubID       int64  `json:"sub_id"`
	SourceTable string `json:"source_table"`
	DestSchema  string `json:"dest_schema"`
	DestTable   string `json:"dest_table"`
	// Dest is DestSchema.DestTable quoted as SQL (format('%I.%I')); the
	// target's bookkeeping is keyed by it.
	Dest        string `json:"dest"`
	BatchNo     int64  `json:"batch_no"`
	OldSnapshot string `json:"old_snapshot"`
	NewSnapshot string `json:"new_snapshot"`
	// FullCopy batches replace the whole table (DELETE, then all rows):
	// the first batch of a subscription with an initial copy, and any batch
	// holding a TRUNCATE.
	FullCopy bool  `json:"full_copy"`
	Keys     int64 `json:"keys"` // changed keys (0 for a full copy)
	Rows     int64 `json:"rows"` // rows in the .rows file
	Files    Files `json:"files"`
}

// Files are a table's files; KeysFile is nil for a full copy.
type Files struct {
	Columns File  `json:"columns"`
	Keys    *File `json:"keys,omitempty"`
	Rows    File  `json:"rows"`
}

// File is a file of the batch directory with its size and checksum.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// all lists the table's files in the order they are written and read.
func (t *Table) all() []File {
	files := []File{t.Files.Columns}
	if t.Files.Keys != nil {
		files = append(files, *t.Files.Keys)
	}
	return append(files, t.Files.Rows)
}

// Column is one shipped column as the .columns file lists it.
type Column struct {
	Name string
	Type string // format_type() text on the source, schema-qualified when needed
	Key  int    // 1-based position in the primary key, 0 if not a key column
}

// The .columns file: a comment line, then one line per shipped column in
// table order: name<TAB>type<TAB>key position (0 = not a key column). Names
// and types are escaped like COPY text (\\, \t, \n, \r), so any identifier
// fits on one line.
const columnsHeader = "# pgshadow columns: name<TAB>type<TAB>key position (0 = not part of the primary key)\n"

func writeColumns(w io.Writer, cols []Column) error {
	var b strings.Builder
	b.WriteString(columnsHeader)
	for _, c := range cols {
		fmt.Fprintf(&b, "%s\t%s\t%d\n", escapeField(c.Name), escapeField(c.Type), c.Key)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func parseColumns(data []byte) ([]Column, error) {
	var cols []Column
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want 3 tab-separated fields, got %d", n, len(f))
		}
		key, err := strconv.Atoi(f[2])
		if err != nil || key < 0 {
			return nil, fmt.Errorf("line %d: bad key position %q", n, f[2])
		}
		name, err := unescapeField(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		typ, err := unescapeField(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if name == "" || typ == "" {
			return nil, fmt.Errorf("line %d: empty column name or type", n)
		}
		cols = append(cols, Column{Name: name, Type: typ, Key: key})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, errors.New("no columns")
	}
	return cols, nil
}

// keyColumns returns the key columns in key order, checking that the key
// positions run 1..n without gaps.
func keyColumns(cols []Column) ([]Column, error) {
	var keys []Column
	for _, c := range cols {
		if c.Key > 0 {
			keys = append(keys, c)
		}
	}
	ordered := make([]Column, len(keys))
	for _, c := range keys {
		if c.Key > len(keys) || ordered[c.Key-1].Name != "" {
			return nil, fmt.Errorf("key positions are not 1..%d", len(keys))
		}
		ordered[c.Key-1] = c
	}
	if len(ordered) == 0 {
		return nil, errors.New("no key columns")
	}
	return ordered, nil
}

var fieldEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

func escapeField(s string) string { return fieldEscaper.Replace(s) }

func unescapeField(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i++; i == len(s) {
			return "", fmt.Errorf("dangling backslash in %q", s)
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("unknown escape \\%c in %q", s[i], s)
		}
	}
	return b.String(), nil
}

// ReadManifest reads and checks dir's manifest; it also returns the
// manifest file's sha256, which identifies the export run.
func ReadManifest(dir string) (*Manifest, string, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("%s is not a complete batch directory: no %s", dir, ManifestName)
		}
		return nil, "", err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, "", fmt.Errorf("%s: %w", filepath.Join(dir, ManifestName), err)
	}
	if m.Format != Format {
		return nil, "", fmt.Errorf("%s: format %q, this pgshadow reads %q", filepath.Join(dir, ManifestName), m.Format, Format)
	}
	if err := m.check(); err != nil {
		return nil, "", fmt.Errorf("%s: %w", filepath.Join(dir, ManifestName), err)
	}
	sum := sha256.Sum256(data)
	return &m, hex.EncodeToString(sum[:]), nil
}

// check rejects manifests that could make Import touch files outside the
// batch directory or apply something half-described.
func (m *Manifest) check() error {
	if m.Source.SystemIdentifier == "" || m.Source.Database == "" {
		return errors.New("no source identity")
	}
	if len(m.Tables) == 0 {
		return errors.New("no tables")
	}
	seen := map[string]bool{}
	for _, t := range m.Tables {
		if t.Dest == "" || t.DestSchema == "" || t.DestTable == "" || t.BatchNo < 1 || t.NewSnapshot == "" {
			return fmt.Errorf("table entry for subscription %d is incomplete", t.SubID)
		}
		if seen[t.Dest] {
			return fmt.Errorf("%s appears twice", t.Dest)
		}
		seen[t.Dest] = true
		if t.FullCopy != (t.Files.Keys == nil) {
			return fmt.Errorf("%s: a keys file is required exactly when the batch is not a full copy", t.Dest)
		}
		for _, f := range t.all() {
			if f.Name == "" || f.Name != filepath.Base(f.Name) || strings.HasPrefix(f.Name, ".") || f.Name == ManifestName {
				return fmt.Errorf("%s: bad file name %q", t.Dest, f.Name)
			}
		}
	}
	return nil
}
