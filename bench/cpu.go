// CPU time spent by the benchmark's servers and the benchmark itself. On a
// shared machine wall-clock time swings with other people's load; the CPU
// time our processes burn for the same work swings far less, so each figure
// reports both and the CPU ratio tells real cost from noise.

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux).
const clockTicks = 100

// cpuSeconds is the CPU time used so far by the three servers (every
// postmaster, the children it has reaped, and its live children: backends,
// walsenders, apply workers) plus this process and the children it has
// waited for (pgbench).
func (b *bench) cpuSeconds() float64 {
	post := map[int]bool{}
	for _, s := range b.servers() {
		if pid := postmasterPID(s.DataDir); pid > 0 {
			post[pid] = true
		}
	}
	var ticks int64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := procStat(pid)
		if !ok {
			continue
		}
		switch {
		case post[pid]:
			ticks += st.utime + st.stime + st.cutime + st.cstime
		case post[st.ppid]:
			ticks += st.utime + st.stime
		}
	}
	secs := float64(ticks) / clockTicks
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			secs += tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
	}
	return secs
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

type stat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// procStat reads /proc/<pid>/stat; the command name (field 2) may hold
// spaces, so fields are counted after its closing parenthesis.
func procStat(pid int) (stat, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, false
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17
	if len(f) < 15 {
		return stat{}, false
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	return stat{ppid: int(n(4)), utime: n(14), stime: n(15), cutime: n(16), cstime: n(17)}, true
}

func postmasterPID(dataDir string) int {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	return pid
}

// measure runs f and returns its wall-clock and CPU seconds.
func (b *bench) measure(f func() error) (wall, cpu float64, err error) {
	c0, t0 := b.cpuSeconds(), time.Now()
	err = f()
	return time.Since(t0).Seconds(), b.cpuSeconds() - c0, err
}
