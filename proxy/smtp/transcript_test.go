package smtp

import (
	"testing"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

const (
	greeting = "220 bridge.test ESMTP Service Ready\r\n"
	// Before any upstream was seen: the bridge's own maximum, no SMTPUTF8.
	ehloPlainNoAuth = "250-Hello client.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-STARTTLS\r\n250-SIZE 67108864\r\n250 LIMITS RCPTMAX=100\r\n"
	ehloUpstream    = "250-Hello client.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-AUTH PLAIN LOGIN\r\n250-SMTPUTF8\r\n250-SIZE 35882577\r\n250 LIMITS RCPTMAX=100\r\n"
	ehloTLS         = "250-Hello client.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-AUTH PLAIN LOGIN\r\n250-SIZE 67108864\r\n250 LIMITS RCPTMAX=100\r\n"
)

// TestTranscriptSTARTTLSRequired: on a listener that is not loopback and
// does not allow plaintext AUTH, EHLO hides AUTH until STARTTLS, AUTH is
// refused with RFC 3207's reply, and after STARTTLS AUTH is offered and a
// wrong password gets 535 without the connection being harmed.
func TestTranscriptSTARTTLSRequired(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{
		direct:   true,
		localTLS: proxy.TLSStartTLS,
		listener: proxy.ListenerInfo{Loopback: false, AllowPlaintextAuth: false},
	})
	w := dialWire(t, b.addr)
	if got := w.reply(); got != greeting {
		t.Fatalf("greeting %q", got)
	}
	w.expect("EHLO client.test\r\n", ehloPlainNoAuth)
	w.expect("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePW)+"\r\n", "530 5.7.0 Must issue a STARTTLS command first\r\n")
	w.expect("AUTH LOGIN\r\n", "530 5.7.0 Must issue a STARTTLS command first\r\n")
	w.expect("MAIL FROM:<alice@gmail.com>\r\n", "530 5.7.0 Authentication required\r\n")
	w.startTLS(b.clientTLS())
	w.expect("EHLO client.test\r\n", ehloTLS)
	w.expect("AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n")
	w.expect(b64(alice)+"\r\n", "334 UGFzc3dvcmQ6\r\n")
	w.expect(b64("wrong-password")+"\r\n", "535 5.7.8 Invalid credentials\r\n")
	w.expect("AUTH PLAIN\r\n", "334 \r\n")
	w.expect(b64("\x00"+alice+"\x00also-wrong")+"\r\n", "535 5.7.8 Invalid credentials\r\n")
	w.expect("AUTH PLAIN "+b64("bob@gmail.com\x00"+alice+"\x00x")+"\r\n", "535 5.7.8 Authorization identity must be empty or equal the user name\r\n")
	w.expect("AUTH PLAIN "+b64("no-nul")+"\r\n", "501 5.5.2 Malformed authentication response\r\n")
	w.expect("AUTH CRAM-MD5\r\n", "504 5.5.4 Unrecognized authentication type (use PLAIN or LOGIN)\r\n")
	w.expect("AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n")
	w.expect("*\r\n", "501 5.0.0 Negotiation cancelled\r\n")
	w.expect("AUTH LOGIN "+b64(alice)+"\r\n", "334 UGFzc3dvcmQ6\r\n")
	w.expect(b64(alicePW)+"\r\n", "235 2.0.0 Authentication succeeded\r\n")
	w.expect("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePW)+"\r\n", "503 5.5.1 Already authenticated\r\n")
	// After AUTH the session's limits are its upstream's: the fake's SIZE
	// and SMTPUTF8.
	w.expect("EHLO client.test\r\n", ehloUpstream)
	w.expect("QUIT\r\n", "221 2.0.0 Bye\r\n")
	w.closed()
	if b.auth.Calls() != 3 {
		t.Errorf("authenticator called %d times, want 3 (refused before a password check otherwise)", b.auth.Calls())
	}
	b.logs.AssertNoSecrets(t, b.secrets()...)
}

// TestTranscriptLoopbackPlaintextAUTH: a loopback listener without TLS
// offers AUTH at once (PlaintextAuthAllowed).
func TestTranscriptLoopbackPlaintextAUTH(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	w := dialWire(t, b.addr)
	if got := w.reply(); got != greeting {
		t.Fatalf("greeting %q", got)
	}
	w.expect("EHLO client.test\r\n", ehloTLS)
	w.expect("HELO client.test\r\n", "250 2.0.0 Hello client.test\r\n")
	w.expect("MAIL FROM:<a@b.c>\r\n", "530 5.7.0 Authentication required\r\n")
	w.expect("RCPT TO:<victim@example.com>\r\n", "502 5.5.1 Missing MAIL FROM command.\r\n")
	w.expect("QUIT\r\n", "221 2.0.0 Bye\r\n")
}
