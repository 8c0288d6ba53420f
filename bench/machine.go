// The machine description written at the top of BENCHMARKS.md: without it
// the numbers cannot be compared with another run.

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
)

func (b *bench) describeMachine() error {
	rp := b.rep
	model := cpuinfo("model name")
	if mhz := cpuinfo("cpu MHz"); mhz != "" {
		model += ", " + mhz + " MHz"
	}
	rp.machine = append(rp.machine,
		fmt.Sprintf("CPU: %s", model),
		fmt.Sprintf("nproc: %d", runtime.NumCPU()),
		fmt.Sprintf("memory: %s", meminfo("MemTotal")),
		fmt.Sprintf("kernel: %s", strings.TrimSpace(run1("uname", "-sr"))),
		fmt.Sprintf("OS: %s", osRelease()),
		fmt.Sprintf("Go: %s", runtime.Version()),
		"all three servers and the benchmark client share this machine (loopback TCP)",
	)
	c, err := b.connect(b.src, benchDB)
	if err != nil {
		return err
	}
	v, err := b.queryText(c, "SELECT version()")
	if err != nil {
		return err
	}
	rp.machine = append(rp.machine, "PostgreSQL: "+v)
	if ext, err := b.queryText(c, "SELECT coalesce((SELECT default_version FROM pg_available_extensions WHERE name = 'pgshadow'), 'NOT INSTALLED')"); err == nil {
		rp.machine = append(rp.machine, "pgshadow: "+ext+" (installed extension script), source tree "+sourceTree())
		if ext == "NOT INSTALLED" {
			return fmt.Errorf("the pgshadow extension is not installed: run make install (make bench does)")
		}
	}
	if ext, err := b.queryText(c, "SELECT coalesce((SELECT default_version FROM pg_available_extensions WHERE name = 'mimeo'), 'not installed')"); err == nil {
		rp.machine = append(rp.machine, "mimeo: "+ext)
	}

	var keys []string
	for k := range serverSettings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var set []string
	for _, k := range keys {
		set = append(set, k+"="+serverSettings[k])
	}
	rp.settings = append(rp.settings,
		"harness defaults (internal/pgserver): fsync=off, full_page_writes=off, max_connections=200, listen on 127.0.0.1, scram-sha-256",
		"added by the benchmark on every server: "+strings.Join(set, ", "),
		"logical replication source only: wal_level=logical, max_wal_senders=10, max_replication_slots=10 (the other two keep wal_level=replica)",
		"target only: wal_retrieve_retry_interval=100ms (PostgreSQL 15 starts logical apply workers at most once per this interval, 5 s by default; figure 4's catch-up would otherwise time that pause)",
		"everything else is PostgreSQL's default (jit, work_mem, parallel workers, synchronous_commit=on except where a figure says otherwise)",
		"VACUUM and CHECKPOINT run in the untimed preparation before each measurement, on both servers",
	)
	return nil
}

// procField is the value of the first "key: value" line of a /proc file.
func procField(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func cpuinfo(key string) string { return procField("/proc/cpuinfo", key) }

func meminfo(key string) string {
	var kb int64
	if _, err := fmt.Sscanf(procField("/proc/meminfo", key), "%d", &kb); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

func osRelease() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "unknown"
}

func run1(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return string(out)
}

// loadavg is the first three fields of /proc/loadavg: other work on the
// machine shows up in the figures, so the report records how much there was.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// sourceTree names the commit the benchmark was run from and whether sql/
// had uncommitted changes (make bench installs the working tree).
func sourceTree() string {
	head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	desc := "at commit " + strings.TrimSpace(string(head))
	if dirty, err := exec.Command("git", "status", "--porcelain", "--", "sql").Output(); err == nil && len(dirty) > 0 {
		desc += ", with uncommitted changes in sql/"
	}
	return desc
}
