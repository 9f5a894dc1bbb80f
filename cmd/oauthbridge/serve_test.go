package main

import (
	"encoding/base64"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// notifySocket is the test's end of $NOTIFY_SOCKET.
type notifySocket struct {
	conn *net.UnixConn
	path string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "ob-notify-") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{conn: conn, path: path}
}

// next returns the next datagram's first line ("READY=1", "RELOADING=1").
func (n *notifySocket) next(t *testing.T) string {
	t.Helper()
	n.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4096)
	k, err := n.conn.Read(buf)
	if err != nil {
		t.Fatalf("no sd_notify message: %v", err)
	}
	first, _, _ := strings.Cut(string(buf[:k]), "\n")
	return first
}

func (n *notifySocket) expect(t *testing.T, want string) {
	t.Helper()
	if got := n.next(t); got != want {
		t.Fatalf("sd_notify message %q, want %q", got, want)
	}
}

// rawIMAP is a line-level IMAP client, for the BYE text imapclient hides.
type rawIMAP struct {
	conn net.Conn
	tp   *textproto.Conn
}

func dialIMAP(t *testing.T, addr string) *rawIMAP {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &rawIMAP{conn: c, tp: textproto.NewConn(c)}
	if l, err := r.tp.ReadLine(); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting %q, %v", l, err)
	}
	return r
}

func (r *rawIMAP) cmd(t *testing.T, tag, command string) string {
	t.Helper()
	r.tp.PrintfLine("%s %s", tag, command)
	for {
		l, err := r.tp.ReadLine()
		if err != nil {
			t.Fatalf("%s: %v", command, err)
		}
		if strings.HasPrefix(l, tag+" ") {
			return l
		}
	}
}

