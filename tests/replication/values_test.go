// Exact values: whatever the two servers' session defaults, every value
// arrives bit for bit as it was on the source.
package replication

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

// valuesDDL defines the same types and table on both sides.
const valuesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ''quoted'' "x"');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE vals (
    id  int PRIMARY KEY,
    n   numeric,
    f4  real,
    f8  double precision,
    tz  timestamptz,
    ts  timestamp,
    d   date,
    iv  interval,
    b   bytea,
    j   jsonb,
    ia  int[],
    ta  text[],
    m   mood,
    dom posint,
    t   text)`

// awkwardText holds everything that breaks naive quoting.
const awkwardText = `E'quote \' double " dollar $Q$ $$ $x$ backslash \\ \\\\ \\x00 newline \n tab \t cr \r; DROP TABLE vals; -- ü 日本 😀'`

// valueRows are the rows shipped: extremes and specials of every type, a
// row of NULLs, and text over 1 MB.
var valueRows = []string{
	`(1, '12345678901234567890123456789012345678901234567890.1234567890123456789012345678900',
	  'NaN', 'NaN', '2024-02-29 23:59:59.999999+05:30', '1999-12-31 23:59:59.123456', 'infinity',
	  '1 year -2 mons +3 days -04:05:06.789', '\x00ff00'::bytea,
	  '{"b": 1.000, "a": [1e-5, "x\"y", null, true], "k\\n": "é\n"}',
	  '{1,NULL,3}', '{"a,b","q\"uote",NULL,"","NULL","back\\slash"}', 'happy ''quoted'' "x"', 1, ` + awkwardText + `)`,
	`(2, 'NaN', 'Infinity', '-Infinity', 'infinity', '-infinity', '-infinity',
	  '-178000000 years', ''::bytea, '[]', '{}', '{}', 'sad', 2147483647, '')`,
	`(3, '-0.000000000000000000000000000001', '-0', '1e-308', '0044-03-15 12:00:00.5+00 BC',
	  '294276-12-31 23:59:59.999999', '4713-01-01 BC', '-1 days +23:59:59.999999',
	  decode(repeat('00', 1000) || 'ff', 'hex'), '{"nested": {"k": "v"}, "n": 1e+100}',
	  '{{1,2},{3,4}}', '{{"a","b"},{"c",NULL}}', 'ok', NULL, repeat(` + awkwardText + `, 20000))`,
	`(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	`(5, '1.500', '1.17549435e-38', '-0', 'epoch', '2000-01-01', '2000-02-29', '0', '\x5c27'::bytea,
	  '"just a string"', '{-2147483648}', '{" leading and trailing "}', 'happy ''quoted'' "x"', 7, 'NULL')`,
	`(6, (repeat('9', 1000) || '.' || repeat('1', 500))::numeric, '3.4028235e+38', '5e-324', '2038-01-19 03:14:08+00',
	  '1970-01-01 00:00:00.000001', '5874897-12-31', '-2147483648 mons -2147483648 days', '\x0a0d09'::bytea,
	  'null', '{{{1}}}', '{"{}","(,)"}', 'sad', 3, E'\\')`,
}

// fingerprintSQL renders every column with its binary send function, so a
// value that prints the same but differs (a float's sign, a numeric's scale,
// a timestamp's microseconds) still shows.
const fingerprintSQL = `
SELECT id || ':' || md5(concat_ws('|',
    coalesce(encode(numeric_send(n), 'hex'), '-'),
    coalesce(encode(float4send(f4), 'hex'), '-'),
    coalesce(encode(float8send(f8), 'hex'), '-'),
    coalesce(encode(timestamptz_send(tz), 'hex'), '-'),
    coalesce(encode(timestamp_send(ts), 'hex'), '-'),
    coalesce(encode(date_send(d), 'hex'), '-'),
    coalesce(encode(interval_send(iv), 'hex'), '-'),
    coalesce(encode(b, 'hex'), '-'),
    coalesce(encode(jsonb_send(j), 'hex'), '-'),
    coalesce(encode(array_send(ia), 'hex'), '-'),
    coalesce(encode(array_send(ta), 'hex'), '-'),
    coalesce(encode(enum_send(m), 'hex'), '-'),
    coalesce(encode(int4send(dom), 'hex'), '-'),
    coalesce(encode(textsend(t), 'hex'), '-')))
FROM vals ORDER BY id`

// alterDatabase sets session defaults of d's database and drops the pooled
// connections, so every later session (and dblink's on the target) uses them.
func alterDatabase(t *testing.T, d *pgtest.DB, settings map[string]string) {
	t.Helper()
	for k, v := range settings {
		d.Exec(t, fmt.Sprintf("ALTER DATABASE %s SET %s = %s", ident(d.Name), k, lit(v)))
	}
	d.Pool.Reset()
}

