// Package fakegmail is a fake Gmail (or Microsoft 365) upstream for the
// bridge's component tests and for "oauthbridge demo": IMAP and POP3 over
// implicit TLS, SMTP over implicit TLS and STARTTLS, all accepting only
// XOAUTH2 and failing it exactly as Gmail does, with knobs that end
// sessions the ways real upstreams do.
//
// Typical use:
//
//	fg, err := fakegmail.Start(fakegmail.Options{Users: []string{"alice@gmail.com"}})
//	if err != nil { ... }
//	defer fg.Close()
//	tlsCfg := fg.ClientTLSConfig()            // or fg.RootCAs()
//	token := fg.AccessToken("alice@gmail.com") // valid now
//	c, err := imapclient.DialTLS(fg.IMAPAddr(), &imapclient.Options{TLSConfig: tlsCfg})
//	...
//	fg.Kick("alice@gmail.com", fakegmail.KickGmailBye)  // "* BYE Session expired, please login again."
//	fg.ArmFault(fakegmail.Fault{User: "alice@gmail.com", Proto: fakegmail.ProtoIMAP,
//		OnCommand: "UID FETCH", Kick: fakegmail.KickMidResponse})
//	fg.SetSessionLifetime(fakegmail.LifetimeToken)      // BYE when the login token expires
//	fg.Append("alice@gmail.com", "INBOX", msg)           // IDLE sees EXISTS
//
// It is an independent oracle: it imports nothing from the bridge (proxy/,
// tokens/), so a bug shared by both sides, say in XOAUTH2 encoding, cannot
// hide.
//
// IMAP is go-imap's imapserver over imapmemserver. Both own their socket,
// so the knobs sit in a net.Conn wrapper below them (wireconn.go): it hands
// the library one client line at a time, cuts sessions on chosen
// commands, writes BYEs between responses, rewrites the greeting and the
// capability lines as Gmail writes them, and implements ID and
// COMPRESS=DEFLATE, which imapserver lacks. POP3 is written here. SMTP is
// go-smtp's server behind the same wrapper.
package fakegmail
