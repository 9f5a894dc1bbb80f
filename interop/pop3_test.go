package interop

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// popMailboxSize messages are fetched and deleted by each POP3 client: a
// 200 KiB one, nine of 16-64 KiB, dot lines, 8-bit text.
const popMailboxSize = 100

// seedMaildrop fills account's maildrop with a fresh corpus and returns it
// as the upstream holds it.
func (e *env) seedMaildrop(t *testing.T, account string, seed uint64) [][]byte {
	t.Helper()
	user := e.up.user(account)
	msgs := corpus(account, popMailboxSize, seed)
	e.up.seed(t, user, msgs)
	held := e.up.mailbox(t, user)
	compareMessages(t, "upstream maildrop after seeding", held, msgs)
	return held
}

// assertMaildropEmpty fails t unless account's maildrop is empty.
func (e *env) assertMaildropEmpty(t *testing.T, account string) {
	t.Helper()
	if left := e.up.mailbox(t, e.up.user(account)); len(left) != 0 {
		t.Errorf("upstream maildrop holds %d messages after the client deleted everything", len(left))
	}
}

// readDir returns the content of every file in dir.
func readDir(t *testing.T, dir string) [][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// testFetchmail: fetchmail fetches every message over POP3 through the
// bridge, hands each to an MDA that writes it to a file of its own, and
// deletes it; the maildrop ends empty and a second run finds nothing.
func (e *env) testFetchmail(t *testing.T) {
	testpeers.Require(t, "fetchmail")
	const account = "pop-fetchmail"
	src := e.seedMaildrop(t, account, 2)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	host, port := hostPort(t, e.b.pop3)
	rc := writeFile(t, filepath.Join(dir, "fetchmailrc"), fmt.Sprintf(`set no bouncemail
set no syslog
set invisible
poll %s service %s protocol POP3 auth password timeout 60
  user "%s" there with password "%s" is "local" here
  fetchall nokeep sslproto ''
  mda "cat > $(mktemp %s/m.XXXXXXXX)"
`, host, port, e.up.user(account), appPassword, out))
	cmd := testpeers.Cmd{
		Name: "fetchmail",
		// sslproto '' above: fetchmail 6.4 otherwise insists on STLS.
		Args: []string{"-f", rc, "--pidfile", filepath.Join(dir, "pid"), "--nodetach", "-v"},
		Env:  home(dir, "FETCHMAILHOME="+dir),
	}
	stdout, _, err := cmd.Run(t, clientCtx(t, 2*time.Minute))
	if err != nil {
		t.Fatalf("fetchmail: %v", err)
	}
	compareMessages(t, "fetchmail's deliveries", readDir(t, out), src)
	// -v logs the dialogue: every message is deleted exactly once, and
	// each DELE was answered +OK.
	assertDeletedOnce(t, "fetchmail", regexp.MustCompile(`POP3> DELE (\d+)\n.*POP3< \+OK`).FindAllStringSubmatch(stdout, -1), len(src))
	e.assertMaildropEmpty(t, account)

	// A second poll finds nothing: exit status 1 is fetchmail's "no mail".
	_, _, err = cmd.Run(t, clientCtx(t, time.Minute))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("second fetchmail run: %v, want exit status 1 (no mail)", err)
	}
	if n := len(readDir(t, out)); n != len(src) {
		t.Errorf("second fetchmail run delivered %d more messages", n-len(src))
	}
}

// assertDeletedOnce checks a client's log of deletions: submatch 1 of
// each match is a message number; 1..n must each appear exactly once.
func assertDeletedOnce(t *testing.T, client string, matches [][]string, n int) {
	t.Helper()
	seen := make(map[string]int, n)
	for _, m := range matches {
		seen[m[1]]++
	}
	for i := 1; i <= n; i++ {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Errorf("%s deleted message %d %d times", client, i, c)
		}
	}
	if len(matches) != n {
		t.Errorf("%s logged %d deletions, want %d", client, len(matches), n)
	}
}

// testGetmail: getmail6 retrieves every message over POP3 through the
// bridge into a Maildir and deletes it (delete = true); the maildrop ends
// empty and a second run finds nothing.
func (e *env) testGetmail(t *testing.T) {
	testpeers.Require(t, "getmail")
	const account = "pop-getmail"
	src := e.seedMaildrop(t, account, 3)
	dir := t.TempDir()
	maildir, userLine := getmailMaildir(t)
	host, port := hostPort(t, e.b.pop3)
	rc := writeFile(t, filepath.Join(dir, "getmailrc"), fmt.Sprintf(`[retriever]
type = SimplePOP3Retriever
server = %s
port = %s
username = %s
password = %s
timeout = 60

[destination]
type = Maildir
path = %s/
%s

[options]
verbose = 2
read_all = true
delete = true
delivered_to = false
received = false
`, host, port, e.up.user(account), appPassword, maildir, userLine))
	cmd := testpeers.Cmd{
		Name: "getmail",
		Args: []string{"--getmaildir", dir, "--rcfile", rc},
		Env:  home(dir),
	}
	stdout, _, err := cmd.Run(t, clientCtx(t, 2*time.Minute))
	if err != nil {
		t.Fatalf("getmail: %v", err)
	}
	// getmail adds "Return-Path: <unknown>" (POP3 has no envelope) even
	// with delivered_to and received off; the rest is the upstream's.
	compareMessages(t, "getmail's Maildir", stripAll(readMaildir(t, maildir), "Return-Path"), src)
	// verbose = 2 logs "msg N/100 (...) ... delivered to Maildir ..., deleted".
	assertDeletedOnce(t, "getmail", regexp.MustCompile(`msg +(\d+)/\d+ .*, deleted\n`).FindAllStringSubmatch(stdout, -1), len(src))
	e.assertMaildropEmpty(t, account)

	// A second run finds nothing.
	stdout, _, err = cmd.Run(t, clientCtx(t, time.Minute))
	if err != nil {
		t.Errorf("second getmail run: %v", err)
	}
	if n := len(readMaildir(t, maildir)); n != len(src) || !strings.Contains(stdout, " 0 messages (0 bytes) retrieved") {
		t.Errorf("second getmail run delivered %d more messages", n-len(src))
	}
}

// getmailMaildir makes the Maildir getmail delivers to. getmail refuses
// to deliver as root ("refuse to deliver mail as root"): as root, the
// destination gets "user = nobody" and a Maildir nobody can write, outside
// t.TempDir (whose parent is 0700).
func getmailMaildir(t *testing.T) (dir, userLine string) {
	t.Helper()
	if os.Geteuid() != 0 {
		dir = filepath.Join(t.TempDir(), "Maildir")
	} else {
		base, err := os.MkdirTemp("", "interop-getmail-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) })
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(base, "Maildir")
		userLine = "user = nobody"
	}
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		if userLine != "" {
			u, err := user.Lookup("nobody")
			if err != nil {
				t.Fatalf("getmail as root needs the user nobody: %v", err)
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(filepath.Join(dir, sub), uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir, userLine
}
