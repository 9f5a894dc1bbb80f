package fakeoauth

import (
	"net/http"
	"strings"
)

// handleRevoke is RFC 7009: the token's grant is revoked whether an access
// or a refresh token is given (as Google does). Unknown tokens still get
// 200 (§2.2).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, errInvalidRequest("malformed form body"))
		return
	}
	tok := r.PostForm.Get("token")
	s.mu.Lock()
	if rt := s.refresh[tok]; rt != nil {
		rt.grant.revoked = true
	} else if at := s.access[tok]; at != nil {
		if at.grant != nil {
			at.grant.revoked = true
		} else {
			at.expiry = at.issued // expired now
		}
	}
	s.mu.Unlock()
	s.log.Debug("revoke")
	w.WriteHeader(http.StatusOK)
}

// introspection is the RFC 7662 §2.2 response. username, email and sub all
// carry the user so that Dovecot's oauth2 passdb finds it under any of its
// usual username_attribute settings.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	Email     string `json:"email,omitempty"`
	Sub       string `json:"sub,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
}

func (s *Server) introspectLocked(tok string) introspection {
	at := s.liveAccessLocked(tok)
	if at == nil {
		return introspection{Active: false}
	}
	user := at.user
	if user == "" {
		user = at.clientID
	}
	return introspection{Active: true, Scope: at.scope, ClientID: at.clientID,
		Username: user, Email: user, Sub: user, TokenType: "Bearer",
		Exp: at.expiry.Unix(), Iat: at.issued.Unix()}
}

// handleIntrospect is RFC 7662 (POST token=...). The token may also come
// as a Bearer Authorization header, which is how Dovecot's oauth2 passdb
// sends it with introspection_mode = auth.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, errInvalidRequest("malformed form body"))
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		tok = bearer(r)
	}
	s.mu.Lock()
	resp := s.introspectLocked(tok)
	s.mu.Unlock()
	s.log.Debug("introspect", "active", resp.Active, "user", resp.Username)
	writeJSON(w, http.StatusOK, resp)
}

// handleTokenInfo is Google's tokeninfo shape: GET ?access_token=X (or a
// Bearer header); 400 invalid_token when the token is not live.
func (s *Server) handleTokenInfo(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		tok = bearer(r)
	}
	s.mu.Lock()
	resp := s.introspectLocked(tok)
	now := s.now()
	s.mu.Unlock()
	if !resp.Active {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_token", "error_description": "Invalid Value"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"email": resp.Email, "sub": resp.Sub, "scope": resp.Scope, "aud": resp.ClientID,
		"exp": resp.Exp, "expires_in": resp.Exp - now.Unix(), "email_verified": "true",
	})
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
