package testpeers

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
)

// introspector is the RFC 7662 token introspection endpoint Dovecot's
// oauth2 passdb calls (introspection_mode = post: a form field "token").
// It answers {"active": true, "username": USER} or {"active": false}.
type introspector struct {
	srv   *httptest.Server
	check func(token string) (user string, active bool)
	calls atomic.Int64

	mu     sync.Mutex        // guards tokens
	tokens map[string]string // token -> user, for the default check
}

func newIntrospector(check func(token string) (string, bool)) *introspector {
	in := &introspector{tokens: make(map[string]string)}
	in.check = check
	if in.check == nil {
		in.check = in.lookup
	}
	in.srv = httptest.NewServer(http.HandlerFunc(in.serveHTTP))
	return in
}

// url is what dovecot's introspection_url points at.
func (in *introspector) url() string { return in.srv.URL + "/introspect" }

func (in *introspector) close() { in.srv.Close() }

func (in *introspector) serveHTTP(w http.ResponseWriter, r *http.Request) {
	in.calls.Add(1)
	// RFC 7662 §2.1: POST, application/x-www-form-urlencoded, "token".
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	resp := map[string]any{"active": false}
	if tok := r.PostForm.Get("token"); tok != "" {
		if user, active := in.check(tok); active && user != "" {
			// RFC 7662 §2.2: "active" is a JSON boolean; "username" is
			// what dovecot compares with the login name (username_attribute).
			resp = map[string]any{"active": true, "username": user}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// mint returns a new random token valid for user under the default check.
func (in *introspector) mint(user string) string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	tok := "dvtest-" + base64.RawURLEncoding.EncodeToString(b[:])
	in.mu.Lock()
	in.tokens[tok] = user
	in.mu.Unlock()
	return tok
}

// revoke forgets every token minted for user.
func (in *introspector) revoke(user string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for tok, u := range in.tokens {
		if u == user {
			delete(in.tokens, tok)
		}
	}
}

func (in *introspector) lookup(token string) (string, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	user, ok := in.tokens[token]
	return user, ok
}
