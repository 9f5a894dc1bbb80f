package interop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// neomuttCommon is the part of a muttrc every neomutt run shares: no TLS
// (the bridge's loopback listeners are plaintext), no caches, no
// questions.
const neomuttCommon = `set ssl_starttls = no
set ssl_force_tls = no
set header_cache = ""
set message_cachedir = ""
set record = ""
set copy = no
set charset = "utf-8"
set send_charset = "utf-8"
set allow_8bit = yes
set wait_key = no
set quit = yes
`

// testNeomuttSend sends in batch mode, the way scripts use mutt:
// "neomutt -n -F muttrc -s subject rcpt < body" with smtp_url pointing at
// the bridge. The body (8-bit, dot lines, "From " lines) must reach the
// upstream byte for byte, with CRLF line ends.
func (e *env) testNeomuttSend(t *testing.T) {
	testpeers.Require(t, "neomutt")
	host, port := hostPort(t, e.b.smtp)
	from, to := e.up.user("submit"), "rcpt-neomutt@example.org"
	rng := rand.New(rand.NewPCG(40, 0x77))
	body := bodyOf(message(rng, "neomutt", 1, 32*1024, true, true, true))
	dir := t.TempDir()
	rc := writeFile(t, filepath.Join(dir, "muttrc"), neomuttCommon+fmt.Sprintf(`set from = "%s"
set use_envelope_from = yes
set smtp_url = "smtp://%s:%s/"
set smtp_user = "%s"
set smtp_pass = "%s"
`, from, host, port, from, appPassword))
	_, _, err := testpeers.Cmd{
		Name:  "neomutt",
		Args:  []string{"-n", "-F", rc, "-s", "neomutt batch send", to},
		Stdin: bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")), // a local text file
		Env:   home(dir, "TERM=dumb"),
	}.Run(t, clientCtx(t, time.Minute))
	if err != nil {
		t.Fatalf("neomutt: %v", err)
	}
	e.expectDelivered(t, submission{from: from, to: to,
		msg: append([]byte("Subject: neomutt batch send\r\n\r\n"), body...)})
}

// testNeomuttRead reads through IMAP. NeoMutt has no batch mode for
// reading: its index needs a terminal. script(1) gives it one, and keys
// pushed from the muttrc drive it: tag every message, copy them all into
// a local Maildir (which fetches each message in full over IMAP), quit.
// The copies must be the upstream's messages.
func (e *env) testNeomuttRead(t *testing.T) {
	testpeers.Require(t, "neomutt", "script")
	user := e.up.user("mutt")
	rng := rand.New(rand.NewPCG(41, 0x78))
	seeded := [][]byte{
		message(rng, "mutt", 1, 2048, true, false, false),
		message(rng, "mutt", 2, 100*1024, false, true, true),
		message(rng, "mutt", 3, 5000, true, true, false),
	}
	e.up.seed(t, user, seeded)
	held := e.up.mailbox(t, user)
	compareMessages(t, "upstream mailbox after seeding", held, seeded)

	dir := t.TempDir()
	copyDir := filepath.Join(dir, "copy")
	rc := writeFile(t, filepath.Join(dir, "muttrc"), neomuttCommon+fmt.Sprintf(`set imap_user = "%s"
set imap_pass = "%s"
set folder = "imap://%s/"
set spoolfile = "+INBOX"
set confirmcreate = no
set confirmappend = no
set mbox_type = Maildir
set move = no
set mark_old = no
set delete = no
push "<tag-pattern>~A<enter><tag-prefix><copy-message>%s<enter><quit>"
`, user, appPassword, e.b.imap, copyDir))
	cmdline := "neomutt -n -F " + rc + " -f imap://" + e.b.imap + "/INBOX"
	_, _, err := testpeers.Cmd{
		Name: "script",
		// -q quiet, -e exit with neomutt's status, -c run it on a pty;
		// the typescript goes nowhere.
		Args: []string{"-q", "-e", "-c", cmdline, "/dev/null"},
		Env:  home(dir, "TERM=vt100", "SHELL=/bin/sh"),
	}.Run(t, clientCtx(t, time.Minute))
	if err != nil {
		t.Fatalf("neomutt under script: %v", err)
	}
	// NeoMutt's copy-message adds Content-Length: and Lines: headers.
	got := stripAll(stripAll(readMaildir(t, copyDir), "Content-Length"), "Lines")
	compareMessages(t, "neomutt's copies", got, held)
	// Reading changed nothing upstream.
	compareMessages(t, "upstream mailbox after neomutt", e.up.mailbox(t, user), held)
}
