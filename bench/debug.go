package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
)

// runtimeStats is the bridge child's memory as its runtime sees it.
type runtimeStats struct {
	HeapInuse  uint64 // bytes in in-use heap spans
	HeapAlloc  uint64 // bytes of live (and not yet swept) objects
	StackInuse uint64 // goroutine stacks
	Sys        uint64
	Goroutines int
	RSSKiB     int64 // VmRSS from /proc/self/status
}

// debugServer is the bridge child's debug endpoint on loopback:
//
//	/debug/pprof/...          net/http/pprof
//	/debug/bench/stats[?gc=1] runtimeStats as JSON; gc=1 first runs a GC
//	                          and returns freed memory to the OS
//	/debug/bench/cpu/start    starts a CPU profile into memory
//	/debug/bench/cpu/stop     stops it and returns it
//	/metrics                  the bridge's Prometheus metrics
type debugServer struct {
	addr string
	srv  *http.Server
	done chan struct{}

	mu  sync.Mutex // guards cpu
	cpu *bytes.Buffer
}

func startDebugServer(m *metrics.Metrics) (*debugServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &debugServer{addr: ln.Addr().String(), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/bench/stats", d.stats)
	mux.HandleFunc("/debug/bench/cpu/start", d.cpuStart)
	mux.HandleFunc("/debug/bench/cpu/stop", d.cpuStop)
	mux.Handle("/metrics", m.Handler())
	d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(d.done)
		d.srv.Serve(ln)
	}()
	return d, nil
}

func (d *debugServer) close() {
	d.srv.Close()
	<-d.done
}

func (d *debugServer) stats(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("gc") == "1" {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := readRSS(os.Getpid())
	json.NewEncoder(w).Encode(runtimeStats{
		HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse,
		Sys: ms.Sys, Goroutines: runtime.NumGoroutine(), RSSKiB: rss,
	})
}

func (d *debugServer) cpuStart(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cpu != nil {
		http.Error(w, "already profiling", http.StatusConflict)
		return
	}
	buf := &bytes.Buffer{}
	if err := rpprof.StartCPUProfile(buf); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d.cpu = buf
}

func (d *debugServer) cpuStop(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cpu == nil {
		http.Error(w, "not profiling", http.StatusConflict)
		return
	}
	rpprof.StopCPUProfile()
	w.Write(d.cpu.Bytes())
	d.cpu = nil
}

// readRSS returns VmRSS of process pid in KiB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("bench: no VmRSS in /proc status")
}

// debugClient talks to a bridge child's debug endpoint.
type debugClient struct{ base string }

var debugHTTP = &http.Client{Timeout: 2 * time.Minute}

func (c *debugClient) get(path string) ([]byte, error) {
	resp, err := debugHTTP.Get(c.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// stats reads the child's runtime stats, after a GC when gc is set.
func (c *debugClient) stats(gc bool) (runtimeStats, error) {
	path := "/debug/bench/stats"
	if gc {
		path += "?gc=1"
	}
	var s runtimeStats
	b, err := c.get(path)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	return s, err
}

// saveHeap writes the child's heap profile to file.
func (c *debugClient) saveHeap(file string) error {
	b, err := c.get("/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// saveGoroutines writes the child's goroutines, grouped by stack, as text.
func (c *debugClient) saveGoroutines(file string) error {
	b, err := c.get("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// cpuProfile starts a CPU profile in the child; the returned function
// stops it and writes it to file.
func (c *debugClient) cpuProfile(file string) (func() error, error) {
	if _, err := c.get("/debug/bench/cpu/start"); err != nil {
		return nil, err
	}
	return func() error {
		b, err := c.get("/debug/bench/cpu/stop")
		if err != nil {
			return err
		}
		return os.WriteFile(file, b, 0o644)
	}, nil
}
