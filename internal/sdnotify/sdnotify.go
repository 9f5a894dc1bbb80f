// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)) without libsystemd: one datagram per state change over
// the AF_UNIX socket named in $NOTIFY_SOCKET.
//
// Typical use in a Type=notify service:
//
//	// after every listener is up
//	sdnotify.Notify(sdnotify.Ready)
//	if iv := sdnotify.WatchdogInterval(); iv > 0 {
//		// in the daemon's main loop, next to the signal cases:
//		tick := time.NewTicker(iv / 2) // half the interval (sd_watchdog_enabled(3))
//		defer tick.Stop()
//		// case <-tick.C: sdnotify.Notify(sdnotify.Watchdog)
//	}
//	// on SIGHUP
//	sdnotify.Notify(sdnotify.Reloading()) // then Ready when the new config is live (or the old one kept)
//	// on SIGTERM
//	sdnotify.Notify(sdnotify.Stopping)
//
// Without $NOTIFY_SOCKET (not under systemd, or Type=simple) every call is
// a no-op returning nil, so callers need no "am I under systemd" branch.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// States understood by systemd (sd_notify(3)). Several may be sent in one
// message separated by newlines.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Status returns a STATUS= line, a free-form one-line text that
// "systemctl status" shows. Newlines in text are replaced by spaces so
// they cannot inject further assignments.
func Status(text string) string {
	return "STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(text)
}

// Reloading returns the message announcing a configuration reload:
// RELOADING=1 plus MONOTONIC_USEC, which systemd (>= 253) uses to tell
// this reload from an earlier one. Follow it with Ready once the reload
// is over, whether the new configuration was taken or the old one kept.
func Reloading() string {
	if us, ok := monotonicUsec(); ok {
		return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatUint(us, 10)
	}
	return "RELOADING=1"
}

// writeTimeout bounds one send: a datagram to a live systemd is accepted
// at once; a stuck or full receive queue must not stall the daemon.
const writeTimeout = 2 * time.Second

// ErrBadSocket: $NOTIFY_SOCKET names neither an absolute path nor an
// abstract socket ("@name").
var ErrBadSocket = errors.New("sdnotify: NOTIFY_SOCKET is not an absolute path or @abstract name")

// Notify sends state (one or more "KEY=VALUE" lines) to the service
// manager. It returns nil without doing anything when $NOTIFY_SOCKET is
// unset. The daemon should log, not fail on, an error: the service
// manager may be gone during shutdown.
func Notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	// Go's Linux sockaddr conversion turns a leading '@' into the NUL
	// that marks an abstract socket name (unix(7)), which is exactly
	// systemd's notation.
	if name[0] != '/' && name[0] != '@' {
		return fmt.Errorf("%w: %q", ErrBadSocket, name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send: %w", err)
	}
	return nil
}

// WatchdogInterval returns the service's watchdog timeout (WatchdogSec=,
// passed as $WATCHDOG_USEC), or 0 when the watchdog is not enabled for
// this process: the variable is unset or malformed, or $WATCHDOG_PID names
// another process (the variables were inherited by a child).
//
// systemd kills the service when no WATCHDOG=1 arrives within the
// interval; sd_watchdog_enabled(3) recommends pinging at half of it, which
// leaves one full half-interval of slack for a late tick.
func WatchdogInterval() time.Duration {
	s := os.Getenv("WATCHDOG_USEC")
	if s == "" {
		return 0
	}
	us, err := strconv.ParseUint(s, 10, 63)
	if err != nil || us == 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil || pid != os.Getpid() {
			return 0
		}
	}
	return time.Duration(us) * time.Microsecond
}
