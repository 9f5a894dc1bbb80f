package pop3_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
)

type revoked struct{}

func (revoked) Error() string         { return "test: invalid_grant" }
func (revoked) ConsentRequired() bool { return true }

func TestCheckUpstream(t *testing.T) {
	fg, err := fakegmail.Start(fakegmail.Options{Users: []string{user}, SeedMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	acct := &proxy.Account{
		Name: user, UpstreamUser: user,
		Tokens: proxy.TokenFunc(func(ctx context.Context, force bool) (*oauth2.Token, error) {
			return &oauth2.Token{AccessToken: fg.AccessToken(user), Expiry: time.Now().Add(time.Hour)}, nil
		}),
		POP3: proxy.Endpoint{Addr: fg.POP3Addr(), TLSConfig: &tls.Config{RootCAs: fg.RootCAs()}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := pop3.CheckUpstream(ctx, &proxy.Dialer{}, acct)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "maildrop 3 ") {
		t.Fatalf("CheckUpstream = %q, want the 3 seeded messages", got)
	}
	msgs, _, _ := fg.Messages(user, "INBOX")
	if len(msgs) != 3 {
		t.Fatalf("the check changed the maildrop: %d messages", len(msgs))
	}
	acct.Tokens = proxy.TokenFunc(func(context.Context, bool) (*oauth2.Token, error) { return nil, revoked{} })
	if _, err := pop3.CheckUpstream(ctx, &proxy.Dialer{}, acct); proxy.Classify(err) != proxy.FailConsent {
		t.Fatalf("CheckUpstream with a revoked grant: %v", err)
	}
}
