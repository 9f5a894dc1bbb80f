package testpeers

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DovecotOptions configures StartDovecot.
type DovecotOptions struct {
	// Users get a home and an empty Maildir INBOX before Dovecot starts.
	// Any other name the token check accepts can log in too (its Maildir is
	// created on first use).
	Users []string

	// Introspect decides which access tokens are valid: it gets the bearer
	// token from XOAUTH2/OAUTHBEARER and returns the user it belongs to and
	// whether it is active. Dovecot accepts a login only when active and
	// the user equals the login name. Plug a fake OAuth server here. Nil
	// means the harness's own tokens: Dovecot.Token and Dovecot.Revoke.
	Introspect func(token string) (user string, active bool)

	// MailUser is the system account that owns the mail when the test runs
	// as root (Dovecot refuses uid 0 for mail). Default "nobody". Ignored
	// when not root: then everything runs as the invoking user.
	MailUser string

	// Debug turns on auth_debug, mail_debug and verbose_ssl.
	Debug bool

	// ExtraConfig is appended to dovecot.conf (later settings win), e.g.
	// "imap_idle_notify_interval = 10 secs" or a service process_limit.
	ExtraConfig string
}

// Dovecot is a running Dovecot 2.3 instance owned by one test: IMAP, POP3
// and submission on 127.0.0.1, logins by XOAUTH2 or OAUTHBEARER only.
type Dovecot struct {
	t          testing.TB
	dir        string // everything of this instance lives here
	confPath   string
	logPath    string
	doveadmBin string
	env        []string
	mailUID    int
	mailGID    int

	pki     *testPKI
	roots   *x509.CertPool
	intro   *introspector
	capture *captureServer
	capLog  syncBuffer // the capture server's error log

	imap, imaps, pop3, pop3s, sub, subs string

	cmd     *exec.Cmd
	stderr  syncBuffer    // dovecot -F's own stderr (errors before logging starts)
	exited  chan struct{} // closed once cmd.Wait returned
	waitErr error         // cmd.Wait's result; read after exited is closed

	stopOnce sync.Once
}

// dovecotLibexecDirs hold the per-protocol binaries of Debian's packages.
var dovecotLibexecDirs = []string{"/usr/lib/dovecot", "/usr/libexec/dovecot"}

// dovecotParts maps the protocol binaries StartDovecot needs to their
// Debian packages.
var dovecotParts = []struct{ bin, pkg string }{
	{"imap", "dovecot-imapd"},
	{"pop3", "dovecot-pop3d"},
	{"submission", "dovecot-submissiond"},
}

// StartDovecot starts a private Dovecot for t and stops it when t ends,
// printing Dovecot's log if t failed. It skips t (or fails it under
// OAUTHBRIDGE_REQUIRE_PEERS=1) when Dovecot or one of its protocol
// packages is missing.
//
// Layout: one directory from os.MkdirTemp (not t.TempDir: Dovecot's
// sockets live under base_dir and a UNIX socket path must stay under 108
// bytes, which long test names break; and when root, the mail user must be
// able to traverse it, which t.TempDir's 0700 parent forbids). It holds
// dovecot.conf, oauth2.conf.ext, tls/, run/ (base_dir), state/, home/<user>/
// Maildir and dovecot.log, and is removed when t ends.
//
// As root, login processes run as dovenull, internal ones as dovecot (the
// Debian package creates both), mail processes as opts.MailUser. As
// another user, every process runs as that user and chroots are disabled.
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	Require(t, "dovecot", "doveadm")
	libexec := ""
	for _, dir := range dovecotLibexecDirs {
		if _, err := os.Stat(filepath.Join(dir, "imap-login")); err == nil {
			libexec = dir
			break
		}
	}
	if libexec == "" {
		missing(t, "dovecot's imap-login", "dovecot-imapd")
	}
	for _, p := range dovecotParts {
		if _, err := os.Stat(filepath.Join(libexec, p.bin)); err != nil {
			missing(t, "dovecot's "+p.bin, p.pkg)
		}
	}
	dovecotBin, _ := LookPath("dovecot")
	doveadm, _ := LookPath("doveadm")

	d := &Dovecot{t: t, doveadmBin: doveadm, exited: make(chan struct{})}
	cfg, err := d.prepare(opts)
	if err != nil {
		if d.dir != "" {
			os.RemoveAll(d.dir)
		}
		if d.intro != nil {
			d.intro.close()
		}
		if d.capture != nil {
			d.capture.close()
		}
		if errors.Is(err, errMissingSystemUser) {
			missing(t, "system users dovenull and dovecot", "dovecot-core")
		}
		t.Fatalf("testpeers: preparing dovecot: %v", err)
	}
	t.Cleanup(d.cleanup)

	// Ports are picked free just before start; another process may grab
	// one in between, so a bind failure is retried with new ports.
	const attempts = 3
	for i := 1; ; i++ {
		err = d.start(dovecotBin, cfg)
		if err == nil {
			break
		}
		if i < attempts && strings.Contains(d.stderr.String()+d.readLog(), "Address already in use") {
			t.Logf("testpeers: dovecot port collision, retrying: %v", err)
			d.stderr.Reset()
			d.exited = make(chan struct{})
			continue
		}
		t.Fatalf("testpeers: starting dovecot: %v", err)
	}
	return d
}