// Values of every awkward kind round-trip exactly between servers whose
// TimeZone, DateStyle, IntervalStyle, extra_float_digits and bytea_output
// differ, through the initial copy and through exports.
func TestValuesRoundTripExactlyAcrossSessionSettings(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.Both(t, valuesDDL)
	alterDatabase(t, p.Src, map[string]string{
		"TimeZone": "America/St_Johns", "DateStyle": "SQL, DMY", "IntervalStyle": "sql_standard",
		"extra_float_digits": "-3", "bytea_output": "escape",
	})
	alterDatabase(t, p.Dst, map[string]string{
		"TimeZone": "Pacific/Chatham", "DateStyle": "German, MDY", "IntervalStyle": "iso_8601",
		"extra_float_digits": "0", "bytea_output": "hex",
	})
	// the settings must really differ in the sessions that write and apply
	src := p.Src.QueryString(t, "SELECT current_setting('TimeZone') || current_setting('DateStyle')")
	dst := p.Dst.QueryString(t, "SELECT current_setting('TimeZone') || current_setting('DateStyle')")
	if src != "America/St_JohnsSQL, DMY" || dst != "Pacific/ChathamGerman, MDY" {
		t.Fatalf("database settings not in effect: source %q, target %q", src, dst)
	}

	// half the rows by the initial copy, half by an export
	for _, r := range valueRows[:3] {
		p.Src.Exec(t, "INSERT INTO vals VALUES "+r)
	}
	p.Subscribe(t, "vals")
	checkSameValues(t, p)
	for _, r := range valueRows[3:] {
		p.Src.Exec(t, "INSERT INTO vals VALUES "+r)
	}
	// copied rows shipped again by an export, with values changed in place
	// (not f8 = -f8 on row 1: -NaN has no text form, so no text transport,
	// pg_dump included, keeps its sign bit)
	p.Src.Exec(t, "UPDATE vals SET tz = tz + interval '1 microsecond', n = -n WHERE id IN (1, 3)")
	p.Src.Exec(t, "UPDATE vals SET f8 = -f8, f4 = -f4 WHERE id = 3")
	p.Export(t)
	checkSameValues(t, p)
}

// checkSameValues compares vals on both sides as text under fixed settings
// and as the md5 of each row's binary rendering.
func checkSameValues(t *testing.T, p *pair) {
	t.Helper()
	p.Same(t, "vals", "vals")
	src, dst := p.Src.QueryStrings(t, fingerprintSQL), p.Dst.QueryStrings(t, fingerprintSQL)
	if !slices.Equal(src, dst) {
		t.Fatalf("binary fingerprints differ (id:md5), source vs target:\n%s", pgtest.DiffRows(src, dst))
	}
	if len(src) == 0 {
		t.Fatalf("no rows to compare")
	}
	// the long text really is over 1 MB on the target
	if n := p.Dst.QueryInt(t, "SELECT coalesce(octet_length(t), 0) FROM vals WHERE id = 3"); n < 1<<20 {
		t.Errorf("long text is %d bytes on the target, want over 1 MB", n)
	}
}

// Each column's array literal is parsed as an array of the column's type
// where array_in can take its text as it is; the rest go through text[] and
// a cast: a box (its array delimiter is ';', and its text holds commas), a
// composite and a range (their text is quoted inside the array), and types
// with a type modifier, which the array parse applies as the cast did.
func TestValuesOfEveryArrayShapeArrive(t *testing.T) {
	p := subscribed(t, `CREATE TYPE pair AS (a int, b text);
		CREATE TABLE tbl (id int PRIMARY KEY, bx box, pt point, pr pair, r int4range, u uuid,
		                  n numeric(6,2), vc varchar(5), bits bit varying(8), ts timestamp(0))`, "")
	p.Src.Exec(t, `INSERT INTO tbl VALUES
		(1, '((0,0),(1,2))', '(1.5,-2)', '(1,"x, y")', '[1,5)', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1234.56, 'abcde', B'1010', '2024-01-02 03:04:05'),
		(2, '((-1,-1),(3,3))', NULL, '(,)', 'empty', NULL, -0.01, '', B'', NULL),
		(3, NULL, '(0,0)', NULL, '(,)', '00000000-0000-0000-0000-000000000000', NULL, NULL, NULL, 'infinity')`)
	p.Export(t)
	p.Same(t, "tbl", "tbl")
	p.Ship(t, "tbl", "UPDATE tbl SET bx = '((5,5),(6,6))', n = n + 1, vc = 'z'")

	// keys go the same way: an array key takes the text[] path
	p.Both(t, "CREATE TABLE arr (k int[] PRIMARY KEY, v text)")
	p.Subscribe(t, "arr")
	p.Src.Exec(t, `INSERT INTO arr VALUES ('{1,2}', 'a'), ('{}', 'b'), ('{NULL,3}', 'c'), ('{{1,2},{3,4}}', 'd')`)
	p.Export(t)
	p.Ship(t, "arr", `UPDATE arr SET v = v || '!' WHERE k <> '{}'; DELETE FROM arr WHERE k = '{1,2}'`)
}
