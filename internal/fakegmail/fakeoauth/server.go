// Package fakeoauth is a fake OAuth 2.0 authorization server for tests and
// for "oauthbridge demo": authorization code with PKCE, refresh tokens with
// rotation, the device flow, Google service-account JWT bearer grants,
// Microsoft-style client credentials, RFC 7009 revocation and RFC 7662
// introspection.
//
// Typical use:
//
//	srv, err := fakeoauth.Start(fakeoauth.Options{})
//	if err != nil { ... }
//	defer srv.Close()
//	access, refresh := srv.Issue("alice@gmail.com") // seed a grant
//	cfg := oauth2.Config{ClientID: srv.ClientID, ClientSecret: srv.ClientSecret,
//		Endpoint: oauth2.Endpoint{AuthURL: srv.AuthURL(), TokenURL: srv.TokenURL()}}
//	...
//	srv.Validate("alice@gmail.com", access) // what a fake mail server asks
//	srv.Refreshes("alice@gmail.com")        // how many refresh grants it served
//
// It is an independent oracle: it imports nothing from the bridge, and it is
// stricter than real providers where that catches client bugs:
//
//   - PKCE S256 is required for every authorization code.
//   - Refresh tokens rotate by default, and a rotated refresh token used
//     again after the grace period (default zero) is treated as a replay:
//     the whole grant is revoked, as RFC 9700 §4.14.2 recommends. A client
//     that refreshes twice with the same refresh token loses its grant.
//   - Authorization codes are single use; using one twice revokes its grant
//     (RFC 6749 §4.1.2).
//   - Device polling faster than the current interval gets slow_down and a
//     5 s longer interval (RFC 8628 §3.5), measured on Options.Now.
//   - Client assertions (RFC 7523) are single use (jti).
//
// Users need no registration: whoever the test names consents. Access tokens
// issued by client credentials are app tokens, valid for every user (as an
// Exchange app permission is).
//
// All knobs are goroutine-safe.
package fakeoauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// ClientID and ClientSecret of the client registered at start
	// (defaults "fake-client.apps.googleusercontent.com" and
	// "fake-client-secret"). More clients: RegisterClient.
	ClientID, ClientSecret string
	// DefaultUser consents at /authorize when neither the request nor a
	// knob names a user ("user@example.com").
	DefaultUser string
	// DefaultScope is the scope of grants made by Issue
	// ("https://mail.google.com/").
	DefaultScope string
	// TokenLifetime of access tokens (1h).
	TokenLifetime time.Duration
	// DeviceInterval is the polling interval the device endpoint announces
	// (5s, RFC 8628 §3.2), DeviceCodeLifetime how long a device code lives
	// (10m).
	DeviceInterval, DeviceCodeLifetime time.Duration
	// Now is the server's clock (time.Now). Token expiry, device polling
	// intervals and JWT exp checks use it.
	Now func() time.Time
	// Logger gets one debug line per request (never a token). Nil: discard.
	Logger *slog.Logger
}

// Server is a running fake authorization server on 127.0.0.1.
type Server struct {
	// ClientID and ClientSecret of the default client.
	ClientID, ClientSecret string

	opts Options
	ln   net.Listener
	http *http.Server
	url  string
	log  *slog.Logger
	now  func() time.Time
	done chan struct{} // closed when the serve goroutine has returned

	mu sync.Mutex // guards everything below
	// configuration knobs
	tokenLifetime time.Duration
	rotate        bool
	refreshGrace  time.Duration
	deny          bool
	consentUser   string
	failNext      int
	failStatus    int
	slowDownNext  int
	// registrations
	clients         map[string]*client
	serviceAccounts map[string]*serviceAccount // by client_email
	// issued state
	codes       map[string]*authCode
	devices     map[string]*deviceCode // by device_code
	userCodes   map[string]*deviceCode // by user_code
	access      map[string]*accessToken
	refresh     map[string]*refreshToken
	grants      []*grant
	usedJTI     map[string]bool
	nextGrantID int
	// counters
	refreshes     map[string]int // by user, successful refresh_token grants
	grantsByType  map[string]int // successful token responses by grant_type
	tokenRequests int            // every /token request
}

type client struct {
	id, secret   string
	redirectURIs []string
	certs        []*registeredCert
}

// grant is one consent (or one seeded Issue): the family of refresh and
// access tokens that descends from it. Revoking it kills them all.
type grant struct {
	id       int
	user     string
	clientID string
	scope    string
	revoked  bool
}

