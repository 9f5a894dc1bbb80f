package fakegmail

import (
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// TokenAuthority is what the fake mail servers ask about access tokens:
// the embedded fake OAuth server by default, or anything a test supplies.
type TokenAuthority interface {
	// Validate reports whether token is a live access token for user.
	Validate(user, token string) bool
	// Expiry is when token expires (zero when unknown).
	Expiry(token string) time.Time
	// Issue grants user new tokens, as if the user had consented.
	Issue(user string) (access, refresh string)
}

// oauthServer stands in for fakeoauth.Server until that package lands.
type oauthServer struct {
	lifetime time.Duration
	mu       sync.Mutex // guards tokens
	tokens   map[string]memToken
}

type memToken struct {
	user   string
	expiry time.Time
}

func startOAuth(lifetime time.Duration, _ *slog.Logger) (*oauthServer, error) {
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	return &oauthServer{lifetime: lifetime, tokens: map[string]memToken{}}, nil
}

func (o *oauthServer) Close() error { return nil }

func (o *oauthServer) Issue(user string) (access, refresh string) {
	access = "ya29." + rand.Text()
	o.mu.Lock()
	o.tokens[access] = memToken{user: user, expiry: time.Now().Add(o.lifetime)}
	o.mu.Unlock()
	return access, "1//" + rand.Text()
}

func (o *oauthServer) Validate(user, token string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.tokens[token]
	return ok && strings.EqualFold(t.user, user) && time.Now().Before(t.expiry)
}

func (o *oauthServer) Expiry(token string) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tokens[token].expiry
}
