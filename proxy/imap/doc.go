// Package imap bridges local IMAP clients that log in with a password to
// an upstream IMAP server that takes XOAUTH2, and keeps each client's
// session alive across the upstream's.
//
// Typical use, as the daemon wires it:
//
//	srv := &imap.Server{
//		Auth:    localAuth,             // proxy.Authenticator: app passwords -> *proxy.Account
//		Dialer:  &proxy.Dialer{},       // upstream TLS, injectable for tests
//		Limits:  limiter,               // per-account session caps
//		Logger:  log,
//		Metrics: m,
//	}
//	l, err := proxy.Listen(proxy.ListenerConfig{Info: info, Allow: allow}, srv)
//	go l.Serve()
//
// A session has two goroutines: the client loop (commands to the
// upstream) and the upstream loop (responses to the client). Both parse
// only IMAP framing — tags, literals (counted, never scanned),
// continuations — and track what a new upstream session would need: the
// ENABLEd extensions, the client's ID, the selected mailbox and its mode,
// the UID of every message in the client's view, and the commands in
// flight. With that the bridge rotates the upstream session before its
// token expires (tasks.go: rotateTask) and resumes it after an
// unsolicited BYE or a dropped connection (resume.go), reconciling the
// client's view so that a client never acts on a shifted sequence number
// (view.go, translate.go). docs/ARCHITECTURE.md tells the whole story.
//
// Files: server.go (Server, ServeConn), preauth.go (not-authenticated
// state), upstream.go (connect and XOAUTH2), wire.go and args.go (framing),
// buffers.go (pooled connection buffers), client.go and responses.go (the
// two loops), command.go (what each command means to the bridge), caps.go
// (capability filtering), view.go, translate.go, restore.go, tasks.go,
// resume.go, check.go (the doctor's login check).
package imap
