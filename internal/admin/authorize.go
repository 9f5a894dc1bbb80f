package admin

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
)

// authorize starts the authorization-code flow for ?account=NAME: the
// Source prepares it (PKCE, state) with this endpoint's callback as the
// redirect, and the browser goes to the provider (303, so the provider
// sees a GET).
//
// The redirect URL is built from the Host header, which ServeHTTP has
// checked: through "ssh -L 8025:127.0.0.1:8025 server" the browser's
// Host is localhost:8025, which is where the provider must send it back.
// Loopback redirects on any port are what Google's and Microsoft's
// desktop-app clients accept (RFC 8252 §7.3).
func (h *handler) authorize(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		h.result(w, http.StatusBadRequest, resultPage{Title: "Bad request", Text: "The form could not be read."})
		return
	}
	// The per-process token proves the POST came from a page this
	// process rendered (CrossOriginProtection already refused browsers'
	// cross-site POSTs; this covers clients that send neither
	// Sec-Fetch-Site nor Origin).
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(h.csrf)) != 1 {
		h.log.Warn("admin: authorize request without a valid form token refused", "client_ip", clientIP(r))
		h.result(w, http.StatusForbidden, resultPage{Title: "Refused",
			Text: "This request did not come from the status page (missing or stale form token). Reload the status page and press Authorize again."})
		return
	}
	account := r.URL.Query().Get("account")
	if account == "" {
		account = r.PostForm.Get("account")
	}
	known := slices.ContainsFunc(h.src.Accounts(), func(a accountStatus) bool { return a.Account == account })
	if !known {
		h.result(w, http.StatusNotFound, resultPage{Title: "Unknown account",
			Text: "There is no configured account with that name.", Account: account})
		return
	}
	redirect := "http://" + r.Host + "/oauth2/callback"
	authURL, complete, err := h.src.BeginAuthorize(account, redirect)
	if err != nil {
		h.log.Warn("admin: authorization could not start", "account", account, "err", scrub(err.Error()))
		h.result(w, http.StatusBadRequest, resultPage{Title: "Authorization could not start",
			Text: scrub(err.Error()), Account: account})
		return
	}
	u, err := url.Parse(authURL)
	state := ""
	if err == nil {
		state = u.Query().Get("state")
	}
	if state == "" || (u.Scheme != "https" && u.Scheme != "http") {
		h.log.Error("admin: the authorization URL has no state or no http(s) scheme", "account", account)
		h.result(w, http.StatusInternalServerError, resultPage{Title: "Authorization could not start",
			Text: "internal error: the provider URL is unusable", Account: account})
		return
	}
	if !h.addPending(state, &pendingAuth{account: account, complete: complete, started: h.now()}) {
		h.result(w, http.StatusTooManyRequests, resultPage{Title: "Too many authorizations in progress",
			Text: "Finish or abandon the open ones (they expire after 15 minutes), then try again.", Account: account})
		return
	}
	h.log.Info("admin: authorization started", "account", account, "client_ip", clientIP(r))
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// callback completes a flow started by authorize, routed by its state
// (RFC 6749 §10.12): an unknown or reused state is refused before the
// Source sees anything.
func (h *handler) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := h.takePending(q.Get("state"))
	if p == nil {
		h.log.Warn("admin: callback with an unknown or expired state refused", "client_ip", clientIP(r))
		h.result(w, http.StatusBadRequest, resultPage{Title: "Authorization failed",
			Text: "This authorization is unknown, already used or expired (each Authorize click works once, for 15 minutes). Start again from the status page."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), completeTimeout)
	defer cancel()
	if err := p.complete(ctx, q); err != nil {
		msg := scrub(err.Error())
		h.log.Warn("admin: authorization failed", "account", p.account, "err", msg)
		h.result(w, http.StatusBadRequest, resultPage{Title: "Authorization failed", Text: msg, Account: p.account})
		return
	}
	h.log.Info("admin: account authorized", "account", p.account, "duration", h.now().Sub(p.started))
	h.result(w, http.StatusOK, resultPage{Title: "Authorized", OK: true, Account: p.account,
		Text: "The tokens are stored. New sessions use them; nothing needs restarting."})
}

// addPending records a started flow, forgetting expired ones first. It
// refuses when maxPending flows are open.
func (h *handler) addPending(state string, p *pendingAuth) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for s, old := range h.pending {
		if now.Sub(old.started) > pendingTTL {
			delete(h.pending, s)
		}
	}
	if len(h.pending) >= maxPending {
		return false
	}
	h.pending[state] = p
	return true
}

// takePending removes and returns the live flow with state, or nil.
func (h *handler) takePending(state string) *pendingAuth {
	if state == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pending[state]
	delete(h.pending, state)
	if p == nil || h.now().Sub(p.started) > pendingTTL {
		return nil
	}
	return p
}
