// `pgshadow status -check`: shadow_status as an alert check in the manner of
// check_postgres and the Nagios plugins: one line of verdict and perfdata on
// stdout, and the verdict as the exit code.

package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/pgshadow/pgshadow/internal/pgsession"
)

// The plugin verdicts and their exit codes.
type verdict int

const (
	ok verdict = iota
	warning
	critical
	unknown
)

func (v verdict) String() string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[v]
}

// thresholds of -check; zero means no limit.
type thresholds struct {
	warnLag, critLag         time.Duration
	warnPending, critPending int64
}

func isCheckFlag(arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return strings.HasPrefix(arg, "-") && name == "check"
}

// checkVerdict prints the plugin's one line and ends the program with the
// verdict's exit code.
func checkVerdict(v verdict, text, perfdata string) error {
	line := "PGSHADOW " + v.String() + " - " + strings.Join(strings.Fields(text), " ")
	if perfdata != "" {
		line += " | " + perfdata
	}
	fmt.Println(line)
	return exitCode(v)
}

// checkSQL reads, per subscription the role may see, what -check judges:
// pending keys, the age of the oldest pending change, the last error.
const checkSQL = `SELECT target, "table"::text, coalesce(pending_keys, 0),
       coalesce(extract(epoch FROM oldest_pending_age), 0)::float8, last_error
  FROM %s.shadow_status WHERE $1 = '' OR target = $1 ORDER BY target, "table"::text`

func runCheck(ctx context.Context, dsn, target string, th thresholds) error {
	conn, err := connectDB(ctx, dsn)
	if err != nil {
		return checkVerdict(unknown, "cannot connect: "+err.Error(), "")
	}
	defer conn.Close(context.WithoutCancel(ctx))
	schema, err := pgsession.APISchema(ctx, conn)
	if err != nil {
		return checkVerdict(unknown, err.Error(), "")
	}
	rows, err := conn.Query(ctx, fmt.Sprintf(checkSQL, schema), target)
	if err != nil {
		return checkVerdict(unknown, "cannot read shadow_status: "+err.Error(), "")
	}
	defer rows.Close()
	var (
		v                 = ok
		subs, errs        int
		maxPending, total int64
		maxLag            float64
		problems          []string
	)
	for rows.Next() {
		var tgt, tbl string
		var pending int64
		var lag float64
		var lastErr *string
		if err := rows.Scan(&tgt, &tbl, &pending, &lag, &lastErr); err != nil {
			return checkVerdict(unknown, "cannot read shadow_status: "+err.Error(), "")
		}
		subs++
		total += pending
		maxPending = max(maxPending, pending)
		maxLag = max(maxLag, lag)
		sv, why := ok, ""
		lagD := time.Duration(lag * float64(time.Second)).Round(time.Second)
		switch {
		case lastErr != nil:
			errs++
			sv, why = critical, "error: "+firstLine(*lastErr, 200)
		case th.critLag > 0 && lagD >= th.critLag:
			sv, why = critical, fmt.Sprintf("lag %s", lagD)
		case th.critPending > 0 && pending >= th.critPending:
			sv, why = critical, fmt.Sprintf("%d keys pending", pending)
		case th.warnLag > 0 && lagD >= th.warnLag:
			sv, why = warning, fmt.Sprintf("lag %s", lagD)
		case th.warnPending > 0 && pending >= th.warnPending:
			sv, why = warning, fmt.Sprintf("%d keys pending", pending)
		}
		if sv > ok {
			v = max(v, sv)
			problems = append(problems, fmt.Sprintf("%s %s %s", tgt, tbl, why))
		}
	}
	if err := rows.Err(); err != nil {
		return checkVerdict(unknown, "cannot read shadow_status: "+err.Error(), "")
	}
	perf := fmt.Sprintf("subscriptions=%d errors=%d;;1;0 pending=%d;%s;%s;0 pending_total=%d;;;0 lag=%.3fs;%s;%s;0",
		subs, errs, maxPending, limit(th.warnPending), limit(th.critPending), total,
		maxLag, seconds(th.warnLag), seconds(th.critLag))
	var text string
	switch {
	case subs == 0 && target != "":
		text = fmt.Sprintf("no subscriptions of target %q visible to this role", target)
	case subs == 0:
		text = "no subscriptions visible to this role"
	case len(problems) == 0:
		text = fmt.Sprintf("%d subscriptions, %d keys pending, oldest pending %s",
			subs, total, time.Duration(maxLag*float64(time.Second)).Round(time.Second))
	default:
		shown := problems[:min(len(problems), 3)]
		text = fmt.Sprintf("%d of %d subscriptions: %s", len(problems), subs, strings.Join(shown, "; "))
		if len(problems) > len(shown) {
			text += fmt.Sprintf("; and %d more", len(problems)-len(shown))
		}
	}
	return checkVerdict(v, text, perf)
}

// firstLine returns the first line of s, cut to n characters.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}

func limit(n int64) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprint(n)
}

func seconds(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprint(math.Round(d.Seconds()))
}
