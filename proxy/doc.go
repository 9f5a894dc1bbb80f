// Package proxy holds what the protocol bridges share: the listener (TLS
// modes, allow lists, connection caps, accept loop, Shutdown), the local
// authenticator (argon2id app passwords, throttling), the upstream dialer,
// the XOAUTH2 SASL client and its refresh-once login, and the mapping of
// failures to client-visible text.
//
// Typical use, as the daemon wires it:
//
//	auth := proxy.NewLocalAuth(accounts, proxy.ThrottleConfig{...})
//	h := &imap.Server{Auth: auth, Dialer: &proxy.Dialer{}, Logger: log}
//	l, err := proxy.Listen(proxy.ListenerConfig{Info: info, Allow: allow}, h, log)
//	go l.Serve()
//	...
//	l.Shutdown(ctx) // stop accepting, let sessions finish, then force-close
//
// The protocol packages (proxy/imap, proxy/pop3, proxy/smtp) depend on
// this package and never on each other, on config or on cmd.
package proxy
