package tokens

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jws"
)

const (
	grantJWTBearer      = "urn:ietf:params:oauth:grant-type:jwt-bearer"            // RFC 7523 §2.1
	grantDeviceCode     = "urn:ietf:params:oauth:grant-type:device_code"           // RFC 8628 §3.4
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" // RFC 7523 §2.2
)

// oauthConfig is the x/oauth2 view of an account. Client credentials go in
// the request body: x/oauth2's auto-detection would retry a failed request
// with the other style, and a retried refresh with a rotating refresh
// token can be a replay that revokes the grant. Google and Microsoft both
// accept the body style.
func (a *account) oauthConfig(redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     a.spec.ClientID,
		ClientSecret: a.spec.ClientSecret,
		Endpoint: oauth2.Endpoint{AuthURL: a.spec.AuthURL, TokenURL: a.tokenURL,
			DeviceAuthURL: a.spec.DeviceAuthURL, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirectURL,
		Scopes:      a.spec.Scopes,
	}
}

// httpContext carries the account's HTTP client to x/oauth2.
func (a *account) httpContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, a.client)
}

// refreshGrant runs RFC 6749 §6 with x/oauth2. A fresh TokenSource per
// refresh: its caching is replaced by the Source's, and its context (which
// x/oauth2 keeps for later refreshes) is never reused.
func (a *account) refreshGrant(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	return a.oauthConfig("").TokenSource(a.httpContext(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// grant obtains a token without a refresh token: a JWT bearer grant for a
// service account (sub = subject), or client credentials.
func (a *account) grant(ctx context.Context, subject string) (*oauth2.Token, error) {
	form := url.Values{}
	switch a.spec.Flow {
	case FlowServiceAccount:
		key, err := parseRSAKey(a.saKeyPEM)
		if err != nil {
			return nil, err
		}
		// Claims are checked by the provider against real time, not the
		// Manager's clock.
		now := time.Now()
		cs := &jws.ClaimSet{Iss: a.saEmail, Sub: subject, Scope: strings.Join(a.spec.Scopes, " "),
			Aud: a.tokenURL, Iat: now.Unix(), Exp: now.Add(time.Hour).Unix()}
		assertion, err := jws.Encode(&jws.Header{Algorithm: "RS256", Typ: "JWT", KeyID: a.saKeyID}, cs, key)
		if err != nil {
			return nil, fmt.Errorf("tokens: sign service account assertion: %w", err)
		}
		form.Set("grant_type", grantJWTBearer)
		form.Set("assertion", assertion)
	case FlowClientCredentials:
		form.Set("grant_type", "client_credentials")
		form.Set("client_id", a.spec.ClientID)
		form.Set("scope", strings.Join(a.spec.Scopes, " "))
		if a.certKey != nil {
			assertion, err := a.clientAssertion(time.Now())
			if err != nil {
				return nil, err
			}
			form.Set("client_assertion_type", clientAssertionType)
			form.Set("client_assertion", assertion)
		} else {
			form.Set("client_secret", a.spec.ClientSecret)
		}
	default:
		return nil, fmt.Errorf("tokens: flow %s has no grant", a.spec.Flow)
	}
	return tokenRequest(ctx, a.client, a.tokenURL, form)
}

// clientAssertion is the RFC 7523 §3 JWT with which a client authenticates
// by certificate, in the form Microsoft documents: RS256, x5t (and
// x5t#S256) naming the certificate, iss = sub = client id, aud = token URL,
// a unique jti, valid for 10 minutes.
func (a *account) clientAssertion(now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, jti); err != nil {
		return "", err
	}
	h, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "x5t": a.x5t, "x5t#S256": a.x5tS256})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(map[string]any{
		"aud": a.tokenURL, "iss": a.spec.ClientID, "sub": a.spec.ClientID,
		"jti": base64.RawURLEncoding.EncodeToString(jti),
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	if err != nil {
		return "", err
	}
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.certKey, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("tokens: sign client assertion: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// tokenRequest POSTs a token request (RFC 6749 §4) and decodes the answer
// (§5.1, §5.2). OAuth errors come back as *oauth2.RetrieveError, transport
// errors as they are. Used where x/oauth2 has no fitting call (JWT bearer
// without its error-text wrapping, client assertions, device polling with
// our own timing).
func tokenRequest(ctx context.Context, hc *http.Client, tokenURL string, form url.Values) (*oauth2.Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var tj struct {
		AccessToken      string          `json:"access_token"`
		TokenType        string          `json:"token_type"`
		RefreshToken     string          `json:"refresh_token"`
		ExpiresIn        json.RawMessage `json:"expires_in"` // a number; some servers quote it
		Error            string          `json:"error"`
		ErrorDescription string          `json:"error_description"`
		ErrorURI         string          `json:"error_uri"`
	}
	jerr := json.Unmarshal(body, &tj)
	failed := resp.StatusCode < 200 || resp.StatusCode > 299
	if failed || tj.Error != "" {
		return nil, &oauth2.RetrieveError{Response: resp, Body: body,
			ErrorCode: tj.Error, ErrorDescription: tj.ErrorDescription, ErrorURI: tj.ErrorURI}
	}
	if jerr != nil {
		return nil, errors.New("tokens: the token endpoint's answer is not JSON")
	}
	if tj.AccessToken == "" {
		return nil, errors.New("tokens: the token endpoint's answer has no access_token")
	}
	tok := &oauth2.Token{AccessToken: tj.AccessToken, TokenType: tj.TokenType, RefreshToken: tj.RefreshToken}
	if n, err := strconv.ParseInt(strings.Trim(string(tj.ExpiresIn), `"`), 10, 64); err == nil {
		tok.ExpiresIn = n
	}
	return tok, nil
}
