package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/oauthbridge/oauthbridge/internal/doctor"
	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// demo starts with free ports ($OAUTHBRIDGE_DEMO_PORTS=0), prints the
// password, and a client logs in with it and reads the seeded mail;
// Ctrl-C ends it with exit 0 and removes its state.
func TestDemo(t *testing.T) {
	p := start(t, []string{demoPortsEnv + "=0"}, "demo")
	imapLine := p.expect(t, "  IMAP ", 30*time.Second)
	pwLine := p.expect(t, "  password ", 5*time.Second)
	stateLine := p.expect(t, "State is kept in ", 5*time.Second)
	imapAddr := strings.Fields(imapLine)[1]
	password := strings.Fields(pwLine)[1]
	if password != demoPassword {
		t.Errorf("printed password %q", password)
	}
	stateDir := regexp.MustCompile(`kept in (\S+) and`).FindStringSubmatch(stateLine)[1]

	c, err := imapclient.DialInsecure(imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(demoUser, password).Wait(); err != nil {
		t.Fatalf("login with the printed password: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages == 0 {
		t.Fatalf("SELECT INBOX: %v, %d messages", err, sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope == nil || msgs[0].Envelope.Subject == "" {
		t.Fatalf("FETCH 1 ENVELOPE: %v, %+v", err, msgs)
	}
	c.Logout().Wait()

	// The printed curl example, as a user would paste it.
	t.Run("curl", func(t *testing.T) {
		testpeers.Require(t, "curl")
		out, err := exec.Command("curl", "--silent", "--show-error", "--max-time", "20",
			"--user", demoUser+":"+password, "imap://"+imapAddr+"/INBOX;UID=1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Subject: ") {
			t.Errorf("curl imap://%s/INBOX;UID=1: %v\n%s", imapAddr, err, out)
		}
	})

	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("demo exit %d after Ctrl-C", code)
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Errorf("state dir %s left behind: %v", stateDir, err)
	}
}

// A busy default port is replaced by a free one, and the note says which
// port and how to free it.
func TestDemoAddrBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	addr, note := demoAddr(busy, false)
	if addr != "127.0.0.1:0" || !strings.Contains(note, busy+" is in use") || !strings.Contains(note, "ss -ltnp") {
		t.Errorf("demoAddr(busy) = %q, %q", addr, note)
	}
	if addr, note := demoAddr(freeAddr(t), false); addr == "127.0.0.1:0" || note != "" {
		t.Errorf("demoAddr(free) = %q, %q", addr, note)
	}
}

func TestCheck(t *testing.T) {
	f := newFixture(t)
	// Every protocol whose login check is in the tree (proxy/pop3 and
	// proxy/smtp add theirs to the doctor as they land); smtp never, to
	// see that only the listeners' protocols are checked.
	listeners := []listenerSpec{{"imap", "127.0.0.1:0"}}
	if doctor.DefaultUpstreamChecks["pop3"] != nil {
		listeners = append(listeners, listenerSpec{"pop3", "127.0.0.1:0"})
	}
	cfg := f.writeConfig(t, "config.yaml", listeners, "alice-pw", "")
	code, out, stderr := runCmd(t, "", nil, "check", "-config", cfg)
	if code != 0 || !strings.Contains(out, "config ok") {
		t.Fatalf("check: exit %d\n%s%s", code, out, stderr)
	}

	f.seed(t, alice)
	code, out, stderr = runCmd(t, "", nil, "check", "--login", alice, "-config", cfg)
	if code != 0 || !strings.Contains(out, "login check passed") || !regexp.MustCompile(`(?m)^imap\s+login\s+ok`).MatchString(out) {
		t.Errorf("check --login %s: exit %d\n%s%s", alice, code, out, stderr)
	}
	if strings.Contains(out, "smtp ") {
		t.Errorf("check --login checked smtp, which no listener uses:\n%s", out)
	}

	// bob was never authorized: the token step fails and says what to run.
	code, out, _ = runCmd(t, "", nil, "check", "--login", bob, "-config", cfg)
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "oauthbridge authorize "+bob) {
		t.Errorf("check --login %s: exit %d\n%s", bob, code, out)
	}
}

// status --json: the schema, token states without a daemon, and sessions
// once the daemon's admin endpoint answers.
func TestStatusJSON(t *testing.T) {
	f := newFixture(t)
	f.seed(t, alice)
	imapAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := f.writeConfig(t, "config.yaml", []listenerSpec{{"imap", imapAddr}}, "alice-pw", "http: {listen: \""+adminAddr+"\"}\n")

	read := func() statusOutput {
		t.Helper()
		code, out, stderr := runCmd(t, "", nil, "status", "--json", "-config", cfg)
		if code != 0 {
			t.Fatalf("status --json: exit %d: %s", code, stderr)
		}
		var st statusOutput
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			t.Fatalf("status --json output %q: %v", out, err)
		}
		return st
	}
	st := read()
	if st.Schema != 1 || len(st.Accounts) != 2 {
		t.Fatalf("status = %+v", st)
	}
	a, b := st.Accounts[0], st.Accounts[1]
	if a.Account != alice || a.State != "authorized" || a.Flow != "authcode" || a.AccessExpiry.IsZero() || a.RefreshTokenIssuedAt.IsZero() {
		t.Errorf("alice = %+v", a)
	}
	if b.Account != bob || b.State != "not_authorized" || !b.AccessExpiry.IsZero() {
		t.Errorf("bob = %+v", b)
	}
	if st.Daemon.Reachable || st.Daemon.URL != "http://"+adminAddr+"/status.json" || !strings.Contains(st.Daemon.Error, "not reachable") || a.Sessions != nil {
		t.Errorf("daemon without a running daemon = %+v, alice sessions %v", st.Daemon, a.Sessions)
	}

	ns := newNotifySocket(t)
	start(t, []string{"NOTIFY_SOCKET=" + ns.path}, "serve", "-config", cfg)
	ns.expect(t, "READY=1")
	c, err := imapclient.DialInsecure(imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, "alice-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	st = read()
	if !st.Daemon.Reachable || !st.Daemon.Healthy || st.Daemon.Sessions["imap"] != 1 {
		t.Errorf("daemon = %+v", st.Daemon)
	}
	if got := st.Accounts[0].Sessions; got["imap"] != 1 || got["pop3"] != 0 {
		t.Errorf("alice sessions = %v", got)
	}

	code, out, _ := runCmd(t, "", nil, "status", "-config", cfg)
	for _, want := range []string{"alice@gmail.com  (flow authcode)", "state               authorized",
		"not authorized: run \"oauthbridge authorize bob@gmail.com\"", "sessions            imap 1, pop3 0, smtp 0", "daemon: running"} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}

// authorize --no-browser through the paste path, while serve runs: the
// test plays the browser (follows the printed URL to the fake's
// auto-approving endpoint, without following the final redirect) and
// pastes the redirect address; the running daemon uses the new tokens at
// the next login, without a restart.
func TestAuthorizeNoBrowserPaste(t *testing.T) {
	f := newFixture(t)
	imapAddr := freeAddr(t)
	cfg := f.writeConfig(t, "config.yaml", []listenerSpec{{"imap", imapAddr}}, "alice-pw", "")
	ns := newNotifySocket(t)
	start(t, []string{"NOTIFY_SOCKET=" + ns.path}, "serve", "-config", cfg)
	ns.expect(t, "READY=1")
	if err := imapLoginErr(imapAddr, alice, "alice-pw"); err == nil || !strings.Contains(err.Error(), "oauthbridge authorize "+alice) {
		t.Fatalf("login before authorize: %v, want a NO naming the command", err)
	}

	// ACCOUNT before the flags, flags with two dashes.
	p := start(t, nil, "authorize", alice, "--no-browser", "--config", cfg)
	var authURL string
	for authURL == "" {
		l := strings.TrimSpace(p.expect(t, "", 30*time.Second))
		if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
			authURL = l
		}
	}
	if u, err := url.Parse(authURL); err != nil || u.Query().Get("code_challenge_method") != "S256" {
		t.Fatalf("authorization URL %q: %v", authURL, err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "code=") {
		t.Fatalf("authorize endpoint: %d, Location %q", resp.StatusCode, loc)
	}
	// A line that is not the address first: it is explained, not fatal.
	if _, err := p.stdin.Write([]byte("not a url\n" + loc + "\n")); err != nil {
		t.Fatal(err)
	}
	p.expect(t, "That is not the redirect address", 30*time.Second)
	p.expect(t, "Authorized "+alice, 30*time.Second)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("authorize exit %d", code)
	}
	if files, _ := filepath.Glob(filepath.Join(f.dir, "state", "tokens", "*.token")); len(files) != 1 {
		t.Errorf("token files: %v", files)
	}
	if err := imapLoginErr(imapAddr, alice, "alice-pw"); err != nil {
		t.Errorf("login through the running daemon after authorize: %v", err)
	}
}

