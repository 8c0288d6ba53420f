package replication

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"
)

// TestApplyTiming times a push of 100k updated rows by each apply (upsert,
// and delete + insert for a target role without UPDATE), with row values
// staged or in the statements (pgshadow.stage_values), interleaved. A
// measurement, not a check: it runs only with PGSHADOW_APPLY_TIMING=1.
func TestApplyTiming(t *testing.T) {
	if os.Getenv("PGSHADOW_APPLY_TIMING") == "" {
		t.Skip("a measurement: set PGSHADOW_APPLY_TIMING=1")
	}
	p := newPair(t)
	const ddl = "CREATE TABLE %s (id bigint PRIMARY KEY, i int NOT NULL, s text NOT NULL, ts timestamptz NOT NULL, n numeric NOT NULL)"
	p.Src.Exec(t, fmt.Sprintf(ddl, "tbl"))
	p.Dst.Exec(t, fmt.Sprintf(ddl, "tbl")+"; "+fmt.Sprintf(ddl, "tbl_r"))
	p.Src.Exec(t, "INSERT INTO tbl SELECT g, g, md5(g::text) || 'abcdefghijklmnopqr', now(), g * 1.5 FROM generate_series(1, 100000) g")
	p.Subscribe(t, "tbl")
	// a second target on the same database, as a role that may not UPDATE
	role(t, p.Dst.Server, "apply_timing_r", "pw")
	p.Dst.Exec(t, "GRANT USAGE ON SCHEMA public TO apply_timing_r; GRANT SELECT, INSERT, DELETE ON tbl_r TO apply_timing_r")
	t.Cleanup(func() { p.Dst.Exec(t, "DROP TABLE tbl_r; REVOKE ALL ON SCHEMA public FROM apply_timing_r") })
	p.Src.Exec(t, fmt.Sprintf("CREATE SERVER tgt2 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %s, port %s, dbname %s)",
		lit(p.Dst.Server.Host), lit(fmt.Sprint(p.Dst.Server.Port)), lit(p.Dst.Name)))
	p.Src.Exec(t, "CREATE USER MAPPING FOR CURRENT_USER SERVER tgt2 OPTIONS (user 'apply_timing_r', password 'pw')")
	p.Src.Exec(t, "SELECT shadow_add_target('t2', 'tgt2')")
	p.Src.Exec(t, "SELECT shadow_subscribe('t2', 'tbl', dest => 'public.tbl_r')")
	times := map[string][]time.Duration{}
	for round := 0; round < 8; round++ {
		for _, staged := range []string{"on", "off"} {
			p.Src.Exec(t, "UPDATE tbl SET i = i + 1, ts = ts + interval '1 second'")
			p.Src.Exec(t, "VACUUM ANALYZE tbl")
			p.Dst.Exec(t, "VACUUM ANALYZE tbl")
			p.Dst.Exec(t, "VACUUM ANALYZE tbl_r")
			for _, tg := range []string{"t1", "t2"} {
				c := p.Src.Conn(t)
				if _, err := c.Exec(context.Background(), "SET pgshadow.stage_values = "+staged); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if _, err := c.Exec(context.Background(), "SELECT * FROM shadow_export($1)", tg); err != nil {
					t.Fatal(err)
				}
				name := map[string]string{"t1": "upsert", "t2": "delete+insert"}[tg] + " staged=" + staged
				times[name] = append(times[name], time.Since(start))
				c.Close(context.Background())
			}
		}
	}
	p.Same(t, "tbl", "tbl")
	p.Same(t, "tbl", "tbl_r")
	var names []string
	for k := range times {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		d := times[k]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		t.Logf("%-28s min %6.0f ms  median %6.0f ms  all %v", k, millis(d[0]), millis(d[len(d)/2]), d)
	}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
