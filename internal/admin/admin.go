// Package admin is the bridge's HTTP admin endpoint (config "http.listen",
// loopback by default): /healthz, /metrics, /status.json, a status page at
// / and the authorization-code flow behind its Authorize buttons
// (/authorize, /oauth2/callback), so a headless server can be authorized
// through an SSH port-forward.
//
// Typical use in the daemon:
//
//	h := admin.New(daemon, met, logger) // daemon implements admin.Source
//	srv := &http.Server{Addr: cfg.HTTP.Listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
//	go srv.Serve(ln) // owned by the daemon, stopped with srv.Shutdown
//
// and in "oauthbridge status" (reading a running daemon):
//
//	var st admin.Status
//	json.NewDecoder(resp.Body).Decode(&st) // GET http://127.0.0.1:8025/status.json
//
// Security: config refuses a non-loopback listen address unless
// http.allow_remote is set. On top of that every request must carry a
// Host header naming a loopback name or address, the address the request
// arrived on, or a name given with AllowHost: a DNS-rebinding page (whose
// Host is the attacker's name) gets 403. The one state-changing request,
// POST /authorize, needs this process's CSRF token from the page's form
// and passes net/http's CrossOriginProtection (Sec-Fetch-Site / Origin).
// Responses carry a Content-Security-Policy without scripts, X-Frame-
// Options DENY, nosniff, no-referrer and no-store. Nothing rendered holds a
// secret: the Source gives none, and scrub.go masks token-shaped text and
// secret-named attributes anyway (defence in depth).
package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// Source is what the admin endpoint reads and drives; *daemon.Daemon
// implements it. Every method must be safe for concurrent use and quick
// (it runs per request).
type Source interface {
	// Healthy is nil when the listeners are up and the token store is
	// readable; otherwise its text (no secret) says what is wrong.
	Healthy() error
	// Accounts is the token state of every configured account.
	Accounts() []tokens.AccountStatus
	// Sessions counts open client sessions by protocol ("imap", "pop3",
	// "smtp").
	Sessions() map[string]int
	// AccountSessions counts account's open client sessions by protocol.
	AccountSessions(account string) map[string]int
	// RecentErrors are the latest errors worth an admin's attention,
	// newest first (the daemon keeps a bounded ring).
	RecentErrors() []ErrorEntry
	// BeginAuthorize starts an authorization-code flow for account whose
	// provider will redirect to redirectURL. authURL is where to send the
	// browser; it carries the flow's "state" parameter, by which the
	// callback is routed back to complete.
	BeginAuthorize(account, redirectURL string) (authURL string, complete func(ctx context.Context, q url.Values) error, err error)
}

// ErrorEntry is one recent error. Message and Attrs hold no secret (the
// daemon's log attributes, such as account, proto, client_ip).
type ErrorEntry struct {
	Time    time.Time         `json:"time"`
	Message string            `json:"message"`
	Attrs   map[string]string `json:"attrs,omitempty"`
}

// Option adjusts New.
type Option func(*handler)

// AllowHost accepts requests whose Host header names one of hosts (with
// any port), for an admin endpoint reached by a DNS name with
// http.allow_remote. Loopback names and addresses and the address a
// request arrived on are always accepted.
func AllowHost(hosts ...string) Option {
	return func(h *handler) {
		for _, n := range hosts {
			h.hosts[normHost(n)] = true
		}
	}
}

// Limits of the pending authorization table: a flow left half-way (tab
// closed) is forgotten after pendingTTL; at most maxPending run at once so
// a loop of POSTs cannot grow memory.
const (
	pendingTTL      = 15 * time.Minute
	maxPending      = 32
	completeTimeout = 60 * time.Second
)

type handler struct {
	src    Source
	met    *metrics.Metrics
	log    *slog.Logger
	now    func() time.Time
	csrf   string          // per-process token required in POST /authorize
	hosts  map[string]bool // extra Host names (AllowHost)
	mux    *http.ServeMux
	origin *http.CrossOriginProtection

	mu      sync.Mutex // guards pending
	pending map[string]*pendingAuth
}

type pendingAuth struct {
	account  string
	complete func(context.Context, url.Values) error
	started  time.Time
}

// New returns the admin endpoint's handler. m may be nil (then /metrics
// serves an empty registry), logger may be nil (discard).
func New(src Source, m *metrics.Metrics, logger *slog.Logger, opts ...Option) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tok := make([]byte, 32)
	rand.Read(tok) // crypto/rand never fails (Go 1.24+)
	h := &handler{
		src:     src,
		met:     m,
		log:     logger,
		now:     time.Now,
		csrf:    base64.RawURLEncoding.EncodeToString(tok),
		hosts:   map[string]bool{},
		pending: map[string]*pendingAuth{},
		origin:  http.NewCrossOriginProtection(),
	}
	for _, o := range opts {
		o(h)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.Handle("GET /metrics", h.metricsHandler())
	mux.HandleFunc("GET /status.json", h.statusJSON)
	mux.HandleFunc("GET /{$}", h.page)
	mux.HandleFunc("GET /style.css", h.style)
	mux.Handle("POST /authorize", h.origin.Handler(http.HandlerFunc(h.authorize)))
	mux.HandleFunc("GET /oauth2/callback", h.callback)
	h.mux = mux
	return h
}

// ServeHTTP applies the checks and headers every route shares.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// No script runs on any page; styles come from /style.css only;
	// nothing may frame the page (clickjacking the Authorize button).
	// form-action is deliberately absent: Chromium applies it to the 303
	// that follows POST /authorize, which goes to the provider.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	// The callback URL carries the authorization code: never send it on.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	if !h.hostAllowed(r) {
		h.log.Warn("admin: request with a foreign Host header refused", "host", sanitizeHost(r.Host), "client_ip", clientIP(r))
		http.Error(w, "admin: Host header not allowed (use 127.0.0.1 or localhost, e.g. through an SSH port-forward)", http.StatusForbidden)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := h.src.Healthy(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(scrub(err.Error()) + "\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

func (h *handler) metricsHandler() http.Handler {
	if h.met == nil {
		// An empty exposition is valid text format and tells a scraper
		// the endpoint is alive.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		})
	}
	return h.met.Handler()
}
