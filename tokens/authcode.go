package tokens

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// PendingAuth is an authorization-code flow between the redirect to the
// provider and the callback: it holds the PKCE verifier and the state.
// The CLI's AuthorizeCode and the admin page's /oauth2/callback both
// complete one.
type PendingAuth struct {
	m           *Manager
	a           *account
	verifier    string
	state       string
	redirectURL string

	mu   sync.Mutex // guards done
	done bool
}

// BeginAuthCode prepares an authorization-code flow with PKCE S256 (RFC
// 7636) for spec, whose callback will arrive at redirectURL. It returns
// the URL to open in a browser. Complete the flow with the query of the
// callback request.
func (m *Manager) BeginAuthCode(spec AccountSpec, redirectURL string) (string, *PendingAuth, error) {
	a, err := newAccount(spec, m.opts.HTTPClient)
	if err != nil {
		return "", nil, err
	}
	if !spec.Flow.persisted() || spec.AuthURL == "" {
		return "", nil, &Error{Account: spec.Name, Op: "authorize",
			Description: fmt.Sprintf("flow %s has no browser consent (no authorization URL)", spec.Flow)}
	}
	st := make([]byte, 24)
	if _, err := io.ReadFull(rand.Reader, st); err != nil {
		return "", nil, err
	}
	p := &PendingAuth{m: m, a: a, verifier: oauth2.GenerateVerifier(),
		state: base64.RawURLEncoding.EncodeToString(st), redirectURL: redirectURL}
	opts := []oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(p.verifier),
		// Google returns a refresh token only with access_type=offline,
		// and on a repeated consent only with prompt=consent.
		oauth2.AccessTypeOffline,
		oauth2.SetAuthURLParam("prompt", "consent"),
	}
	if !spec.Wildcard && strings.Contains(spec.Name, "@") {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", spec.Name))
	}
	return a.oauthConfig(redirectURL).AuthCodeURL(p.state, opts...), p, nil
}

// State is the flow's state parameter, for routing a callback to its
// PendingAuth.
func (p *PendingAuth) State() string { return p.state }

// Complete checks the callback's query (state, error), exchanges the code
// with the PKCE verifier and stores the tokens, clearing consent_required.
// A PendingAuth completes at most once.
func (p *PendingAuth) Complete(ctx context.Context, q url.Values) error {
	name := p.a.spec.Name
	if e := q.Get("error"); e != "" {
		err := &Error{Account: name, Op: "authorize", Code: sanitize(e), Description: sanitize(q.Get("error_description")),
			Fix: fmt.Sprintf("run \"oauthbridge authorize %s\" again", name)}
		if e == "access_denied" {
			err.Description = "consent was refused in the browser"
			err.Fix += " and allow access"
		}
		return err
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.state)) != 1 {
		// RFC 6749 §10.12: a redirect not caused by this flow.
		return fmt.Errorf("%w: %s: the redirect belongs to another authorization attempt (use the address this run printed)",
			ErrStateMismatch, name)
	}
	code := q.Get("code")
	if code == "" {
		return &Error{Account: name, Op: "authorize", Description: "the redirect has no code"}
	}
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return &Error{Account: name, Op: "authorize", Description: "this authorization was already completed"}
	}
	p.done = true
	p.mu.Unlock()

	tok, err := p.a.oauthConfig(p.redirectURL).Exchange(p.a.httpContext(ctx), code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		e := classify(p.a, "authorize", err)
		switch e.Code {
		case "invalid_client":
			e.Fix = "check client_id and the client secret (for Gmail: an OAuth client of type \"Desktop app\")"
		case "redirect_uri_mismatch":
			e.Fix = "the OAuth client does not accept the loopback redirect " + p.redirectURL +
				": use a client of type \"Desktop app\" (Google) or a mobile/desktop platform with http://localhost (Microsoft)"
		case "invalid_grant":
			e.Description = "the authorization code was refused (expired, used twice, or PKCE mismatch)"
			e.Fix = fmt.Sprintf("run \"oauthbridge authorize %s\" again", name)
		}
		return e
	}
	return p.m.saveAuthorized(ctx, p.a, tok, FlowAuthCode)
}

// saveAuthorized stores the tokens of a new consent, obtained by flow,
// under the account's lock and hands them to this process's Source.
func (m *Manager) saveAuthorized(ctx context.Context, a *account, tok *oauth2.Token, flow Flow) error {
	name := a.spec.Name
	if tok.RefreshToken == "" {
		return &Error{Account: name, Op: "authorize", Description: "the provider returned no refresh token",
			Fix: "include offline access in the scopes (Microsoft: offline_access) and authorize again"}
	}
	unlock, err := m.store.Lock(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	now := m.now()
	scopes := a.spec.Scopes
	if granted, ok := tok.Extra("scope").(string); ok && granted != "" {
		scopes = strings.Fields(granted)
	}
	rec := &Record{AccessToken: tok.AccessToken, TokenType: tok.TokenType, Expiry: m.expiryOf(tok),
		RefreshToken: tok.RefreshToken, Flow: flow, Scopes: scopes,
		ObtainedAt: now, RefreshTokenIssuedAt: now}
	v, err := m.store.save(name, rec)
	if err != nil {
		return err
	}
	m.mu.Lock()
	s := m.sources[sourceKey{account: name}]
	m.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.tok, s.version, s.loaded, s.consent, s.rtUsed = accessOf(rec), v, true, false, now
		s.err, s.failures, s.retryAt, s.unsaved, s.unsavedFrom = nil, 0, time.Time{}, nil, ""
		s.mu.Unlock()
	}
	m.log.Info("account authorized", "account", name, "flow", string(flow), "scopes", strings.Join(scopes, " "))
	return nil
}

