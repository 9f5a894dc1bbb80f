package pop3_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/internal/fakegmail/fakeoauth"
	"github.com/oauthbridge/oauthbridge/proxy"
	"golang.org/x/oauth2"
)

// oauthTokens is a token source backed by a real OAuth exchange with the
// fake OAuth server: Token hands out the current access token, refreshing
// it with the refresh token when it is about to expire; ForceRefresh
// refreshes unless another caller already did. invalid_grant becomes an
// error whose ConsentRequired is true, as from tokens.Manager.
type oauthTokens struct {
	cfg oauth2.Config

	mu  sync.Mutex // guards tok and refreshes
	tok *oauth2.Token
	// margin: a token expiring within it is refreshed before use.
	margin time.Duration
}

func newOAuthTokens(o *fakeoauth.Server, margin time.Duration) *oauthTokens {
	access, refresh := o.Issue(user)
	return &oauthTokens{
		cfg: oauth2.Config{
			ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			Endpoint: oauth2.Endpoint{AuthURL: o.AuthURL(), TokenURL: o.TokenURL(), AuthStyle: oauth2.AuthStyleInParams},
		},
		tok:    &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: o.Expiry(access)},
		margin: margin,
	}
}

func (s *oauthTokens) get(ctx context.Context, force bool) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !force && time.Until(s.tok.Expiry) > s.margin {
		return s.tok, nil
	}
	src := s.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: s.tok.RefreshToken, Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return nil, fmt.Errorf("test tokens: %w", consentErr{})
		}
		return nil, fmt.Errorf("test tokens: refresh: %w", err)
	}
	s.tok = tok
	return tok, nil
}

// current is the access token in use now.
func (s *oauthTokens) current() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

// upstreamEnv is a bridge in front of a fake Gmail.
type upstreamEnv struct {
	*bridge
	fg    *fakegmail.Server
	oauth *fakeoauth.Server
	src   *oauthTokens
}

type envOptions struct {
	bridgeOptions
	tokenLifetime time.Duration
	refreshMargin time.Duration
	fakeOpts      func(*fakegmail.Options)
}

func startEnv(t testing.TB, o envOptions) *upstreamEnv {
	t.Helper()
	oauth, err := fakeoauth.Start(fakeoauth.Options{TokenLifetime: o.tokenLifetime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oauth.Close() })
	fo := fakegmail.Options{Users: []string{user}, Tokens: oauth}
	if o.fakeOpts != nil {
		o.fakeOpts(&fo)
	}
	fg, err := fakegmail.Start(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fg.Close() })
	src := newOAuthTokens(oauth, o.refreshMargin)
	o.tokens = src.get
	o.endpoint = proxy.Endpoint{Addr: fg.POP3Addr(), TLSConfig: fg.ClientTLSConfig()}
	if o.session.ResumeWithin == 0 {
		o.session.ResumeWithin = 10 * time.Second
	}
	return &upstreamEnv{bridge: startBridge(t, o.bridgeOptions), fg: fg, oauth: oauth, src: src}
}

// login opens a client session logged in with USER/PASS.
func (e *upstreamEnv) login(t testing.TB) *testClient {
	t.Helper()
	c := greeted(t, e.addr)
	c.ok("USER " + user)
	if got := c.cmd("PASS " + appPassword); got != "+OK Logged in" {
		t.Fatalf("login: %q", got)
	}
	// After "+OK Logged in" the bridge takes the upstream's listing with
	// its own UIDL and LIST; a command answered means that is done, so a
	// fault armed now hits the client's next command, not those.
	c.ok("NOOP")
	return c
}

// appendMessages stores msgs in the INBOX (the POP3 maildrop) and returns
// their UIDs.
func (e *upstreamEnv) appendMessages(t testing.TB, msgs ...[]byte) []uint32 {
	t.Helper()
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		uid, err := e.fg.Append(user, "INBOX", m)
		if err != nil {
			t.Fatal(err)
		}
		uids[i] = uid
	}
	return uids
}

// stored returns the messages left in the maildrop.
func (e *upstreamEnv) stored(t testing.TB) [][]byte {
	t.Helper()
	msgs, _, err := e.fg.Messages(user, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Data
	}
	return out
}

// message builds a test message of about size octets whose body has
// lines starting with "." (dot-stuffing) and a unique subject.
func message(subject string, size int) []byte {
	var b []byte
	b = fmt.Appendf(b, "From: bob@example.com\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\n", user, subject, subject)
	b = append(b, ".leading dot\r\n..two dots\r\n.\r\nnot the end\r\n"...)
	line := []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n")
	for i := 0; len(b) < size; i++ {
		if i%97 == 0 {
			b = append(b, '.')
		}
		b = append(b, line...)
	}
	return append(b, "-- \r\nend\r\n"...)
}
