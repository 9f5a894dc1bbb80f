package interop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// submission is one message a client submits through the bridge.
type submission struct {
	from, to string
	msg      []byte // CRLF line ends, as SMTP carries it
}

// newSubmission is a 64 KiB 8-bit message with dot lines from the
// submit account to a recipient elsewhere, its Subject naming the test.
func (e *env) newSubmission(name string, seed uint64) submission {
	rng := rand.New(rand.NewPCG(seed, 0x5b))
	msg := message(rng, name, 1, 64*1024, true, true, true)
	return submission{from: e.up.user("submit"), to: "rcpt-" + strings.ToLower(name) + "@example.org", msg: msg}
}

// expectDelivered waits for the upstream's SMTP to have accepted one more
// message and checks it is s: envelope as given, and the body byte for
// byte (CRLF) as submitted. Upstreams may prepend trace headers (Dovecot's
// submission adds Received:), so the header is compared only as far as
// the Subject goes.
func (e *env) expectDelivered(t *testing.T, s submission) {
	t.Helper()
	e.sent++
	got := e.up.waitSent(t, e.sent)[e.sent-1]
	if got.From != s.from || len(got.To) != 1 || got.To[0] != s.to {
		t.Errorf("envelope: from %q to %q, want from %q to %q", got.From, got.To, s.from, s.to)
	}
	if describeSubject(got.Data) != describeSubject(s.msg) {
		t.Errorf("delivered %s, want %s", describe(got.Data), describe(s.msg))
	}
	if body := bodyOf(got.Data); !bytes.Equal(body, bodyOf(s.msg)) {
		i := 0
		want := bodyOf(s.msg)
		for i < len(body) && i < len(want) && body[i] == want[i] {
			i++
		}
		t.Errorf("delivered body differs at byte %d of %d (want %d bytes): got %q, want %q",
			i, len(body), len(want), body[max(i-40, 0):min(i+40, len(body))], want[max(i-40, 0):min(i+40, len(want))])
	}
}

// testMsmtp submits with msmtp, once with AUTH PLAIN and once with AUTH
// LOGIN, over the plaintext listener.
func (e *env) testMsmtp(t *testing.T) {
	testpeers.Require(t, "msmtp")
	host, port := hostPort(t, e.b.smtp)
	for i, mech := range []string{"plain", "login"} {
		t.Run(mech, func(t *testing.T) {
			s := e.newSubmission("msmtp-"+mech, uint64(10+i))
			dir := t.TempDir()
			rc := writeFile(t, filepath.Join(dir, "msmtprc"), fmt.Sprintf(`defaults
tls off
logfile -

account bridge
host %s
port %s
auth %s
user %s
password %s
from %s

account default : bridge
`, host, port, mech, s.from, appPassword, s.from))
			out, _, err := testpeers.Cmd{
				Name:  "msmtp",
				Args:  []string{"-C", rc, "-v", s.to},
				Stdin: s.msg,
				Env:   home(dir),
			}.Run(t, clientCtx(t, time.Minute))
			if err != nil {
				t.Fatalf("msmtp: %v", err)
			}
			if !strings.Contains(out, "--> AUTH "+strings.ToUpper(mech)) {
				t.Errorf("msmtp did not use AUTH %s", strings.ToUpper(mech))
			}
			e.expectDelivered(t, s)
		})
	}
}

// testSwaks submits with swaks, AUTH PLAIN and AUTH LOGIN.
func (e *env) testSwaks(t *testing.T) {
	testpeers.Require(t, "swaks")
	host, port := hostPort(t, e.b.smtp)
	for i, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(strings.ToLower(mech), func(t *testing.T) {
			s := e.newSubmission("swaks-"+strings.ToLower(mech), uint64(20+i))
			// swaks ends DATA with "\r\n.\r\n" whether or not the data ends
			// with a line end: give it the message without its last CRLF,
			// or the upstream gets an extra empty line.
			data := bytes.TrimSuffix(s.msg, []byte("\r\n"))
			out, _, err := testpeers.Cmd{
				Name: "swaks",
				Args: []string{"--server", host, "--port", port,
					"--auth", mech, "--auth-user", s.from, "--auth-password", appPassword,
					"--from", s.from, "--to", s.to, "--data", "-", "--suppress-data", "--timeout", "60"},
				Stdin: data,
				Env:   home(t.TempDir()),
			}.Run(t, clientCtx(t, time.Minute))
			if err != nil {
				t.Fatalf("swaks: %v", err)
			}
			if !strings.Contains(out, " -> AUTH "+mech) || !strings.Contains(out, "<-  235 ") {
				t.Errorf("swaks did not authenticate with AUTH %s", mech)
			}
			e.expectDelivered(t, s)
		})
	}
}
