package admin

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// Bait strings: if any reaches a page, a secret could.
const (
	baitAccess   = "ya29.BAITaccessTOKEN0123456789"
	baitRefresh  = "1//BAITrefreshTOKEN0123456789"
	baitJWT      = "eyJhbGciOiJSUzI1NiJ9.eyJCQUlUIjoiand0In0.BAITsignature"
	baitPassword = "BAIT-app-password-hunter2"
	baitSecret   = "BAIT-client-secret-GOCSPX"
	baitBearer   = "BAITbearerOPAQUE77"
	baitXOAuth   = "BAITxoauthTOKEN55"
	baitCode     = "BAITauthCODE4242"
	baitJSON     = "BAITjsonREFRESH31"
)

func baitSource() *fakeSource {
	now := time.Now()
	xoauth := base64.StdEncoding.EncodeToString([]byte("user=alice@gmail.com\x01auth=Bearer " + baitXOAuth + "\x01\x01"))
	src := sampleSource(now)
	src.health = errors.New("daemon: listener imap: refresh_token=" + baitRefresh)
	src.accounts = append(src.accounts, tokens.AccountStatus{
		Account: "carol@gmail.com", Flow: tokens.FlowAuthCode, State: tokens.StateError,
		LastError: "tokens: carol@gmail.com: refresh: server said Authorization: Bearer " + baitBearer +
			` body {"access_token": "` + baitJSON + `", "expires_in": 3599} and ` + baitAccess,
	})
	src.errors = []ErrorEntry{
		{Time: now, Message: "imap: upstream refused AUTHENTICATE XOAUTH2 " + xoauth,
			Attrs: map[string]string{"account": "carol@gmail.com", "password": baitPassword, "client_secret": baitSecret,
				"access_token": baitAccess, "detail": "callback code=" + baitCode + "&state=x"}},
		{Time: now.Add(-time.Minute), Message: "tokens: assertion " + baitJWT + " refused; refresh token " + baitRefresh,
			Attrs: map[string]string{"proto": "smtp"}},
	}
	return src
}

func TestNoSecretOnAnyPage(t *testing.T) {
	m := metrics.New()
	m.Login("imap", "ok")
	srv := serve(t, New(baitSource(), m, nil))
	baits := []string{baitAccess, baitRefresh, baitJWT, baitPassword, baitSecret, baitBearer, baitXOAuth, baitCode, baitJSON,
		"BAIT"} // and no fragment of any
	for _, path := range []string{"/", "/status.json", "/healthz", "/metrics"} {
		_, body := get(t, srv.Client(), srv.URL+path)
		for _, b := range baits {
			if strings.Contains(body, b) {
				t.Errorf("%s shows bait %q", path, b)
			}
		}
	}
	// Masking must not blank the useful part of the text.
	_, page := get(t, srv.Client(), srv.URL+"/")
	for _, want := range []string{"carol@gmail.com", "upstream refused AUTHENTICATE XOAUTH2 ***", "Authorization: Bearer ***",
		"password=***", "refresh_token=***", "code=***&amp;state=x"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestScrubKeepsOrdinaryText(t *testing.T) {
	for _, s := range []string{
		`tokens: alice@gmail.com: refresh: invalid_grant: Token has been expired or revoked.: run "oauthbridge authorize alice@gmail.com"`,
		"proxy: no access token: tokens: bob: token: not authorized yet",
		"imap: upstream greeting: read tcp 127.0.0.1:43210->142.250.1.108:993: i/o timeout",
		"smtp: upstream said 535 5.7.8 Username and Password not accepted. Learn more at https://support.google.com/mail/?p=BadCredentials",
		"status code: 400",
		"QUFBQUFBQUFBQUFBQUFBQUFBQUE=", // base64 of no SASL payload
	} {
		if got := scrub(s); got != s {
			t.Errorf("scrub changed ordinary text:\n in: %s\nout: %s", s, got)
		}
	}
}