var errMissingSystemUser = errors.New("testpeers: system user missing")

// prepare creates the directory tree, TLS files, helper servers and
// fills in everything of the config except ports.
func (d *Dovecot) prepare(opts DovecotOptions) (*dovecotConfig, error) {
	base := os.TempDir()
	if len(base) > 40 { // keep base_dir/login/<socket> under 108 bytes
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "dovecot-")
	if err != nil {
		return nil, err
	}
	d.dir = dir
	// 0755: as root the mail user and dovenull must traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := &dovecotConfig{
		Dir:        dir,
		BaseDir:    filepath.Join(dir, "run"),
		StateDir:   filepath.Join(dir, "state"),
		LogPath:    filepath.Join(dir, "dovecot.log"),
		Instance:   "oauthbridge-test-" + filepath.Base(dir),
		CertPath:   filepath.Join(dir, "tls", "cert.pem"),
		KeyPath:    filepath.Join(dir, "tls", "key.pem"),
		OAuth2Path: filepath.Join(dir, "oauth2.conf.ext"),
		HomeRoot:   filepath.Join(dir, "home"),
		Debug:      opts.Debug,
		Extra:      opts.ExtraConfig,
	}
	d.confPath = filepath.Join(dir, "dovecot.conf")
	d.logPath = cfg.LogPath

	if os.Geteuid() == 0 {
		name := opts.MailUser
		if name == "" {
			name = "nobody"
		}
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("mail user %q: %w", name, err)
		}
		cfg.MailUID, _ = strconv.Atoi(u.Uid)
		cfg.MailGID, _ = strconv.Atoi(u.Gid)
		if cfg.MailUID == 0 {
			return nil, fmt.Errorf("mail user %q has uid 0, which dovecot refuses", name)
		}
		for _, sys := range []string{"dovenull", "dovecot"} {
			if _, err := user.Lookup(sys); err != nil {
				return nil, fmt.Errorf("%w: %s", errMissingSystemUser, sys)
			}
		}
		cfg.LoginUser, cfg.InternalUser, cfg.InternalGroup = "dovenull", "dovecot", "dovecot"
	} else {
		u, err := user.Current()
		if err != nil {
			return nil, err
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			return nil, err
		}
		cfg.MailUID, cfg.MailGID = os.Getuid(), os.Getgid()
		cfg.LoginUser, cfg.InternalUser, cfg.InternalGroup = u.Username, u.Username, g.Name
		cfg.Rootless = true
	}
	d.mailUID, d.mailGID = cfg.MailUID, cfg.MailGID

	for _, sub := range []string{"tls", "state", "home"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	for _, u := range opts.Users {
		if err := d.makeMaildir(u); err != nil {
			return nil, err
		}
	}

	if d.pki, err = newTestPKI(); err != nil {
		return nil, err
	}
	d.roots = x509.NewCertPool()
	d.roots.AppendCertsFromPEM(d.pki.caPEM)
	if err := os.WriteFile(cfg.CertPath, d.pki.certPEM, 0o644); err != nil {
		return nil, err
	}
	// Read by dovecot's config process, which runs as root or as the user.
	if err := os.WriteFile(cfg.KeyPath, d.pki.keyPEM, 0o600); err != nil {
		return nil, err
	}

	d.intro = newIntrospector(opts.Introspect)
	oauth2Conf, err := renderTemplate(oauth2Tmpl, d.intro.url())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfg.OAuth2Path, []byte(oauth2Conf), 0o644); err != nil {
		return nil, err
	}
	if d.capture, err = newCaptureServer(&d.capLog); err != nil {
		return nil, err
	}
	cfg.RelayPort = d.capture.port()

	// Dovecot's master clears the environment itself (import_environment);
	// doveadm gets only what it needs.
	d.env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return cfg, nil
}

