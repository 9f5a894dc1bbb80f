package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuTime is the CPU time process pid has used so far: the sum over its
// threads of the first field of /proc/<pid>/task/<tid>/schedstat
// (nanoseconds on CPU), which is exact where /proc/<pid>/stat counts
// 10 ms ticks. Zero when unknown (pid 0, or no procfs).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "schedstat"))
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}

// cpuMeter measures the CPU time the benchmark client (this process), the
// bridge and the upstream (when it is one process: fakegmail) use during
// a span of work.
type cpuMeter struct {
	pids [3]int // client, bridge, upstream
}

// cpuUse is CPU time per process: client, bridge, upstream.
type cpuUse [3]time.Duration

func (t *target) cpuMeter() cpuMeter {
	return cpuMeter{pids: [3]int{os.Getpid(), t.br.info.PID, t.up.info.PID}}
}

func (m cpuMeter) read() cpuUse {
	var u cpuUse
	for i, pid := range m.pids {
		u[i] = cpuTime(pid)
	}
	return u
}

// span runs f and adds the CPU each process used meanwhile to acc.
func (m cpuMeter) span(acc *cpuUse, f func() error) error {
	before := m.read()
	err := f()
	after := m.read()
	for i := range acc {
		acc[i] += after[i] - before[i]
	}
	return err
}
