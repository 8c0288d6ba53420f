// Self-test of the harness: real servers start, databases come and go with
// the test, row comparison is independent of server settings and reports
// differences, and a killed server comes back with its data and port.
package pgtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshadow/pgshadow/tests/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, "a", "b")
}

func TestServersAreDistinctAndReachable(t *testing.T) {
	a, b := pgtest.Server("a"), pgtest.Server("b")
	require.NotEqual(t, a.Port, b.Port, "both servers listen on the same port")
	for _, s := range []string{"a", "b"} {
		d := pgtest.NewDB(t, pgtest.Server(s))
		require.Equal(t, "on", d.QueryString(t, "SELECT current_setting('is_superuser')"), "server %s", s)
		require.Equal(t, "UTF8", d.QueryString(t, "SHOW server_encoding"), "server %s", s)
	}
}

func TestNewDBIsDroppedAfterTest(t *testing.T) {
	s := pgtest.Server("a")
	var name string
	t.Run("inner", func(t *testing.T) {
		d := pgtest.NewDB(t, s)
		name = d.Name
		d.Exec(t, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
		require.EqualValues(t, 1, d.QueryInt(t, "SELECT count(*) FROM pg_database WHERE datname = $1", name))
	})
	admin := pgtest.NewDB(t, s)
	require.EqualValues(t, 0, admin.QueryInt(t, "SELECT count(*) FROM pg_database WHERE datname = $1", name),
		"database %s still exists after its test ended", name)
}

func TestQueryHelpers(t *testing.T) {
	d := pgtest.NewDB(t, pgtest.Server("a"))
	require.Equal(t, "<NULL>", d.QueryString(t, "SELECT NULL::text"))
	require.Equal(t, "t", d.QueryString(t, "SELECT true"))
	require.Equal(t, "{1,2}", d.QueryString(t, "SELECT $1::int[]", []int32{1, 2}))
	require.Equal(t, []string{"1", "<NULL>", "x"}, d.QueryStrings(t, "SELECT * FROM (VALUES ('1'), (NULL), ('x')) v(c)"))
	require.Equal(t, int64(42), d.QueryVal(t, "SELECT 42::bigint"))
	err := d.ExecErr("SELECT 1/0")
	require.ErrorContains(t, err, "division by zero")

	require.NoError(t, d.Server.CreateRole(context.Background(), "pgtest_reader", "it's secret"))
	t.Cleanup(func() { d.Exec(t, "DROP ROLE pgtest_reader") })
	conn := d.ConnAs(t, "pgtest_reader", "it's secret")
	var user string
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT current_user").Scan(&user))
	require.Equal(t, "pgtest_reader", user)
}

func TestDiffRows(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a, b    []string
		want    []string // substrings of the diff; none means equal
		notWant []string
	}{
		{name: "equal in any order", a: []string{"(1,x)", "(2,y)"}, b: []string{"(2,y)", "(1,x)"}},
		{name: "both empty", a: nil, b: []string{}},
		{name: "changed value", a: []string{"(1,x)", "(2,y)"}, b: []string{"(1,x)", "(2,z)"},
			want: []string{"2 (-) vs 2 (+)", "- (2,y)", "+ (2,z)"}, notWant: []string{"(1,x)"}},
		{name: "missing row", a: []string{"(1,x)", "(2,y)"}, b: []string{"(1,x)"},
			want: []string{"2 (-) vs 1 (+)", "- (2,y)"}},
		{name: "duplicate counts", a: []string{"(1,x)", "(1,x)"}, b: []string{"(1,x)"},
			want: []string{"1 rows only in -, 0 only in +", "- (1,x)"}},
		{name: "long diff is cut", a: manyRows("a", 25), b: nil,
			want: []string{"- (a0)\n", "- (a17)\n", "... 15 more"}, notWant: []string{"(a9)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diff := pgtest.DiffRows(tc.a, tc.b)
			if len(tc.want) == 0 {
				require.Empty(t, diff)
				return
			}
			for _, w := range tc.want {
				require.Contains(t, diff, w)
			}
			for _, w := range tc.notWant {
				require.NotContains(t, diff, w)
			}
		})
	}
}

func manyRows(prefix string, n int) []string {
	var rows []string
	for i := range n {
		rows = append(rows, fmt.Sprintf("(%s%d)", prefix, i))
	}
	return rows
}

// The two servers get different TimeZone (one through Reload, which also
// exercises a server restart, one per database); TableRows must not care.
func TestTableRowsIgnoresServerTimeZone(t *testing.T) {
	a, b := pgtest.Server("a"), pgtest.Server("b")
	require.NoError(t, b.Reload(map[string]string{"TimeZone": "America/New_York"}))
	t.Cleanup(func() { require.NoError(t, b.Reload(map[string]string{"TimeZone": ""})) })
	da, db := pgtest.NewDB(t, a), pgtest.NewDB(t, b)
	da.Exec(t, "ALTER DATABASE "+pgx.Identifier{da.Name}.Sanitize()+" SET TimeZone = 'Asia/Tokyo'")
	da.Pool.Reset() // database defaults apply to new sessions only

	const ddl = `CREATE TABLE "My Tab" (id int PRIMARY KEY, at timestamptz, note text, f float8, b bytea);
		INSERT INTO "My Tab" VALUES (1, '2024-03-01 12:00:00+00', 'a "quoted", note', 0.1, '\x00ff'), (2, NULL, '', NULL, NULL)`
	da.Exec(t, ddl)
	db.Exec(t, ddl)
	require.Equal(t, "America/New_York", db.QueryString(t, "SHOW TimeZone"))
	require.Equal(t, "Asia/Tokyo", da.QueryString(t, "SHOW TimeZone"))
	require.NotEqual(t, da.QueryString(t, `SELECT at FROM "My Tab" WHERE id = 1`),
		db.QueryString(t, `SELECT at FROM "My Tab" WHERE id = 1`), "plain sessions should render the time differently")

	rows := da.TableRows(t, `public."My Tab"`)
	require.Equal(t, []string{
		`(1,"2024-03-01 12:00:00+00","a ""quoted"", note",0.1,"\\x00ff")`,
		`(2,,"",,)`,
	}, rows)
	require.Equal(t, rows, db.TableRows(t, `public."My Tab"`))
	require.Equal(t, []string{`("2024-03-01 12:00:00+00",1)`, `(,2)`}, db.TableRows(t, `"My Tab"`, "at", "id"))
	pgtest.AssertSameRows(t, da, `"My Tab"`, db, `"My Tab"`)
}

func TestKillRestartKeepsDataAndPort(t *testing.T) {
	s := pgtest.Server("b")
	d := pgtest.NewDB(t, s)
	d.Exec(t, "CREATE TABLE k (id int PRIMARY KEY); INSERT INTO k VALUES (1), (2)")
	port := s.Port

	require.NoError(t, s.Kill())
	require.Error(t, d.ExecErr("SELECT 1"), "server still answers after Kill")
	require.NoError(t, s.Restart(context.Background()))
	require.Equal(t, port, s.Port)

	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		if err := d.ExecErr("SELECT 1"); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	require.Equal(t, []string{"(1)", "(2)"}, d.TableRows(t, "k"))
	require.Contains(t, s.ConnString("x"), fmt.Sprintf("port=%d ", port))
}
