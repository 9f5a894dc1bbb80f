package testpeers

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// DefaultClientTimeout bounds a client run whose context has no deadline.
const DefaultClientTimeout = 2 * time.Minute

// Cmd describes one run of a real client program.
type Cmd struct {
	Name string   // program, looked up like Require does
	Args []string // arguments
	// Stdin is fed to the program; nil means no input (/dev/null).
	Stdin []byte
	// Env is added to the test process's environment (later entries win),
	// e.g. "HOME=" + t.TempDir() for clients that read dot-files.
	Env []string
	// Dir is the working directory; "" means the test's.
	Dir string
	// Timeout bounds the run when ctx has no earlier deadline; zero means
	// DefaultClientTimeout.
	Timeout time.Duration
}

// RunClient runs a real client program and returns what it printed. It
// calls Require first (so a missing program skips or fails the test), kills
// the program when ctx is done or the default timeout passes, and writes
// the command line and both outputs to the test log if the test fails
// (now or later). err is the program's exit error, if any.
func RunClient(t testing.TB, ctx context.Context, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return Cmd{Name: name, Args: args}.Run(t, ctx)
}

// Run runs c; see RunClient.
func (c Cmd) Run(t testing.TB, ctx context.Context) (stdout, stderr string, err error) {
	t.Helper()
	Require(t, c.Name)
	path, lerr := LookPath(c.Name)
	if lerr != nil {
		t.Fatal(lerr) // unreachable: Require ended the test
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	// A client that forks a helper keeping our pipes open must not hang the
	// test after the client itself was killed.
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if ctx.Err() != nil && err != nil {
		err = errors.Join(err, ctx.Err())
	}
	stdout, stderr = outBuf.String(), errBuf.String()
	line := c.Name + " " + strings.Join(c.Args, " ")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client run: %s\n  took %v, err: %v\n  stdout:\n%s\n  stderr:\n%s",
				line, elapsed.Round(time.Millisecond), err, indent(stdout), indent(stderr))
		}
	})
	return stdout, stderr, err
}

// indent prefixes every line of s for readable test logs.
func indent(s string) string {
	if s == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
