package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// A wildcard service-account account: any login in the domain with the
// shared password reaches that user's own mailbox, the login name being the
// JWT subject (domain-wide delegation). A login outside the domain fails.
func TestWildcardServiceAccountLogin(t *testing.T) {
	const carol, dave = "carol@corp.example", "dave@corp.example"
	fg, err := fakegmail.Start(fakegmail.Options{Users: []string{carol, dave}, SeedMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	key, err := fg.OAuth().RegisterServiceAccount("bridge@fake-project.iam.gserviceaccount.com", "https://mail.google.com/")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		StateDir:  filepath.Join(dir, "state"),
		Listeners: []config.Listener{imapListener()},
		Providers: map[string]*config.Provider{"fake": {
			IMAP: fg.IMAPAddr(), POP3: fg.POP3Addr(), SMTP: fg.SMTPAddr(),
			TokenURL: fg.OAuth().TokenURL(), Scopes: []string{"https://mail.google.com/"}, CAPEM: fg.CACertPEM(),
		}},
		Accounts: []config.Account{{
			Username: "*@corp.example", Provider: "fake", Flow: config.FlowServiceAccount, ServiceAccountFile: keyFile,
			Passwords: []config.Password{{Name: "shared", Hash: hash(t, "corp-pw")}},
		}},
	}
	if err := cfg.Complete(); err != nil {
		t.Fatal(err)
	}
	e := &env{fg: fg, logs: proxytest.NewLogBuffer(), dir: dir}
	d := e.start(t, cfg)
	a := addr(t, d, "imap")
	for _, user := range []string{carol, "DAVE@corp.example"} {
		c := imapLogin(t, a, user, "corp-pw")
		if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 3 {
			t.Errorf("%s: SELECT INBOX: %v", user, err)
		}
	}
	if got := d.AccountSessions(dave)["imap"]; got != 1 {
		t.Errorf("AccountSessions(%s) = %d, want 1 (login names compare ignoring case)", dave, got)
	}
	if imapLoginErr(t, a, "eve@other.example", "corp-pw") == nil {
		t.Error("a login outside the wildcard's domain succeeded")
	}
}
