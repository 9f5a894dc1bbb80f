// Package pop3 is the POP3 bridge: legacy clients log in locally with an
// app password (USER/PASS or AUTH PLAIN/LOGIN, RFC 1939/5034, STLS per
// RFC 2595), and the bridge logs in to the provider's POP3 server with
// SASL XOAUTH2 and relays the session.
//
// Typical use, as the daemon wires it:
//
//	srv := &pop3.Server{
//		Auth:            auth,    // proxy.LocalAuth
//		Dialer:          &proxy.Dialer{},
//		Limits:          limiter, // per-account cap: "-ERR [IN-USE]"
//		Logger:          log,
//		Metrics:         m,
//		LoginTimeout:    cfg.Timeouts.Login,    // 60s
//		IdleTimeout:     cfg.Timeouts.POP3Idle, // 10m (RFC 1939 §3)
//		UpstreamTimeout: cfg.Timeouts.Upstream, // 30s
//	}
//	// Each proxy.Account's Session policy sets ResumeWithin (config
//	// resume.within) and RotateBefore.
//	l, err := proxy.Listen(proxy.ListenerConfig{Info: info, Limiter: limiter}, srv)
//	go l.Serve()
//
// What the client sees:
//
//   - Before login everything is local (preauth.go); CAPA answers a fixed
//     set (capa.go). A wrong password never reaches the token source.
//   - After login commands are validated, message numbers mapped, and
//     answers relayed byte for byte; multi-line answers (RETR, TOP, LIST,
//     UIDL) are copied in bulk out of the upstream reader's buffer while
//     looking for the terminating "." line (multiline.go), dot-stuffing
//     untouched.
//   - The client's session outlives upstream sessions (resume.go): the
//     bridge keeps the maildrop's UIDL listing from login, and when the
//     upstream connection is lost it logs in again, maps message numbers
//     by UIDL, replays DELE marks, and replays the command in flight if
//     none of its answer reached the client. A QUIT whose answer was lost
//     is completed so that each marked message is deleted exactly once.
//
// Graceful shutdown (ctx cancelled) lets the command in progress finish;
// a client waiting between commands gets "-ERR [SYS/TEMP] Server shutting
// down, reconnect shortly" and is closed, its DELE marks uncommitted (POP3
// has no unsolicited responses, so that last line is what a client
// reading its next answer sees, as from Dovecot).
package pop3
