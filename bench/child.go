package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// The upstream (fakegmail) and the bridge run in processes of their own,
// so that the bridge's RSS is its own and so that neither shares a Go
// runtime (heap, GC, scheduler) with the clients that measure it. They are
// this same executable, re-run with roleEnv set: the parent writes one
// JSON spec line to the child's stdin, the child answers with one JSON line
// on stdout once it serves, and runs until its stdin reaches EOF (the
// parent stopping, or dying).
const roleEnv = "OAUTHBRIDGE_BENCH_ROLE"

const (
	roleUpstream = "upstream"
	roleBridge   = "bridge"
)

// RunChild runs this process as a benchmark child when the environment
// says so, and then exits; otherwise it returns at once. Call it first in
// main (and in TestMain).
func RunChild() {
	role := os.Getenv(roleEnv)
	if role == "" {
		return
	}
	var err error
	switch role {
	case roleUpstream:
		err = serveChild(runUpstreamChild)
	case roleBridge:
		err = serveChild(runBridgeChild)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childMain starts serving from spec and returns the reply to send, and a
// stop function that shuts everything down.
type childMain func(spec []byte) (reply any, stop func(), err error)

// serveChild reads the spec line, starts, replies, then waits for EOF on
// stdin and stops.
func serveChild(run childMain) error {
	raiseFileLimit()
	in := bufio.NewReader(os.Stdin)
	spec, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading spec: %w", err)
	}
	reply, stop, err := run(spec)
	if err != nil {
		return err
	}
	defer stop()
	if err := json.NewEncoder(os.Stdout).Encode(reply); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, in) // until the parent closes stdin
	return nil
}

// child is a running child process, owned by the parent that started it.
type child struct {
	role   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's result, read after exited
}

// startChild starts role with spec and decodes its reply into reply.
// Its stderr is kept (the last 64 KiB) for error reports, or copied to
// logTo when that is not nil.
func startChild(role string, spec, reply any, logTo io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	c := &child{role: role, cmd: cmd, stderr: &tailBuffer{max: 64 << 10, copyTo: logTo}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting %s child: %w", role, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	b, err := json.Marshal(spec)
	if err == nil {
		_, err = c.stdin.Write(append(b, '\n'))
	}
	if err == nil {
		// Up to 10 minutes: seeding a big maildrop on a loaded machine is slow.
		err = decodeWithin(stdout, reply, 10*time.Minute)
	}
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("bench: %s child: %w\n%s", role, err, c.stderr.String())
	}
	return c, nil
}

// decodeWithin decodes one JSON value from r or fails after d.
func decodeWithin(r io.Reader, v any, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- json.NewDecoder(r).Decode(v) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return errors.New("no reply in time")
	}
}

// stop closes the child's stdin and waits for it to exit, killing it
// after 30s.
func (c *child) stop() error {
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	return c.err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu     sync.Mutex // guards b
	b      []byte
	max    int
	copyTo io.Writer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.copyTo != nil {
		t.copyTo.Write(p)
	}
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max { // trim rarely: a busy child logs a line per login
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b[max(0, len(t.b)-t.max):])
}