type accessToken struct {
	grant    *grant // nil for service-account and app tokens
	user     string // "" for app tokens (client credentials)
	clientID string
	scope    string
	expiry   time.Time
	issued   time.Time
}

type refreshToken struct {
	grant *grant
	// rotatedAt is when this token was replaced by a newer one; zero
	// while it is the grant's current refresh token.
	rotatedAt time.Time
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.ClientID == "" {
		opts.ClientID = "fake-client.apps.googleusercontent.com"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "fake-client-secret"
	}
	if opts.DefaultUser == "" {
		opts.DefaultUser = "user@example.com"
	}
	if opts.DefaultScope == "" {
		opts.DefaultScope = "https://mail.google.com/"
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.DeviceInterval <= 0 {
		opts.DeviceInterval = 5 * time.Second
	}
	if opts.DeviceCodeLifetime <= 0 {
		opts.DeviceCodeLifetime = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeoauth: listen: %w", err)
	}
	s := &Server{
		ClientID:        opts.ClientID,
		ClientSecret:    opts.ClientSecret,
		opts:            opts,
		ln:              ln,
		url:             "http://" + ln.Addr().String(),
		log:             log.With("component", "fakeoauth"),
		now:             opts.Now,
		done:            make(chan struct{}),
		tokenLifetime:   opts.TokenLifetime,
		rotate:          true,
		clients:         map[string]*client{},
		serviceAccounts: map[string]*serviceAccount{},
		codes:           map[string]*authCode{},
		devices:         map[string]*deviceCode{},
		userCodes:       map[string]*deviceCode{},
		access:          map[string]*accessToken{},
		refresh:         map[string]*refreshToken{},
		usedJTI:         map[string]bool{},
		refreshes:       map[string]int{},
		grantsByType:    map[string]int{},
	}
	s.clients[opts.ClientID] = &client{id: opts.ClientID, secret: opts.ClientSecret}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", s.handleAuthorize)
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("POST /device", s.handleDevice)
	mux.HandleFunc("GET /activate", s.handleActivate)
	mux.HandleFunc("POST /revoke", s.handleRevoke)
	mux.HandleFunc("POST /introspect", s.handleIntrospect)
	mux.HandleFunc("GET /tokeninfo", s.handleTokenInfo)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	return s, nil
}

// Close stops the server at once (open connections included) and waits for
// its goroutine. Tests simulate an unreachable token endpoint with it.
func (s *Server) Close() error {
	err := s.http.Close()
	<-s.done
	return err
}

// Shutdown stops accepting and waits for in-flight requests, up to ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	<-s.done
	return err
}

// URL is the server's base URL, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return s.url }

// AuthURL is the authorization endpoint.
func (s *Server) AuthURL() string { return s.url + "/authorize" }

// TokenURL is the token endpoint; it is also the audience JWT assertions
// must name.
func (s *Server) TokenURL() string { return s.url + "/token" }

// DeviceAuthURL is the RFC 8628 device authorization endpoint.
func (s *Server) DeviceAuthURL() string { return s.url + "/device" }

// RevokeURL is the RFC 7009 revocation endpoint.
func (s *Server) RevokeURL() string { return s.url + "/revoke" }

// IntrospectURL is the RFC 7662 introspection endpoint (POST token=...).
func (s *Server) IntrospectURL() string { return s.url + "/introspect" }

// TokenInfoURL is a Google-style tokeninfo endpoint:
// GET TokenInfoURL()+"?access_token="+token.
func (s *Server) TokenInfoURL() string { return s.url + "/tokeninfo" }

// ---- knobs ----

// SetTokenLifetime sets the lifetime of access tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenLifetime = d
}

// SetRotateRefreshTokens turns refresh-token rotation on (the default) or
// off. Off: a refresh returns no refresh_token and the old one stays valid.
func (s *Server) SetRotateRefreshTokens(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate = on
}

// SetRefreshGrace lets a rotated refresh token be used again for d after
// its rotation (0, the default: any reuse revokes the grant).
func (s *Server) SetRefreshGrace(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshGrace = d
}

// SetDeny makes /authorize answer error=access_denied (the user clicked
// "Cancel") while on.
func (s *Server) SetDeny(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = on
}

// SetConsentUser chooses who consents at /authorize when the request has
// no user parameter. "" restores login_hint, then Options.DefaultUser.
func (s *Server) SetConsentUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consentUser = user
}

