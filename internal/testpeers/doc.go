// Package testpeers lets tests use real third-party software as peers of
// the bridge: real mail clients (curl, Python, fetchmail, swaks, msmtp,
// mbsync, ...) and a real upstream, Dovecot 2.3, started by the test.
//
// Typical use:
//
//	func TestThroughDovecot(t *testing.T) {
//		d := testpeers.StartDovecot(t, testpeers.DovecotOptions{
//			Users:      []string{"alice@example.test"},
//			Introspect: fakeOAuth.Introspect, // or nil and d.Token(user)
//		})
//		// Upstream: d.IMAPAddr(), d.POP3Addr() (implicit TLS),
//		// d.SMTPAddr() (implicit TLS) or d.SubmissionAddr() (STARTTLS),
//		// trusting d.RootCAs() / d.CACertFile(); XOAUTH2 or OAUTHBEARER.
//		if err := d.Deliver("alice@example.test", msg); err != nil { // IDLE sees it
//			t.Fatal(err)
//		}
//		if err := d.Kick("alice@example.test"); err != nil { // a real upstream cut
//			t.Fatal(err)
//		}
//		msgs, err := d.WaitDelivered(ctx, 1) // what submission relayed
//	}
//
//	func TestWithCurl(t *testing.T) {
//		out, _, err := testpeers.RunClient(t, ctx, "curl", "-sS", "--cacert", ca, "imaps://...")
//	}
//
// Every helper skips the test when the program it needs is missing, naming
// the program and its Debian package, and fails it instead when
// OAUTHBRIDGE_REQUIRE_PEERS=1 (CI, where scripts/test.sh installed them).
//
// What Dovecot 2.3.19 does that tests must expect (checked by this
// package's tests):
//   - A failed XOAUTH2 login gets a challenge, base64 of
//     {"status":"401","schemes":"bearer","scope":"mail"}; after an empty
//     client line comes "NO [AUTHENTICATIONFAILED] Authentication failed."
//     (SMTP: 334 then "535 5.7.8 Authentication failed."). go-imap's
//     imapclient answers the challenge with "=", which Dovecot rejects
//     with BAD (the connection stays usable). A failed login is answered
//     after up to 0.5 s.
//   - Tokens are checked only at login; Revoke does not end sessions.
//   - Submission adds a Received: header and relays the rest unchanged.
//   - IDLE reports a Deliver about 0.5 s later (inotify), at worst ~1 s.
//
// doveadm kick (Dovecot.Kick) and Dovecot.Stop end sessions with these
// lines, then close the connection:
//
//	IMAP        * BYE Server shutting down.
//	POP3        -ERR [SYS/TEMP] Server shutting down.
//	submission  421 4.3.2 localhost Shutting down
package testpeers
