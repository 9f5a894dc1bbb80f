package fakegmail

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail/fakeoauth"
)

// TokenAuthority is what the fake mail servers ask about access tokens:
// the embedded fakeoauth server by default, or anything a test supplies.
type TokenAuthority interface {
	// Validate reports whether token is a live access token for user.
	Validate(user, token string) bool
	// Expiry is when token expires (zero when unknown).
	Expiry(token string) time.Time
	// Issue grants user new tokens, as if the user had consented.
	Issue(user string) (access, refresh string)
}

var _ TokenAuthority = (*fakeoauth.Server)(nil)

type oauthServer = fakeoauth.Server

func startOAuth(lifetime time.Duration, log *slog.Logger) (*fakeoauth.Server, error) {
	srv, err := fakeoauth.Start(fakeoauth.Options{TokenLifetime: lifetime, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("fakegmail: %w", err)
	}
	return srv, nil
}

// OAuth is the embedded fake OAuth server (AuthURL, TokenURL, ClientID,
// ClientSecret, Issue, Revoke, knobs); nil when Options.Tokens was given.
func (s *Server) OAuth() *fakeoauth.Server { return s.oauth }
