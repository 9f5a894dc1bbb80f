package testpeers

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
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
	// Mail processes create the homes of users not listed in opts.Users.
	if os.Geteuid() == 0 {
		if err := os.Chown(cfg.HomeRoot, cfg.MailUID, cfg.MailGID); err != nil {
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
	if err := os.WriteFile(d.CACertFile(), d.pki.caPEM, 0o644); err != nil {
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
func (d *Dovecot) CACertFile() string { return filepath.Join(d.dir, "tls", "ca.pem") }

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