// makeMaildir creates home/<user>/Maildir/{cur,new,tmp} owned by the mail
// user, which is what Dovecot itself would create on first login.
func (d *Dovecot) makeMaildir(user string) error {
	if user == "" || strings.ContainsAny(user, "/\x00") || user == "." || user == ".." {
		return fmt.Errorf("testpeers: bad user name %q", user)
	}
	home := filepath.Join(d.dir, "home", user)
	for _, p := range []string{home, filepath.Join(home, "Maildir"),
		filepath.Join(home, "Maildir", "cur"), filepath.Join(home, "Maildir", "new"),
		filepath.Join(home, "Maildir", "tmp")} {
		if err := os.Mkdir(p, 0o700); err != nil && !os.IsExist(err) {
			return err
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(p, d.mailUID, d.mailGID); err != nil {
				return err
			}
		}
	}
	return nil
}

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
	// Own process group: if the master ever has to be killed, its children
	// go with it (see stop).
	// Pdeathsig: if the test binary dies (say a go test -timeout panic),
	// the master gets SIGTERM, and its children follow the master. The
	// kernel sends it when the thread that forked exits, so the owning
	// goroutine stays locked to that thread until the process is gone.
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

func (d *Dovecot) cleanup() {
	d.Stop()
	if d.t.Failed() {
		d.t.Logf("testpeers: dovecot log (%s):\n%s", d.logPath, indent(d.readLog()))
		if s := d.stderr.String(); s != "" {
			d.t.Logf("testpeers: dovecot stderr:\n%s", indent(s))
		}
		if s := d.capLog.String(); s != "" {
			d.t.Logf("testpeers: capture server errors:\n%s", indent(s))
		}
	}
	if err := os.RemoveAll(d.dir); err != nil {
		d.t.Logf("testpeers: removing %s: %v", d.dir, err)
	}
}

func (d *Dovecot) readLog() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// Log returns Dovecot's log so far (auth failures, kicks, relay errors).
func (d *Dovecot) Log() string { return d.readLog() }

// IMAPAddr is IMAP over implicit TLS (like imap.gmail.com:993).
func (d *Dovecot) IMAPAddr() string { return d.imaps }

// IMAPPlainAddr is cleartext IMAP (STARTTLS offered; loopback counts as
// secure, so AUTHENTICATE works without it).
func (d *Dovecot) IMAPPlainAddr() string { return d.imap }

// POP3Addr is POP3 over implicit TLS (like pop.gmail.com:995).
func (d *Dovecot) POP3Addr() string { return d.pop3s }

// POP3PlainAddr is cleartext POP3 (STLS offered).
func (d *Dovecot) POP3PlainAddr() string { return d.pop3 }

// SMTPAddr is submission over implicit TLS (like smtp.gmail.com:465).
func (d *Dovecot) SMTPAddr() string { return d.subs }

// SubmissionAddr is submission with STARTTLS (like smtp.gmail.com:587).
func (d *Dovecot) SubmissionAddr() string { return d.sub }

// RootCAs trusts the certificate Dovecot serves for 127.0.0.1 and localhost.
func (d *Dovecot) RootCAs() *x509.CertPool { return d.roots }

// CACertPEM is the CA of RootCAs, PEM-encoded (for curl --cacert, Python,
// a provider's ca_file).
func (d *Dovecot) CACertPEM() []byte { return bytes.Clone(d.pki.caPEM) }

// CACertFile is the path of a file holding CACertPEM.
func (d *Dovecot) CACertFile() string {
	p := filepath.Join(d.dir, "tls", "ca.pem")
	if _, err := os.Stat(p); err != nil {
		if err := os.WriteFile(p, d.pki.caPEM, 0o644); err != nil {
			d.t.Errorf("testpeers: writing CA file: %v", err)
		}
	}
	return p
}

// TLSConfig is a client config trusting RootCAs, for servers reached by
// their 127.0.0.1 address.
func (d *Dovecot) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: d.roots, MinVersion: tls.VersionTLS12}
}

// Token returns a new access token for user, valid until Revoke. Only for
// the default token check (DovecotOptions.Introspect nil).
func (d *Dovecot) Token(user string) string { return d.intro.mint(user) }

// Revoke invalidates every token Token gave for user. Dovecot checks
// tokens only at login: open sessions stay open.
func (d *Dovecot) Revoke(user string) { d.intro.revoke(user) }

// Introspections counts the token checks Dovecot made so far: proof that
// a login went through the introspection endpoint.
func (d *Dovecot) Introspections() int { return int(d.intro.calls.Load()) }

// Delivered returns the messages relayed by the submission service so far.
func (d *Dovecot) Delivered() []Message {
	msgs, _ := d.capture.snapshot()
	return msgs
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
