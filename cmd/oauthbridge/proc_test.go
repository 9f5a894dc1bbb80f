package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// The process-level tests run the real binary, built once per test run.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "oauthbridge-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "oauthbridge")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a running oauthbridge.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line
	stderr *syncBuffer
	done   chan struct{}
	err    error // of Wait, after done
}

// syncBuffer collects a process's stderr; waitFor waits for text in it.
type syncBuffer struct {
	mu      sync.Mutex // guards b and changed
	b       bytes.Buffer
	changed chan struct{} // closed and replaced at every Write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

// waitFor waits until the buffer holds substr, or timeout passes (false).
// The process's stderr reaches the buffer through os/exec's copying
// goroutine, so a line the process wrote may arrive a moment later.
func (s *syncBuffer) waitFor(substr string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		if strings.Contains(s.b.String(), substr) {
			s.mu.Unlock()
			return true
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hermeticEnv is the test process's environment without what would change
// the binary's behaviour.
func hermeticEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "OAUTHBRIDGE_CONFIG", "STATE_DIRECTORY", demoPortsEnv, "DISPLAY", "WAYLAND_DISPLAY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// start runs the binary with args; it is killed at cleanup if still running.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = hermeticEnv(env...)
	p := &proc{cmd: cmd, lines: make(chan string, 1000), stderr: &syncBuffer{}, done: make(chan struct{})}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	go func() {
		readers.Wait() // Wait closes stdout: read it all first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("stderr of %v:\n%s", args, p.stderr.String())
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%v still running after %v; stderr:\n%s", p.cmd.Args, timeout, p.stderr.String())
	}
	var xe *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &xe):
		return xe.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

// expect reads stdout lines until one contains substr, and returns it.
func (p *proc) expect(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("stdout ended before a line with %q; stderr:\n%s", substr, p.stderr.String())
			}
			if strings.Contains(l, substr) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line with %q within %v; stderr:\n%s", substr, timeout, p.stderr.String())
		}
	}
}

// runCmd runs the binary to completion with stdin and returns the exit
// code, stdout and stderr.
func runCmd(t *testing.T, stdin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = hermeticEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var xe *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &xe):
		return xe.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("run %v: %v", args, err)
	return -1, "", ""
}

// fixture is a fake Gmail and what a config file for it needs.
type fixture struct {
	fg     *fakegmail.Server
	dir    string // for files; state_dir is dir/state
	caFile string
}

const (
	alice = "alice@gmail.com"
	bob   = "bob@gmail.com"
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fg, err := fakegmail.Start(fakegmail.Options{Users: []string{alice, bob}, SeedMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fg.Close() })
	dir := t.TempDir()
	f := &fixture{fg: fg, dir: dir, caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(f.caFile, fg.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

var cheapArgon2 = proxy.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// listenerSpec is one listener line of a config file.
type listenerSpec struct{ proto, addr string }

// writeConfig writes a config for the fake with the listeners, alice and
// bob (passwords alicePw and "bob-pw"), and extra top-level YAML.
func (f *fixture) writeConfig(t *testing.T, name string, listeners []listenerSpec, alicePw, extra string) string {
	t.Helper()
	oa := f.fg.OAuth()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\n", filepath.Join(f.dir, "state"))
	fmt.Fprintf(&b, "throttle: {delay: 1ms, max_delay: 1ms}\n")
	b.WriteString(extra)
	b.WriteString("listeners:\n")
	for _, l := range listeners {
		fmt.Fprintf(&b, "  - {protocol: %s, listen: %q}\n", l.proto, l.addr)
	}
	fmt.Fprintf(&b, "providers:\n  fake:\n    imap: %q\n    pop3: %q\n    smtp: %q\n    smtp_tls: implicit\n    ca_file: %s\n"+
		"    auth_url: %s\n    token_url: %s\n    scopes: [\"https://mail.google.com/\"]\n"+
		"    app_only_scopes: [\"https://outlook.office365.com/.default\"]\n",
		f.fg.IMAPAddr(), f.fg.POP3Addr(), f.fg.SMTPAddr(), f.caFile, oa.AuthURL(), oa.TokenURL())
	b.WriteString("accounts:\n")
	for _, a := range []struct{ user, pw string }{{alice, alicePw}, {bob, "bob-pw"}} {
		h, err := proxy.HashPasswordParams(a.pw, cheapArgon2)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  - username: %s\n    provider: fake\n    client_id: %s\n    client_secret: %s\n"+
			"    passwords: [{name: test, hash: %q}]\n", a.user, oa.ClientID, oa.ClientSecret, h)
	}
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// seed stores a grant for user in the state dir, as a finished authorize.
func (f *fixture) seed(t *testing.T, user string) {
	t.Helper()
	store, err := tokens.OpenStore(filepath.Join(f.dir, "state"), "")
	if err != nil {
		t.Fatal(err)
	}
	access, refresh := f.fg.OAuth().Issue(user)
	now := time.Now()
	if err := store.Save(user, &tokens.Record{AccessToken: access, TokenType: "Bearer", Expiry: f.fg.OAuth().Expiry(access),
		RefreshToken: refresh, Flow: tokens.FlowAuthCode, ObtainedAt: now, RefreshTokenIssuedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// freeAddr is a loopback address whose port is free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
