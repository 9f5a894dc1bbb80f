package fakeoauth

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Grant types beyond RFC 6749's own words.
const (
	GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code" // RFC 8628 §3.4
	GrantTypeJWTBearer  = "urn:ietf:params:oauth:grant-type:jwt-bearer"  // RFC 7523 §2.1

	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" // RFC 7523 §2.2
)

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status     int
	code, desc string
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: desc}
}

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: desc}
}

func errInvalidClient(desc string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc}
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="fakeoauth"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	// RFC 6749 §5.1: token responses must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, errInvalidRequest("malformed form body"))
		return
	}
	form := r.PostForm
	gt := form.Get("grant_type")

	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenRequests++
	if s.failNext > 0 {
		s.failNext--
		code := "server_error"
		if s.failStatus == http.StatusServiceUnavailable || s.failStatus == http.StatusTooManyRequests {
			code = "temporarily_unavailable"
		}
		s.log.Debug("token: injected failure", "grant_type", gt, "status", s.failStatus)
		writeOAuthError(w, &oauthError{status: s.failStatus, code: code, desc: "injected failure"})
		return
	}
	var (
		resp *tokenResponse
		oe   *oauthError
	)
	switch gt {
	case "authorization_code":
		resp, oe = s.authorizationCodeLocked(r, form)
	case "refresh_token":
		resp, oe = s.refreshLocked(r, form)
	case GrantTypeDeviceCode:
		resp, oe = s.pollDeviceLocked(r, form)
	case GrantTypeJWTBearer:
		resp, oe = s.jwtBearerLocked(form)
	case "client_credentials":
		resp, oe = s.clientCredentialsLocked(r, form)
	default:
		oe = &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "unsupported grant_type"}
	}
	if oe != nil {
		s.log.Debug("token: refused", "grant_type", gt, "error", oe.code, "description", oe.desc)
		writeOAuthError(w, oe)
		return
	}
	s.grantsByType[gt]++
	s.log.Debug("token: issued", "grant_type", gt)
	writeJSON(w, http.StatusOK, resp)
}

// authClientLocked authenticates the client of a token request (RFC 6749
// §2.3): HTTP Basic, client_secret in the body, or an RFC 7523 client
// assertion signed with a registered certificate's key. Public clients
// (registered without a secret) authenticate with client_id alone unless
// confidential is set.
func (s *Server) authClientLocked(r *http.Request, form url.Values, confidential bool) (string, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return "", errInvalidClient("malformed Basic credentials")
		}
		if form.Has("client_secret") {
			return "", errInvalidRequest("more than one client authentication method")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return "", errInvalidClient("client_id does not match the Basic credentials")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		if basic || secret != "" {
			return "", errInvalidRequest("more than one client authentication method")
		}
		return s.verifyClientAssertionLocked(id, form)
	}
	c := s.clients[id]
	if c == nil {
		return "", errInvalidClient("unknown client")
	}
	if c.secret == "" {
		if confidential {
			return "", errInvalidClient("this grant needs client authentication")
		}
		if secret != "" {
			return "", errInvalidClient("a public client has no secret")
		}
		return id, nil
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return "", errInvalidClient("client authentication failed")
	}
	return id, nil
}

func (s *Server) authorizationCodeLocked(r *http.Request, form url.Values) (*tokenResponse, *oauthError) {
	clientID, oe := s.authClientLocked(r, form, false)
	if oe != nil {
		return nil, oe
	}
	g, oe := s.redeemCodeLocked(clientID, form)
	if oe != nil {
		return nil, oe
	}
	return s.grantTokensLocked(g, true), nil
}

// grantTokensLocked issues an access token for g and, when withRefresh, a
// refresh token.
func (s *Server) grantTokensLocked(g *grant, withRefresh bool) *tokenResponse {
	at, life := s.issueAccessLocked(g, g.user, g.clientID, g.scope)
	resp := &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(life.Seconds()), Scope: g.scope}
	if withRefresh {
		resp.RefreshToken = s.issueRefreshLocked(g)
	}
	return resp
}

// refreshLocked serves RFC 6749 §6 with rotation and replay detection
// (RFC 9700 §4.14.2).
func (s *Server) refreshLocked(r *http.Request, form url.Values) (*tokenResponse, *oauthError) {
	clientID, oe := s.authClientLocked(r, form, false)
	if oe != nil {
		return nil, oe
	}
	rt := s.refresh[form.Get("refresh_token")]
	if rt == nil {
		return nil, errInvalidGrant("Bad Request: unknown refresh token")
	}
	g := rt.grant
	now := s.now()
	switch {
	case g.revoked:
		return nil, errInvalidGrant("Token has been expired or revoked.")
	case g.clientID != clientID:
		return nil, errInvalidGrant("refresh token was issued to another client")
	case !rt.rotatedAt.IsZero() && now.Sub(rt.rotatedAt) >= s.refreshGrace:
		g.revoked = true
		return nil, errInvalidGrant("refresh token reused after rotation: grant revoked")
	}
	if sc := form.Get("scope"); sc != "" {
		granted := strings.Fields(g.scope)
		for _, want := range strings.Fields(sc) {
			if !slices.Contains(granted, want) {
				return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "scope exceeds the grant"}
			}
		}
	}
	resp := s.grantTokensLocked(g, s.rotate)
	if s.rotate && rt.rotatedAt.IsZero() {
		rt.rotatedAt = now
	}
	s.refreshes[g.user]++
	return resp, nil
}

// clientCredentialsLocked serves RFC 6749 §4.4 the way Microsoft does for
// app-only access: a confidential client, and scopes that end in
// "/.default".
func (s *Server) clientCredentialsLocked(r *http.Request, form url.Values) (*tokenResponse, *oauthError) {
	clientID, oe := s.authClientLocked(r, form, true)
	if oe != nil {
		return nil, oe
	}
	scope := form.Get("scope")
	if scope == "" {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "scope is required"}
	}
	for _, sc := range strings.Fields(scope) {
		if !strings.HasSuffix(sc, "/.default") {
			return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope",
				desc: "client credential flows must have a scope value with /.default suffixed"}
		}
	}
	at, life := s.issueAccessLocked(nil, "", clientID, scope)
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(life.Seconds())}, nil
}
