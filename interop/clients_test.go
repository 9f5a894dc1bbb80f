package interop

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// TestClients runs every client against the bridge, once with the fake
// Gmail and once with Dovecot as the upstream. Subtests run one after the
// other: each upstream and bridge is started once and shared, and a kick
// ends every session of its account.
func TestClients(t *testing.T) {
	// After real clients, a kick and a cut, the daemon, both upstreams and
	// their helpers leave no goroutine behind.
	proxytest.VerifyNoLeaks(t)
	upstreams := []struct {
		name  string
		start func(*testing.T) upstream
	}{
		{"fakegmail", startFakeGmail},
		{"dovecot", startDovecot},
	}
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			up := u.start(t)
			e := &env{up: up, b: startBridge(t, up)}
			for _, c := range e.clients() {
				t.Run(c.name, c.run)
			}
			e.b.assertNoSecrets(t)
			for _, a := range accounts {
				if n := up.oauth().Refreshes(up.user(a)); n == 0 {
					t.Errorf("%s: the bridge never refreshed its token, so the upstream saw only the seeded one", up.user(a))
				}
			}
		})
	}
}

// clients are the subtests, in order.
func (e *env) clients() []struct {
	name string
	run  func(*testing.T)
} {
	list := []struct {
		name string
		run  func(*testing.T)
	}{
		{"mbsync", e.testMbsync},
		{"offlineimap", e.testOfflineIMAP},
		{"mbsync-kick", e.testMbsyncKick},
		{"fetchmail", e.testFetchmail},
		{"getmail", e.testGetmail},
		{"neomutt-send", e.testNeomuttSend},
		{"neomutt-read", e.testNeomuttRead},
		{"msmtp", e.testMsmtp},
		{"swaks", e.testSwaks},
		{"curl", e.testCurl},
	}
	if _, ok := e.up.(midFetchCutter); ok {
		list = append(list, struct {
			name string
			run  func(*testing.T)
		}{"mbsync-cut-mid-fetch", e.testMbsyncCutMidFetch})
	}
	return list
}

// env is one upstream with the bridge in front of it.
type env struct {
	up upstream
	b  *bridge

	syncMsgs   [][]byte // the sync account's mailbox once seeded, as the upstream holds it
	syncSeeded bool     // seeding was attempted (a failed attempt is not repeated)
	sent       int      // messages the upstream's SMTP accepted so far
}

// syncMailboxSize is the size of the mailbox the sync clients mirror.
const syncMailboxSize = 1000

// syncSource seeds the sync account's 1,000-message mailbox on first use
// and returns it as the upstream holds it (the checksums' oracle), after
// checking that the upstream holds exactly what was seeded.
func (e *env) syncSource(t *testing.T) [][]byte {
	t.Helper()
	if e.syncSeeded && e.syncMsgs == nil {
		t.Fatal("seeding the sync mailbox failed in an earlier subtest")
	}
	if !e.syncSeeded {
		e.syncSeeded = true
		msgs := corpus("sync", syncMailboxSize, 1)
		start := time.Now()
		e.up.seed(t, e.up.user("sync"), msgs)
		e.syncMsgs = e.up.mailbox(t, e.up.user("sync"))
		compareMessages(t, "upstream mailbox after seeding", e.syncMsgs, msgs)
		t.Logf("seeded %d messages in %v", len(msgs), time.Since(start).Round(time.Millisecond))
	}
	return e.syncMsgs
}

// clientCtx bounds one client test.
func clientCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// writeFile writes a client's config file, private to the test.
func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// home is the environment of a client run: HOME and XDG_CONFIG_HOME in
// dir, so that no configuration of the user running the tests is read
// (curl, msmtp and others look in both), plus extra.
func home(dir string, extra ...string) []string {
	return append([]string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"), "CURL_HOME=" + dir}, extra...)
}