func imapLoginErr(addr, user, pw string) error {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// serve under a service manager: READY=1 once listening; SIGHUP reloads
// (RELOADING=1, READY=1) adding a listener, removing another, changing a
// password while a session on the kept listener goes on; a broken file is
// refused with its key path and the old config stays; SIGTERM sends
// STOPPING=1, gives the IMAP client a BYE, and exits 0.
func TestServeNotifyReloadStop(t *testing.T) {
	f := newFixture(t)
	f.seed(t, alice)
	imapAddr, pop3Addr, smtpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cfgPath := f.writeConfig(t, "config.yaml", []listenerSpec{{"imap", imapAddr}, {"pop3", pop3Addr}}, "alice-pw", "")
	ns := newNotifySocket(t)
	p := start(t, []string{"NOTIFY_SOCKET=" + ns.path}, "serve", "-config", cfgPath)
	ns.expect(t, "READY=1")

	live := dialIMAP(t, imapAddr)
	if l := live.cmd(t, "a1", "LOGIN "+alice+" alice-pw"); !strings.HasPrefix(l, "a1 OK") {
		t.Fatalf("LOGIN: %q", l)
	}
	if l := live.cmd(t, "a2", "SELECT INBOX"); !strings.HasPrefix(l, "a2 OK") {
		t.Fatalf("SELECT: %q", l)
	}

	// Reload: pop3 removed, smtp added, alice's password changed.
	f.writeConfig(t, "config.yaml", []listenerSpec{{"imap", imapAddr}, {"smtp", smtpAddr}}, "alice-new-pw", "")
	p.cmd.Process.Signal(syscall.SIGHUP)
	ns.expect(t, "RELOADING=1")
	ns.expect(t, "READY=1")
	if l := live.cmd(t, "a3", "NOOP"); !strings.HasPrefix(l, "a3 OK") {
		t.Errorf("NOOP after the reload: %q", l)
	}
	if c, err := net.DialTimeout("tcp", pop3Addr, time.Second); err == nil {
		c.Close()
		t.Error("the removed pop3 listener still accepts")
	}
	if c, err := net.DialTimeout("tcp", smtpAddr, 5*time.Second); err != nil {
		t.Errorf("the added smtp listener: %v", err)
	} else {
		c.Close()
	}
	if err := imapLoginErr(imapAddr, alice, "alice-pw"); err == nil {
		t.Error("the old password works after the reload")
	}
	if err := imapLoginErr(imapAddr, alice, "alice-new-pw"); err != nil {
		t.Errorf("the new password: %v", err)
	}

	// A broken file: refused, with its key path; the running config stays.
	if err := os.WriteFile(cfgPath, []byte("listeners:\n  - {protocol: imap, listen: \"127.0.0.1:1\", tsl: none}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	ns.expect(t, "RELOADING=1")
	ns.expect(t, "READY=1")
	if !p.stderr.waitFor("listeners[0].tsl", 10*time.Second) {
		t.Errorf("the refused reload is not logged with its key path:\n%s", p.stderr.String())
	}
	if err := imapLoginErr(imapAddr, alice, "alice-new-pw"); err != nil {
		t.Errorf("login after a refused reload: %v", err)
	}

	// SIGTERM: STOPPING=1, BYE to the client, exit 0.
	p.cmd.Process.Signal(syscall.SIGTERM)
	ns.expect(t, "STOPPING=1")
	var last string
	for {
		l, err := live.tp.ReadLine()
		if err != nil {
			break
		}
		last = l
	}
	if !strings.HasPrefix(last, "* BYE") {
		t.Errorf("last line before the close: %q, want * BYE", last)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// A second signal during a graceful shutdown exits at once with 1: here
// the shutdown waits for an SMTP client in the middle of DATA.
func TestServeSecondSignal(t *testing.T) {
	_, p, ns, _, _ := serveInData(t, "shutdown_grace: 2m\n", "half a message")

	p.cmd.Process.Signal(syscall.SIGTERM)
	ns.expect(t, "STOPPING=1")
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 1 {
		t.Errorf("exit %d after the second signal, want 1", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the second signal took %v to end the process", d)
	}
	if !strings.Contains(p.stderr.String(), "second signal") {
		t.Errorf("stderr does not say why it stopped:\n%s", p.stderr.String())
	}
}

// SIGTERM lets a message in the middle of DATA complete: the client sends
// the rest, gets 250 only after the upstream accepted it, and the process
// exits 0.
func TestServeDrainsSMTPData(t *testing.T) {
	f, p, ns, tp, expect := serveInData(t, "", "sent across a shutdown")

	p.cmd.Process.Signal(syscall.SIGTERM)
	ns.expect(t, "STOPPING=1")
	tp.PrintfLine("the rest of the message")
	tp.PrintfLine(".")
	expect(250)
	sent := f.fg.Sent()
	if len(sent) != 1 || !strings.Contains(string(sent[0].Data), "the rest of the message") {
		t.Errorf("upstream received %d messages: %+v", len(sent), sent)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

// serveInData runs serve with one SMTP listener (extra appended to the
// config) and leaves a client logged in as alice in the middle of DATA,
// after a Subject header and the blank line.
func serveInData(t *testing.T, extra, subject string) (*fixture, *proc, *notifySocket, *textproto.Conn, func(int) string) {
	t.Helper()
	f := newFixture(t)
	f.seed(t, alice)
	smtpAddr := freeAddr(t)
	cfgPath := f.writeConfig(t, "config.yaml", []listenerSpec{{"smtp", smtpAddr}}, "alice-pw", extra)
	ns := newNotifySocket(t)
	p := start(t, []string{"NOTIFY_SOCKET=" + ns.path}, "serve", "-config", cfgPath)
	ns.expect(t, "READY=1")

	c, err := net.DialTimeout("tcp", smtpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(c)
	expect := func(code int) string {
		t.Helper()
		_, msg, err := tp.ReadResponse(code)
		if err != nil {
			t.Fatalf("want %d: %v", code, err)
		}
		return msg
	}
	expect(220)
	tp.PrintfLine("EHLO test")
	expect(250)
	tp.PrintfLine("AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00"+alice+"\x00alice-pw")))
	expect(235)
	tp.PrintfLine("MAIL FROM:<%s>", alice)
	expect(250)
	tp.PrintfLine("RCPT TO:<%s>", bob)
	expect(250)
	tp.PrintfLine("DATA")
	expect(354)
	tp.PrintfLine("Subject: %s", subject)
	tp.PrintfLine("")
	return f, p, ns, tp, expect
}

// With WatchdogSec (WATCHDOG_USEC) set, serve pings WATCHDOG=1.
func TestServeWatchdog(t *testing.T) {
	f := newFixture(t)
	cfgPath := f.writeConfig(t, "config.yaml", []listenerSpec{{"imap", "127.0.0.1:0"}}, "alice-pw", "")
	ns := newNotifySocket(t)
	start(t, []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=200000"}, "serve", "-config", cfgPath)
	ns.expect(t, "READY=1")
	ns.expect(t, "WATCHDOG=1")
	ns.expect(t, "WATCHDOG=1")
}
