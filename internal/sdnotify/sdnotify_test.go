package sdnotify

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket the test owns and points $NOTIFY_SOCKET
// at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return c
}

// shortDir: sun_path holds 108 bytes, t.TempDir() can be longer.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyPathSocketInOrder(t *testing.T) {
	c := listen(t, filepath.Join(shortDir(t), "notify"))
	want := []string{Ready, Status("serving 3 listeners"), Reloading(), Ready, Watchdog, Stopping}
	for _, s := range want {
		if err := Notify(s); err != nil {
			t.Fatalf("Notify(%q): %v", s, err)
		}
	}
	for i, w := range want {
		if got := recv(t, c); got != w {
			t.Fatalf("datagram %d = %q, want %q", i, got, w)
		}
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	b := make([]byte, 8)
	rand.Read(b)
	c := listen(t, "@oauthbridge-test-"+hex.EncodeToString(b))
	if err := Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != Ready {
		t.Fatalf("got %q, want %q", got, Ready)
	}
}

func TestNotifyWithoutSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify(Ready); err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET = %v, want nil", err)
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if err := Notify(Ready); !errors.Is(err, ErrBadSocket) {
		t.Fatalf("relative path: err = %v, want ErrBadSocket", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(shortDir(t), "absent"))
	if err := Notify(Ready); err == nil || !strings.HasPrefix(err.Error(), "sdnotify: ") {
		t.Fatalf("missing socket: err = %v, want an sdnotify error", err)
	}
}

func TestStatusCannotInjectAssignments(t *testing.T) {
	if got := Status("a\nREADY=1\rb"); got != "STATUS=a READY=1 b" {
		t.Fatalf("Status = %q", got)
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	first := strings.Split(Reloading(), "\n")
	second := strings.Split(Reloading(), "\n")
	if first[0] != "RELOADING=1" || len(first) != 2 || len(second) != 2 {
		t.Fatalf("Reloading() = %q, want RELOADING=1 and MONOTONIC_USEC", first)
	}
	parse := func(line string) uint64 {
		v, ok := strings.CutPrefix(line, "MONOTONIC_USEC=")
		n, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil || n == 0 {
			t.Fatalf("bad line %q", line)
		}
		return n
	}
	if a, b := parse(first[1]), parse(second[1]); b < a {
		t.Fatalf("monotonic clock went back: %d then %d", a, b)
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"60000000", "", 60 * time.Second},
		{"60000000", me, 60 * time.Second},
		{"60000000", strconv.Itoa(os.Getpid() + 1), 0}, // inherited by a child
		{"60000000", "x", 0},
		{"0", "", 0},
		{"-5", "", 0},
		{"soon", "", 0},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		if got := WatchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}