// authorize for a grant flow (client_credentials) stores nothing: it runs
// one grant to prove the credentials, and fails clearly when they are
// wrong.
func TestAuthorizeGrantFlow(t *testing.T) {
	f := newFixture(t)
	oa := f.fg.OAuth()
	for _, tc := range []struct {
		secret string
		code   int
		want   string
	}{
		{oa.ClientSecret, 0, "The credentials work"},
		{"wrong-secret", 1, "invalid_client"},
	} {
		cfg := f.writeConfig(t, "config.yaml", []listenerSpec{{"smtp", "127.0.0.1:0"}}, "alice-pw", "")
		acct := "  - username: scanner@example.com\n    upstream_user: shared@example.com\n    provider: fake\n" +
			"    flow: client_credentials\n    client_id: " + oa.ClientID + "\n    client_secret: " + tc.secret + "\n"
		fh, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.WriteString(acct)
		fh.Close()
		code, out, stderr := runCmd(t, "", nil, "authorize", "-config", cfg, "scanner@example.com")
		if code != tc.code || !strings.Contains(out+stderr, tc.want) {
			t.Errorf("secret %q: exit %d, want %d and %q\n%s%s", tc.secret, code, tc.code, tc.want, out, stderr)
		}
		if code == 0 && !strings.Contains(out, "no stored consent is needed") {
			t.Errorf("output does not say no consent is stored:\n%s", out)
		}
		if strings.Contains(out+stderr, oa.ClientSecret) {
			t.Error("the client secret was printed")
		}
	}
	if files, _ := filepath.Glob(filepath.Join(f.dir, "state", "tokens", "*.token")); len(files) != 0 {
		t.Errorf("a grant flow stored tokens: %v", files)
	}
}