// AuthCodeOptions tune AuthorizeCode.
type AuthCodeOptions struct {
	// Out gets the URL and the instructions (required).
	Out io.Writer
	// In is read for a pasted redirect address, the headless path: the
	// browser runs on another machine, ends on "cannot connect to
	// 127.0.0.1:PORT", and the user copies its address bar. Nil: the
	// loopback listener only. AuthorizeCode does not close In; when In
	// has SetReadDeadline (a terminal or a pipe from os.Pipe, net.Conn)
	// its reader goroutine is stopped before returning, otherwise it ends
	// at In's next line or EOF.
	In io.Reader
	// OpenBrowser opens the URL and returns without waiting for the page
	// (as xdg-open does); nil does not try (--no-browser).
	OpenBrowser func(url string) error
	// Timeout for the whole flow (10m).
	Timeout time.Duration
	// ListenAddr for the loopback redirect listener ("127.0.0.1:0": a
	// random port, RFC 8252 §7.3).
	ListenAddr string
}

// arrival is a callback query from the loopback listener or a pasted
// address.
type arrival struct {
	q      url.Values
	reply  chan error // loopback: gets Complete's result for the page
	badURL string     // pasted text that is not a redirect address
}

// AuthorizeCode runs the authorization-code flow for spec in a terminal:
// it listens on a loopback port, prints the URL (and opens a browser when
// asked), and completes with whichever comes first: the browser's redirect
// to the listener, or a redirect address pasted into In.
func (m *Manager) AuthorizeCode(ctx context.Context, spec AccountSpec, opts AuthCodeOptions) error {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.ListenAddr == "" {
		opts.ListenAddr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", opts.ListenAddr)
	if err != nil {
		return fmt.Errorf("tokens: %s: loopback listener: %w", spec.Name, err)
	}
	redirectURL := "http://" + ln.Addr().String() + "/"
	authURL, p, err := m.BeginAuthCode(spec, redirectURL)
	if err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	arrivals := make(chan arrival)
	srv := &http.Server{
		Handler:           callbackHandler(ctx, arrivals),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(ln)
	}()
	stopReader := func() {}
	if opts.In != nil {
		stopReader = readPasted(ctx, opts.In, arrivals)
	}
	defer func() {
		// Cancel first: it releases a handler or the reader still
		// trying to deliver. Then let the browser's page be written.
		cancel()
		stopReader()
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		wg.Wait()
	}()

	fmt.Fprintf(out, "To authorize %s, open this address in a browser and allow access:\n\n  %s\n\n", spec.Name, authURL)
	fmt.Fprintf(out, "Waiting for the browser to come back to %s\n", redirectURL)
	if opts.In != nil {
		fmt.Fprintf(out, "If the browser runs on another machine it ends on a page that cannot be reached (%s?...):\n"+
			"copy the whole address from its address bar and paste it here.\n", redirectURL)
	}
	if opts.OpenBrowser != nil {
		if err := opts.OpenBrowser(authURL); err != nil {
			fmt.Fprintf(out, "(could not open a browser: %v; open the address yourself)\n", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &Error{Account: spec.Name, Op: "authorize", Description: fmt.Sprintf("no answer within %v", opts.Timeout),
					Fix: fmt.Sprintf("run \"oauthbridge authorize %s\" again", spec.Name), err: ctx.Err()}
			}
			return ctx.Err()
		case arr := <-arrivals:
			if arr.badURL != "" {
				fmt.Fprintf(out, "That is not the redirect address. After allowing access, copy the address the browser ends on;\n"+
					"it starts with %s and contains \"code=\". Paste it here:\n", redirectURL)
				continue
			}
			err := p.Complete(ctx, arr.q)
			if arr.reply != nil {
				arr.reply <- err
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Authorized %s: tokens stored.\n", spec.Name)
			return nil
		}
	}
}

// callbackHandler turns requests to the loopback listener into arrivals
// and shows the outcome in the browser. Requests without code or error
// (favicon.ico) get 404.
func callbackHandler(ctx context.Context, arrivals chan<- arrival) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if !q.Has("code") && !q.Has("error") {
			http.NotFound(w, r)
			return
		}
		reply := make(chan error, 1)
		select {
		case arrivals <- arrival{q: q, reply: reply}:
		case <-ctx.Done():
			http.Error(w, "This authorization is no longer pending.", http.StatusGone)
			return
		}
		// AuthorizeCode answers every arrival it takes.
		err := <-reply
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<!doctype html><title>oauthbridge</title><h1>Authorization failed</h1><p>%s</p>", html.EscapeString(err.Error()))
			return
		}
		fmt.Fprint(w, "<!doctype html><title>oauthbridge</title><h1>Authorized</h1><p>Tokens are stored. You can close this window.</p>")
	})
}

// readPasted reads lines from in and sends each redirect address (or the
// complaint about a line that is not one) to arrivals. stop ends the
// reader and waits for it when in can be interrupted (SetReadDeadline);
// otherwise the goroutine ends at in's next line or EOF.
func readPasted(ctx context.Context, in io.Reader, arrivals chan<- arrival) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			arr := arrival{}
			if q, ok := redirectQuery(line); ok {
				arr.q = q
			} else {
				arr.badURL = line
			}
			select {
			case arrivals <- arr:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		if d, ok := in.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Unix(1, 0)) == nil {
			<-done
		}
	}
}

// redirectQuery extracts the query of a pasted redirect address: an
// absolute http(s) URL carrying code or error.
func redirectQuery(s string) (url.Values, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, false
	}
	q := u.Query()
	return q, q.Has("code") || q.Has("error")
}
