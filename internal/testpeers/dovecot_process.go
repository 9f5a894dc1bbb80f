package testpeers

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start writes dovecot.conf with fresh ports, runs `dovecot -F` and waits
// until the IMAP greeting arrives (which login processes send only once
// the auth process answers).
func (d *Dovecot) start(bin string, cfg *dovecotConfig) error {
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	cfg.IMAP, cfg.IMAPS, cfg.POP3, cfg.POP3S, cfg.Submission, cfg.Submissions =
		ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	d.imap, d.imaps, d.pop3, d.pop3s, d.sub, d.subs =
		addr(cfg.IMAP), addr(cfg.IMAPS), addr(cfg.POP3), addr(cfg.POP3S), addr(cfg.Submission), addr(cfg.Submissions)

	conf, err := renderTemplate(dovecotConfTmpl, cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	os.Remove(d.logPath) // a retry starts with a fresh log

	cmd := exec.Command(bin, "-F", "-c", d.confPath)
	cmd.Env = d.env
	cmd.Dir = d.dir
	cmd.Stdout = &d.stderr
	cmd.Stderr = &d.stderr
	// Setpgid: Dovecot and all its children form one process group that
	// Stop can signal (and kill if it must). Pdeathsig: if the test binary
	// dies (say a go test -timeout panic), the master gets SIGTERM and its
	// children follow it. The kernel sends that signal when the thread that
	// forked exits, so the owning goroutine stays locked to its thread
	// until the process is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	d.cmd = cmd
	exited := d.exited
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		d.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return err
	}

	// Polling is the only way here: dovecot gives no readiness signal in
	// the foreground. Each probe is one connection; the deadline is
	// generous for a loaded CI machine.
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("dovecot exited at start: %v\n%s%s", d.waitErr, d.stderr.String(), d.readLog())
		default:
		}
		if lastErr = probeGreeting(d.imap); lastErr == nil {
			return nil
		}
		select {
		case <-exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
	d.kill()
	return fmt.Errorf("dovecot not ready after 30s: %v\n%s%s", lastErr, d.stderr.String(), d.readLog())
}

// probeGreeting connects to a plaintext IMAP port and reads the greeting.
func probeGreeting(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	_, _ = c.Write([]byte("a LOGOUT\r\n"))
	return nil
}

// kill ends the master and whatever is left of its process group.
func (d *Dovecot) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
}

// Stop shuts Dovecot down and waits for it. Sessions end as when a real
// server stops: every imap, pop3 and submission process gets SIGTERM first
// and says its shutdown goodbye (IMAP "* BYE Server shutting down."), and
// only once those and their TLS-proxying login processes are gone does the
// rest get SIGTERM. (SIGTERM to the master alone makes it wait a second or,
// with a client connected, about ten; to the whole group at once kills the
// login processes before they forward the goodbye.) StartDovecot registers
// Stop with t.Cleanup; calling it earlier is allowed, later calls do
// nothing.
func (d *Dovecot) Stop() {
	d.stopOnce.Do(func() {
		if d.cmd != nil && d.cmd.Process != nil {
			pgid := d.cmd.Process.Pid
			select {
			case <-d.exited:
			default:
				d.endSessions(pgid)
				_ = syscall.Kill(-pgid, syscall.SIGTERM)
				select {
				case <-d.exited:
				case <-time.After(15 * time.Second):
					d.t.Logf("testpeers: dovecot did not stop within 15s of SIGTERM; killing it")
					d.kill()
				}
			}
			// The master has gone; make sure no child of it outlives the
			// test (they share its process group).
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		d.intro.close()
		d.capture.close()
	})
}

// sessionProcs are the processes that hold client sessions: the mail
// processes, and the login processes that proxy TLS for them.
var sessionProcs = map[string]bool{
	"imap": true, "pop3": true, "submission": true,
	"imap-login": true, "pop3-login": true, "submission-login": true,
}

// endSessions sends SIGTERM to the mail processes of process group pgid and
// waits (bounded) until no session process is left.
func (d *Dovecot) endSessions(pgid int) {
	for pid, comm := range groupProcs(pgid) {
		if comm == "imap" || comm == "pop3" || comm == "submission" {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	// No event announces a process's exit to a non-parent: poll /proc.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		left := false
		for _, comm := range groupProcs(pgid) {
			left = left || sessionProcs[comm]
		}
		if !left {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupProcs lists the live processes of process group pgid as pid ->
// command name, from /proc (Linux).
func groupProcs(pgid int) map[int]string {
	procs := make(map[int]string)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return procs
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces or ')'.
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(string(b[closing+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			procs[pid] = string(b[open+1 : closing])
		}
	}
	return procs
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