// FailNext makes the next n requests to /token fail with HTTP status
// (e.g. 500, 503, 429) and an OAuth error body, before any other check.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failStatus = n, status
}

// SlowDownNext makes the next n device-code polls answer slow_down.
func (s *Server) SlowDownNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowDownNext = n
}

// RegisterClient registers (or replaces) a client. An empty secret makes a
// public client (no client authentication, as Microsoft's native apps).
// Loopback redirect URIs (http://127.0.0.1:ANY, [::1], localhost, RFC 8252
// §7.3) are always allowed; redirectURIs adds exact ones.
func (s *Server) RegisterClient(id, secret string, redirectURIs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &client{id: id, secret: secret, redirectURIs: redirectURIs}
	if old := s.clients[id]; old != nil {
		c.certs = old.certs
	}
	s.clients[id] = c
}

// RevokeUser revokes every grant of user: its refresh tokens get
// invalid_grant and its access tokens stop validating.
func (s *Server) RevokeUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.grants {
		if g.user == user {
			g.revoked = true
		}
	}
	for _, at := range s.access {
		if at.grant == nil && at.user == user {
			at.expiry = time.Time{}
		}
	}
}

// Revoke is RevokeUser (the name the fake mail server's API uses).
func (s *Server) Revoke(user string) { s.RevokeUser(user) }

// Issue creates a grant for user on the default client with the default
// scope, as if the user had consented, and returns its first tokens.
func (s *Server) Issue(user string) (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.newGrantLocked(user, s.opts.ClientID, s.opts.DefaultScope)
	access, _ = s.issueAccessLocked(g, user, s.opts.ClientID, g.scope)
	refresh = s.issueRefreshLocked(g)
	return access, refresh
}

// Refreshes is how many refresh_token grants succeeded for user.
func (s *Server) Refreshes(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes[user]
}

// Grants is how many token responses were successful for grantType
// ("authorization_code", "refresh_token", GrantTypeDeviceCode,
// GrantTypeJWTBearer, "client_credentials").
func (s *Server) Grants(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grantsByType[grantType]
}

// TokenRequests is how many requests reached /token, failed ones included.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// ---- validation API for fake resource servers ----

// Validate reports whether accessToken is a live access token for user
// (compared case-insensitively, as mail addresses are): known, not expired
// on the server's clock, its grant not revoked. App tokens (client
// credentials) are valid for every user.
func (s *Server) Validate(user, accessToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.liveAccessLocked(accessToken)
	if at == nil {
		return false
	}
	return at.user == "" || strings.EqualFold(at.user, user)
}

// Introspect returns the user an access token was issued for and whether
// it is live. App tokens return their client id as user.
func (s *Server) Introspect(token string) (user string, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.liveAccessLocked(token)
	if at == nil {
		return "", false
	}
	if at.user == "" {
		return at.clientID, true
	}
	return at.user, true
}

// Expiry is when an access token expires (zero when unknown).
func (s *Server) Expiry(token string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at := s.access[token]; at != nil {
		return at.expiry
	}
	return time.Time{}
}

func (s *Server) liveAccessLocked(token string) *accessToken {
	at := s.access[token]
	if at == nil || !s.now().Before(at.expiry) || (at.grant != nil && at.grant.revoked) {
		return nil
	}
	return at
}

// ---- token issuing (callers hold s.mu) ----

func (s *Server) newGrantLocked(user, clientID, scope string) *grant {
	s.nextGrantID++
	g := &grant{id: s.nextGrantID, user: user, clientID: clientID, scope: scope}
	s.grants = append(s.grants, g)
	return g
}

func (s *Server) issueAccessLocked(g *grant, user, clientID, scope string) (string, time.Duration) {
	tok := "fake-at-" + randomString(32)
	now := s.now()
	s.access[tok] = &accessToken{grant: g, user: user, clientID: clientID, scope: scope,
		issued: now, expiry: now.Add(s.tokenLifetime)}
	return tok, s.tokenLifetime
}

func (s *Server) issueRefreshLocked(g *grant) string {
	tok := "fake-rt-" + randomString(32)
	s.refresh[tok] = &refreshToken{grant: g}
	return tok
}

// randomString is n random bytes, base64url: unguessable and distinct, so
// a test can search logs for it.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

type serviceAccount struct {
	email  string
	keyID  string
	pub    *rsa.PublicKey
	scopes []string // allowed scopes (domain-wide delegation); nil = any
}
