package interop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// curlMessages are what the curl account's INBOX gets: a small one with
// dot lines, a 200 KiB 8-bit one, one with "From " lines.
func curlMessages() [][]byte {
	rng := rand.New(rand.NewPCG(30, 0xc0))
	return [][]byte{
		message(rng, "curl", 1, 1536, true, false, false),
		message(rng, "curl", 2, 200*1024, true, true, false),
		message(rng, "curl", 3, 20*1024, false, false, true),
	}
}

// testCurl drives all three protocols with curl: IMAP fetch by UID, POP3
// RETR by number, SMTP upload.
func (e *env) testCurl(t *testing.T) {
	testpeers.Require(t, "curl")
	user := e.up.user("curl")
	e.up.seed(t, user, curlMessages())
	held, uids := e.up.mailbox(t, user), e.up.uids(t, user)
	compareMessages(t, "upstream mailbox after seeding", held, curlMessages())
	curl := func(t *testing.T, args ...string) []byte {
		t.Helper()
		out, _, err := testpeers.Cmd{
			Name: "curl",
			Args: append([]string{"-q", "-sS", "--max-time", "60", "-u", user + ":" + appPassword}, args...),
			Env:  home(t.TempDir()),
		}.Run(t, clientCtx(t, time.Minute))
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		return []byte(out)
	}

	t.Run("imap", func(t *testing.T) {
		for i, uid := range uids {
			got := curl(t, fmt.Sprintf("imap://%s/INBOX;UID=%d", e.b.imap, uid))
			if !bytes.Equal(got, held[i]) {
				t.Errorf("UID %d: curl got %s, want %s", uid, describe(got), describe(held[i]))
			}
		}
	})
	t.Run("pop3", func(t *testing.T) {
		for i := range held {
			got := curl(t, fmt.Sprintf("pop3://%s/%d", e.b.pop3, i+1))
			if !bytes.Equal(got, held[i]) {
				t.Errorf("RETR %d: curl got %s, want %s", i+1, describe(got), describe(held[i]))
			}
		}
		// RETR does not delete: the maildrop is as it was.
		compareMessages(t, "upstream mailbox after RETR", e.up.mailbox(t, user), held)
	})
	t.Run("smtp", func(t *testing.T) {
		s := e.newSubmission("curl-smtp", 31)
		file := filepath.Join(t.TempDir(), "msg.eml")
		if err := os.WriteFile(file, s.msg, 0o600); err != nil {
			t.Fatal(err)
		}
		curl(t, "smtp://"+e.b.smtp, "--mail-from", s.from, "--mail-rcpt", s.to, "--upload-file", file)
		e.expectDelivered(t, s)
	})
}
