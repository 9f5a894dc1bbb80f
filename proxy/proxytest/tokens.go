package proxytest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Tokens is a proxy.TokenSource for protocol tests, handing out tokens
// from Issue (typically a fake upstream's token authority). It counts
// calls, remembers every token it handed out (for no-secret assertions),
// and can be revoked the way a real grant dies: Token keeps returning the
// token in hand, which the upstream now refuses, and the forced refresh
// then fails with a consent-required error (as tokens.Manager's does
// after invalid_grant).
type Tokens struct {
	// Issue makes a new access token valid until expiry.
	Issue func() (access string, expiry time.Time)

	calls, forced atomic.Int64

	mu      sync.Mutex // guards the fields below
	tok     *oauth2.Token
	issued  []string
	revoked bool
}

// ConsentError is the error of a revoked Tokens: ConsentRequired is true.
type ConsentError struct{}

func (ConsentError) Error() string         { return "proxytest: invalid_grant (test)" }
func (ConsentError) ConsentRequired() bool { return true }

// revokedToken is what a revoked Tokens hands out when it has none: a
// token the upstream does not know.
const revokedToken = "ya29.revoked-token-for-test"

// Token returns the current token, issuing one when there is none or it
// expires within half a second.
func (t *Tokens) Token(ctx context.Context) (*oauth2.Token, error) {
	t.calls.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.revoked {
		if t.tok == nil {
			return &oauth2.Token{AccessToken: revokedToken, Expiry: time.Now().Add(time.Hour)}, nil
		}
		return t.tok, nil
	}
	if t.tok == nil || time.Until(t.tok.Expiry) < 500*time.Millisecond {
		t.issueLocked()
	}
	return t.tok, nil
}

// ForceRefresh issues a new token unless the current one is already a
// different one than rejected.
func (t *Tokens) ForceRefresh(ctx context.Context, rejected string) (*oauth2.Token, error) {
	t.forced.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.revoked {
		return nil, ConsentError{}
	}
	if t.tok == nil || t.tok.AccessToken == rejected {
		t.issueLocked()
	}
	return t.tok, nil
}

func (t *Tokens) issueLocked() {
	access, expiry := t.Issue()
	t.tok = &oauth2.Token{AccessToken: access, Expiry: expiry}
	t.issued = append(t.issued, access)
}

// SetToken makes tok the current token (say one the upstream refuses).
func (t *Tokens) SetToken(tok *oauth2.Token) {
	t.mu.Lock()
	t.tok = tok
	t.mu.Unlock()
}

// Revoke makes the grant dead (see Tokens).
func (t *Tokens) Revoke() {
	t.mu.Lock()
	t.revoked = true
	t.mu.Unlock()
}

// Calls and Forced count Token and ForceRefresh calls.
func (t *Tokens) Calls() int64  { return t.calls.Load() }
func (t *Tokens) Forced() int64 { return t.forced.Load() }

// Issued returns every token handed out so far.
func (t *Tokens) Issued() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.issued...)
}
