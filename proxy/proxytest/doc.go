// Package proxytest holds test helpers for the protocol packages: a real
// Listener on 127.0.0.1:0, an in-memory Authenticator, a log buffer that
// proves no secret was logged, and a goroutine leak check.
//
// Typical use in a protocol package's test:
//
//	func TestLogin(t *testing.T) {
//		proxytest.VerifyNoLeaks(t) // first, so its check runs last
//		logs := proxytest.NewLogBuffer()
//		auth := proxytest.NewAuthenticator()
//		auth.Add("alice@gmail.com", "app-password", &proxy.Account{Name: "alice@gmail.com", ...})
//		srv := &pop3.Server{Auth: auth, Logger: logs.Logger(), ...}
//		addr := proxytest.Serve(t, srv, proxy.ListenerInfo{Protocol: "pop3"})
//		c, _ := textproto.Dial("tcp", addr)
//		...
//		logs.AssertNoSecrets(t, "app-password", accessToken)
//	}
package proxytest
