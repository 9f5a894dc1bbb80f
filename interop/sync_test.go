package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// mbsyncrc is an isync 1.4 config pulling INBOX of user through the
// bridge's plaintext IMAP listener into a Maildir under dir.
// extra is added to the IMAPAccount section (say "PipelineDepth 1").
func mbsyncrc(t *testing.T, dir, addr, user, extra string) string {
	host, port := hostPort(t, addr)
	return writeFile(t, filepath.Join(dir, "mbsyncrc"), fmt.Sprintf(`IMAPAccount bridge
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs LOGIN
Timeout 60
%s

IMAPStore bridge
Account bridge

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel inbox
Far :bridge:INBOX
Near :local:INBOX
Create Near
Sync Pull
Expunge None
SyncState *
`, host, port, user, appPassword, extra, filepath.Join(dir, "mail"), filepath.Join(dir, "mail")))
}

// testMbsync mirrors the 1,000-message mailbox with mbsync as configured
// by most users: default pipelining (every UID FETCH in flight at once),
// IMAP LOGIN. The Maildir must hold exactly the upstream's messages, and
// the upstream must be unchanged.
func (e *env) testMbsync(t *testing.T) {
	testpeers.Require(t, "mbsync")
	src := e.syncSource(t)
	dir := t.TempDir()
	rc := mbsyncrc(t, dir, e.b.imap, e.up.user("sync"), "")
	if err := os.MkdirAll(filepath.Join(dir, "mail"), 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, _, err := testpeers.Cmd{
		Name: "mbsync", Args: []string{"-c", rc, "-V", "inbox"},
		Env: home(dir), Timeout: 2 * time.Minute,
	}.Run(t, clientCtx(t, 2*time.Minute))
	if err != nil {
		t.Fatalf("mbsync: %v", err)
	}
	t.Logf("mbsync synced in %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, fmt.Sprintf("far side: %d messages", len(src))) {
		t.Errorf("mbsync did not report %d messages on the bridge's side", len(src))
	}
	// mbsync adds an X-TUID header to each message it stores (its own
	// bookkeeping, isync 1.4); everything else must be the upstream's bytes.
	compareMessages(t, "mbsync Maildir", stripAll(readMaildir(t, filepath.Join(dir, "mail", "INBOX")), "X-TUID"), src)
	compareMessages(t, "upstream mailbox after mbsync", e.up.mailbox(t, e.up.user("sync")), src)
}

// offlineimaprc pulls INBOX of user through the bridge into a Maildir
// under dir/mail; the remote side is read-only for offlineimap.
func offlineimaprc(t *testing.T, dir, addr, user string) string {
	host, port := hostPort(t, addr)
	return writeFile(t, filepath.Join(dir, "offlineimaprc"), fmt.Sprintf(`[general]
accounts = bridge
metadata = %s/meta
ui = basic

[Account bridge]
localrepository = local
remoterepository = bridge

[Repository local]
type = Maildir
localfolders = %s/mail

[Repository bridge]
type = IMAP
remotehost = %s
remoteport = %s
remoteuser = %s
remotepass = %s
ssl = no
starttls = no
auth_mechanisms = PLAIN, LOGIN
readonly = True
folderfilter = lambda f: f == 'INBOX'
maxconnections = 1
`, dir, dir, host, port, user, appPassword))
}

// testOfflineIMAP mirrors the same mailbox with offlineimap (Python
// imaplib, AUTHENTICATE PLAIN, one message per UID FETCH).
func (e *env) testOfflineIMAP(t *testing.T) {
	testpeers.Require(t, "offlineimap")
	src := e.syncSource(t)
	dir := t.TempDir()
	rc := offlineimaprc(t, dir, e.b.imap, e.up.user("sync"))
	start := time.Now()
	_, _, err := testpeers.Cmd{
		Name: "offlineimap", Args: []string{"-c", rc, "-o", "-u", "basic"},
		Env: home(dir), Timeout: 2 * time.Minute,
	}.Run(t, clientCtx(t, 2*time.Minute))
	if err != nil {
		t.Fatalf("offlineimap: %v", err)
	}
	t.Logf("offlineimap synced in %v", time.Since(start).Round(time.Millisecond))
	compareMessages(t, "offlineimap Maildir", readMaildir(t, filepath.Join(dir, "mail", "INBOX")), src)
	compareMessages(t, "upstream mailbox after offlineimap", e.up.mailbox(t, e.up.user("sync")), src)
}
