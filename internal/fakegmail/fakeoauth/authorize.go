package fakeoauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// authCode is an issued authorization code (RFC 6749 §4.1.2).
type authCode struct {
	clientID, redirectURI, challenge, user, scope string
	expiry                                        time.Time
	used                                          bool
	grant                                         *grant // set once exchanged
}

// codeLifetime: RFC 6749 §4.1.2 recommends at most 10 minutes.
const codeLifetime = 10 * time.Minute

// handleAuthorize auto-approves (RFC 6749 §4.1.1) and redirects to the
// client's redirect URI. Errors about the client or the redirect URI are
// shown as a page and never redirected (§4.1.2.1: the redirect URI cannot be
// trusted then); the others go to the redirect URI as error=...
//
// The consenting user is the "user" query parameter, else the
// SetConsentUser knob, else login_hint, else Options.DefaultUser.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID, redirectURI, state := q.Get("client_id"), q.Get("redirect_uri"), q.Get("state")

	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[clientID]
	if c == nil {
		s.log.Debug("authorize: unknown client")
		http.Error(w, "Error 401: invalid_client\nThe OAuth client was not found.", http.StatusUnauthorized)
		return
	}
	if !c.redirectAllowed(redirectURI) {
		s.log.Debug("authorize: redirect uri not allowed", "redirect_uri", redirectURI)
		http.Error(w, "Error 400: redirect_uri_mismatch\nThe redirect URI is not registered for this client.", http.StatusBadRequest)
		return
	}
	fail := func(code, desc string) {
		s.log.Debug("authorize: refused", "error", code)
		redirect(w, r, redirectURI, url.Values{"error": {code}, "error_description": {desc}, "state": {state}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	case q.Get("scope") == "":
		fail("invalid_scope", "scope is required")
		return
	case s.deny:
		fail("access_denied", "the user denied access")
		return
	}
	user := q.Get("user")
	if user == "" {
		user = s.consentUser
	}
	if user == "" {
		user = q.Get("login_hint")
	}
	if user == "" {
		user = s.opts.DefaultUser
	}
	code := "fake-code-" + randomString(24)
	s.codes[code] = &authCode{clientID: clientID, redirectURI: redirectURI,
		challenge: q.Get("code_challenge"), user: user, scope: q.Get("scope"),
		expiry: s.now().Add(codeLifetime)}
	s.log.Debug("authorize: approved", "user", user)
	v := url.Values{"code": {code}, "scope": {q.Get("scope")}}
	if state != "" {
		v.Set("state", state)
	}
	redirect(w, r, redirectURI, v)
}

func redirect(w http.ResponseWriter, r *http.Request, to string, params url.Values) {
	u, _ := url.Parse(to) // validated by redirectAllowed
	q := u.Query()
	for k, v := range params {
		if len(v) > 0 && v[0] != "" {
			q[k] = v
		}
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// redirectAllowed: loopback http URIs with any port (RFC 8252 §7.3), or an
// exact registered URI.
func (c *client) redirectAllowed(uri string) bool {
	if slices.Contains(c.redirectURIs, uri) {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" {
		return false
	}
	switch u.Hostname() {
	case "127.0.0.1", "::1", "localhost":
		return true
	}
	return false
}

// redeemCodeLocked checks an authorization code grant (RFC 6749 §4.1.3,
// RFC 7636 §4.6) and returns the new grant.
func (s *Server) redeemCodeLocked(clientID string, form url.Values) (*grant, *oauthError) {
	code := form.Get("code")
	ac := s.codes[code]
	switch {
	case ac == nil:
		return nil, errInvalidGrant("unknown authorization code")
	case ac.used:
		// RFC 6749 §4.1.2: a code used twice SHOULD revoke what it issued.
		if ac.grant != nil {
			ac.grant.revoked = true
		}
		return nil, errInvalidGrant("authorization code already used")
	case !s.now().Before(ac.expiry):
		return nil, errInvalidGrant("authorization code expired")
	case ac.clientID != clientID:
		return nil, errInvalidGrant("authorization code was issued to another client")
	case form.Get("redirect_uri") != ac.redirectURI:
		return nil, &oauthError{status: http.StatusBadRequest, code: "redirect_uri_mismatch",
			desc: "redirect_uri does not match the authorization request"}
	}
	verifier := form.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	if verifier == "" || subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(ac.challenge)) != 1 {
		return nil, errInvalidGrant("code_verifier does not match the code challenge")
	}
	ac.used = true
	ac.grant = s.newGrantLocked(ac.user, clientID, ac.scope)
	return ac.grant, nil
}
