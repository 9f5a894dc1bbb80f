package testpeers

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

func TestRunClient(t *testing.T) {
	ctx := context.Background()
	stdout, stderr, err := RunClient(t, ctx, "sh", "-c", "echo out; echo err >&2; exit 3")
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Fatalf("err = %v, want exit status 3", err)
	}
	if stdout != "out\n" || stderr != "err\n" {
		t.Fatalf("stdout %q stderr %q", stdout, stderr)
	}

	stdout, _, err = Cmd{Name: "sh", Args: []string{"-c", "cat; echo \"$X\""}, Stdin: []byte("in\n"), Env: []string{"X=env"}}.Run(t, ctx)
	if err != nil || stdout != "in\nenv\n" {
		t.Fatalf("stdin/env: %q, %v", stdout, err)
	}
}

// TestRunClientTimeout: a client that hangs is killed at the timeout and
// the error says so.
func TestRunClientTimeout(t *testing.T) {
	_, _, err := Cmd{Name: "sh", Args: []string{"-c", "exec sleep 60"}, Timeout: 200 * time.Millisecond}.Run(t, context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
}
