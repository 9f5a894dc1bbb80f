// Package testpeers lets tests use real third-party software as peers of
// the bridge: real mail clients (curl, Python, fetchmail, swaks, msmtp,
// mbsync, ...) and a real upstream, Dovecot 2.3, started by the test.
//
// Typical use:
//
//	func TestThroughDovecot(t *testing.T) {
//		d := testpeers.StartDovecot(t, testpeers.DovecotOptions{
//			Users: []string{"alice@example.test"},
//		})
//		tok := d.Token("alice@example.test") // or plug a fake OAuth server in Introspect
//		// point the bridge (or imapclient) at d.IMAPAddr() trusting d.RootCAs(),
//		// log in with AUTHENTICATE XOAUTH2 and tok ...
//		if err := d.Deliver("alice@example.test", msg); err != nil { t.Fatal(err) }
//		if err := d.Kick("alice@example.test"); err != nil { t.Fatal(err) }  // a real upstream fault
//	}
//
//	func TestWithCurl(t *testing.T) {
//		out, _, err := testpeers.RunClient(t, ctx, "curl", "-sS", "imap://...")
//		...
//	}
//
// Every helper skips the test when the program it needs is missing, naming
// the program and its Debian package, and fails it instead when
// OAUTHBRIDGE_REQUIRE_PEERS=1 (CI, where scripts/test.sh installed them).
package testpeers
