// Package proxy holds what the protocol bridges share: the listener (TLS
// modes, allow lists, connection caps, accept loop, Shutdown), the local
// authenticator (argon2id app passwords, verified-password cache,
// throttling), session caps, server TLS configs, redaction of debug
// transcripts, the upstream dialer, the XOAUTH2 SASL client and its
// refresh-once login, and the mapping of failures to client-visible text.
//
// Typical use, as the daemon wires it:
//
//	auth, err := proxy.NewLocalAuth(accounts, proxy.LocalAuthOptions{Throttle: proxy.ThrottleConfig{...}, Logger: log})
//	limits := proxy.NewLimiter(proxy.Limits{MaxConnections: 20000, PerAddress: 50, PerAccount: 7})
//	tlsCfg, err := proxy.ServerTLSConfig(proxy.ServerTLSOptions{StateDir: dir, ListenAddr: addr, MinVersion: "1.2"})
//	h := &imap.Server{Auth: auth, Dialer: &proxy.Dialer{}, Limits: limits, Logger: log}
//	l, err := proxy.Listen(proxy.ListenerConfig{
//		Info:    proxy.ListenerInfo{Protocol: "imap", Addr: addr, TLS: proxy.TLSImplicit, TLSConfig: tlsCfg},
//		Allow:   allow, Limiter: limits, Logger: log, Metrics: m,
//	}, h)
//	go l.Serve()
//	...
//	l.SetHandler(newH); auth.Update(newAccounts) // SIGHUP
//	l.Shutdown(ctx) // stop accepting, let sessions finish, then force-close
//
// The protocol packages (proxy/imap, proxy/pop3, proxy/smtp) depend on
// this package and never on each other, on config or on cmd. Their tests
// use proxy/proxytest.
package proxy
