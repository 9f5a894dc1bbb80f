package smtp

import (
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// TestLocalAuthThrottle: with the daemon's authenticator, failed AUTHs are
// counted per client address; after BanAfter failures even the right
// password is refused (454 4.7.0, temporary) without a password check or
// an upstream login, and each failure is one fail2ban line carrying
// proto=smtp, the session and client_ip. The bridge's own lines never use
// that message.
func TestLocalAuthThrottle(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	cheap := proxy.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	hash, err := proxy.HashPasswordParams(alicePW, cheap)
	if err != nil {
		t.Fatal(err)
	}
	logs := proxytest.NewLogBuffer()
	acct := &proxy.Account{Name: alice, UpstreamUser: alice, Tokens: staticToken("never-used"),
		SMTP: proxy.Endpoint{Addr: "upstream.invalid:465"}}
	la, err := proxy.NewLocalAuth([]proxy.LocalAccount{{Pattern: alice, Hashes: []string{hash},
		New: func(string) *proxy.Account { return acct }}},
		proxy.LocalAuthOptions{Logger: logs.Logger(), Throttle: proxy.ThrottleConfig{BanAfter: 2, BanFor: time.Minute, Window: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Auth: la, Logger: logs.Logger(), Hostname: "bridge.test", Dialer: &proxy.Dialer{Dial: failDial}}
	l := proxytest.Start(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: proto}, Logger: logs.Logger()}, srv)
	w := dialWire(t, l.Addr().String())
	w.reply()
	w.expect("EHLO client.test\r\n", ehloTLS)
	for range 2 {
		w.expect("AUTH PLAIN "+b64("\x00"+alice+"\x00guess")+"\r\n", "535 5.7.8 Invalid credentials\r\n")
	}
	w.expect("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePW)+"\r\n",
		"454 4.7.0 Too many failed logins from your address, try again later\r\n")
	fails := logs.Lines(`msg="login failed"`)
	if len(fails) != 3 {
		t.Fatalf("login failed lines: %q", fails)
	}
	for _, l := range fails {
		if !strings.Contains(l, "proto=smtp") || !strings.Contains(l, "client_ip=127.0.0.1") || !strings.Contains(l, "session=") {
			t.Errorf("fail2ban line lacks fields: %s", l)
		}
	}
	logs.AssertNoSecrets(t, alicePW, "guess")
}
