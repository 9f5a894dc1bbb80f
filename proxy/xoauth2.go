package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"
	"golang.org/x/oauth2"
)

// XOAuth2Payload is the XOAUTH2 initial client response before base64:
// "user=" USER ^A "auth=Bearer " TOKEN ^A ^A.
func XOAuth2Payload(user, token string) []byte {
	b := make([]byte, 0, len(user)+len(token)+20)
	b = append(b, "user="...)
	b = append(b, user...)
	b = append(b, "\x01auth=Bearer "...)
	b = append(b, token...)
	b = append(b, "\x01\x01"...)
	return b
}

// XOAuth2 is a go-sasl Client for XOAUTH2 (Google, Microsoft). go-sasl has
// none (see FACTS.md).
//
// A failing server sends a challenge holding a JSON error; the client must
// answer it with an empty response, after which the server sends its final
// failure. Next therefore records the challenge and returns an empty,
// non-nil response: returning an error instead would desynchronise
// go-imap's and go-smtp's clients, and a nil response sends nothing in
// go-smtp.
type XOAuth2 struct {
	User, Token string
	// Challenge is the last challenge the server sent, decoded from base64
	// by the SASL driver: Gmail's JSON error. Nil when none came.
	Challenge []byte
}

var _ sasl.Client = (*XOAuth2)(nil)

func (x *XOAuth2) Start() (string, []byte, error) {
	return "XOAUTH2", XOAuth2Payload(x.User, x.Token), nil
}

func (x *XOAuth2) Next(challenge []byte) ([]byte, error) {
	x.Challenge = append([]byte(nil), challenge...)
	return []byte{}, nil
}

// AuthError is an upstream's final refusal of an XOAUTH2 login.
type AuthError struct {
	// Status is the "status" of the server's JSON error challenge ("400",
	// "401", ...), or "" when it failed without one (Microsoft).
	Status string
	// Reply is the server's final reply line without the tag (for logs; it
	// holds no secret).
	Reply string
}

func (e *AuthError) Error() string {
	if e.Status != "" {
		return fmt.Sprintf("proxy: upstream refused the token (status %s): %s", e.Status, e.Reply)
	}
	return "proxy: upstream refused the token: " + e.Reply
}

// TokenRejected reports whether the refusal says the access token was bad,
// so a refreshed token may succeed: Gmail's 400/401 challenge, or a refusal
// without a challenge (Microsoft fails at once).
func (e *AuthError) TokenRejected() bool {
	return e.Status == "" || e.Status == "400" || e.Status == "401"
}

// NewAuthError builds an AuthError from the JSON challenge the server sent
// (may be nil) and its final reply.
func NewAuthError(challenge []byte, reply string) *AuthError {
	e := &AuthError{Reply: reply}
	if len(challenge) > 0 {
		var v struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(challenge, &v) == nil {
			e.Status = v.Status
		}
	}
	return e
}

// AuthenticateUpstream runs login with a valid access token. When the
// upstream refuses the token (an *AuthError whose TokenRejected is true),
// it force-refreshes once and runs login again with the new token. login
// decides whether a retry needs a new connection. It returns the token of
// the successful login, whose Expiry bounds the upstream session.
//
// Errors from the token source are returned wrapped in *TokenError.
func AuthenticateUpstream(ctx context.Context, src TokenSource, login func(accessToken string) error) (*oauth2.Token, error) {
	tok, err := src.Token(ctx)
	if err != nil {
		return nil, &TokenError{Err: err}
	}
	err = login(tok.AccessToken)
	var ae *AuthError
	if err == nil || !errors.As(err, &ae) || !ae.TokenRejected() {
		return tok, err
	}
	tok, err = src.ForceRefresh(ctx, tok.AccessToken)
	if err != nil {
		return nil, &TokenError{Err: err}
	}
	if err := login(tok.AccessToken); err != nil {
		return nil, err
	}
	return tok, nil
}

// TokenError is a failure to obtain an access token.
type TokenError struct{ Err error }

func (e *TokenError) Error() string { return "proxy: no access token: " + e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }

// ConsentRequired reports whether err says the account's grant is gone
// (invalid_grant: revoked, expired, or never authorized) so only a new
// "oauthbridge authorize" helps. Token sources mark such errors with a
// ConsentRequired() bool method.
func ConsentRequired(err error) bool {
	var cr interface{ ConsentRequired() bool }
	return errors.As(err, &cr) && cr.ConsentRequired()
}

// TokenFunc adapts a function to TokenSource, for tests and tools: force is
// true for ForceRefresh.
type TokenFunc func(ctx context.Context, force bool) (*oauth2.Token, error)

func (f TokenFunc) Token(ctx context.Context) (*oauth2.Token, error) { return f(ctx, false) }

func (f TokenFunc) ForceRefresh(ctx context.Context, rejected string) (*oauth2.Token, error) {
	return f(ctx, true)
}
