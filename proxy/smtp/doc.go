// Package smtp is the SMTP bridge: legacy clients submit mail with AUTH
// PLAIN or LOGIN and an app password; the bridge terminates SMTP locally
// (go-smtp's server) and re-originates each message upstream (go-smtp's
// client) with SASL XOAUTH2, relaying the upstream's replies.
//
// Typical use, as the daemon wires it:
//
//	srv := &smtp.Server{
//		Auth:     localAuth,          // proxy.Authenticator
//		Dialer:   &proxy.Dialer{},
//		Limits:   limiter,            // per-account session cap
//		Logger:   log,
//		Metrics:  m,
//		Hostname: "bridge.example.net",
//		// devices that cannot authenticate (relay_without_auth):
//		RelayFrom:    []netip.Prefix{netip.MustParsePrefix("192.0.2.50/32")},
//		RelayAccount: "scanner@example.com",
//		SpoolMemory:  1 << 20,
//		SpoolDir:     os.TempDir(),
//	}
//	l, err := proxy.Listen(proxy.ListenerConfig{Info: info, ...}, srv)
//	go l.Serve()
//
// What a client sees:
//
//   - EHLO offers PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, CHUNKING,
//     STARTTLS (on a starttls listener), AUTH PLAIN LOGIN (where a
//     password may be sent), SMTPUTF8 and SIZE as the upstream offers them
//     (size.go), and LIMITS RCPTMAX.
//   - AUTH checks the app password and logs in upstream at once, so a
//     revoked grant is reported at AUTH (535 naming "oauthbridge
//     authorize ACCOUNT").
//   - MAIL without AUTH is refused with 530 unless the client address is
//     in RelayFrom; then the session sends as RelayAccount.
//   - MAIL and each RCPT go upstream one by one: every recipient gets the
//     upstream's own reply. DATA's final reply is the upstream's; 250 only
//     after the upstream's 250.
//
// Continuity: a lost upstream connection is re-established, the
// transaction replayed, a message cut in transfer retried once from its
// spool; a cut after the final dot with no reply gets 451 4.4.0 (see
// data.go). An upstream session past its token's lifetime is replaced
// between transactions.
//
// Files: server.go (Server, ServeConn, Reject), clientconn.go (deadlines,
// drain, TLS-on-plaintext), session.go (state, resume, rotation), auth.go
// (PLAIN, LOGIN, login), envelope.go (MAIL, RCPT), data.go (DATA/BDAT,
// streaming, retry), spool.go, upstream.go (dial, XOAUTH2), size.go,
// replies.go (every reply the bridge makes itself).
package smtp
