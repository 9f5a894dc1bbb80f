package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/internal/sdnotify"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// Options are what the command line gives a Daemon besides the config.
type Options struct {
	// Logger receives every log line; nil discards. The daemon tees WARN
	// and above into RecentErrors.
	Logger *slog.Logger
	// Level, when set, is the level variable behind Logger's handler:
	// Reload sets it from the new config's log.level. (log.format cannot
	// change without a restart.)
	Level *slog.LevelVar
	// Dialer opens upstream connections; nil builds one with the config's
	// timeouts.upstream. Tests and the demo inject theirs.
	Dialer *proxy.Dialer
	// Notify gets service manager states (sdnotify.Notify): READY=1 when
	// Start has the listeners up, RELOADING=1 ... READY=1 around Reload,
	// STOPPING=1 when Shutdown begins. Nil: none.
	Notify func(state string) error
	// Stdout is where the daemon prints for a person (unused by serve;
	// kept for commands that embed a Daemon). Nil: io.Discard.
	Stdout io.Writer
}

// Daemon is the running bridge built from a config: listeners with their
// protocol servers, the local authenticator, session limits, the token
// manager and the optional admin endpoint.
//
// Lifecycle: New, Start, any number of Reload, then Shutdown (graceful) or
// Close (immediate). Safe for concurrent use; Start, Reload, Shutdown and
// Close are serialised.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	ring    *errorRing
	metrics *metrics.Metrics

	// These live as long as the Daemon; Reload updates them in place.
	store    *tokens.Store
	tokens   *tokens.Manager
	auth     *proxy.LocalAuth
	limits   *proxy.Limiter
	sessions map[string]*atomic.Int64 // open sessions by protocol; the map is never written after New

	// life ends background work (token manager Run, drains of listeners a
	// reload removed) at Shutdown or Close.
	life       context.Context
	lifeCancel context.CancelFunc
	wg         sync.WaitGroup // Serve loops, token Run, admin server, background drains

	ctl sync.Mutex // serialises Start, Reload, Shutdown, Close

	mu       sync.Mutex // guards every field below
	cfg      *config.Config
	specs    []tokens.AccountSpec // of cfg, to roll back a half-done swap
	entries  []*entry             // listeners of the current config, in config order
	retired  []*entry             // listeners a reload replaced on the same socket; their sessions still run
	admin    *adminServer
	started  bool
	stopping bool
}

// New builds the whole daemon from cfg (a completed config: config.Load
// or Complete): it opens the token store, checks every account, builds the
// listeners' protocol servers and TLS configs, and binds every listen
// address and the admin endpoint. Nothing serves until Start. On error
// everything it opened is closed again and the error names the key path
// when it comes from a config value.
func New(cfg *config.Config, opts Options) (_ *Daemon, err error) {
	if cfg == nil {
		return nil, errors.New("daemon: no config")
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	base := opts.Logger
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	ring := &errorRing{}
	d := &Daemon{
		opts:     opts,
		ring:     ring,
		log:      slog.New(newRecentHandler(base.Handler(), ring)),
		metrics:  metrics.New(),
		limits:   proxy.NewLimiter(limitsOf(cfg)),
		sessions: map[string]*atomic.Int64{},
		cfg:      cfg,
	}
	for _, p := range protocols {
		d.sessions[p] = new(atomic.Int64)
	}
	d.life, d.lifeCancel = context.WithCancel(context.Background())

	d.store, err = tokens.OpenStore(cfg.StateDir, cfg.MasterKeyFile)
	if err != nil {
		d.lifeCancel()
		return nil, &config.Error{Path: "state_dir", Msg: err.Error(), Err: err}
	}
	opt := ManagerOptions(cfg)
	opt.Logger, opt.Metrics = d.log, d.metrics
	d.tokens = tokens.NewManager(d.store, opt)
	defer func() {
		if err != nil {
			d.closeAll()
		}
	}()

	specs, local, err := d.accountsOf(cfg)
	if err != nil {
		return nil, err
	}
	if err := d.tokens.SetAccounts(specs); err != nil {
		return nil, &config.Error{Path: "accounts", Msg: err.Error(), Err: err}
	}
	d.specs = specs
	d.auth, err = proxy.NewLocalAuth(local, proxy.LocalAuthOptions{Throttle: throttleConfig(cfg), Logger: d.log})
	if err != nil {
		return nil, &config.Error{Path: "accounts", Msg: err.Error(), Err: err}
	}
	plans, err := d.listenerPlans(cfg)
	if err != nil {
		return nil, err
	}
	for _, p := range plans {
		sock, err := bindSocket(p.lc.Listen)
		if err != nil {
			return nil, listenErr(p.idx, &p.lc, err)
		}
		v := sock.newView()
		sock.handOff(v, nil)
		e, err := d.newEntry(p, sock, v)
		if err != nil {
			sock.close()
			return nil, err
		}
		d.entries = append(d.entries, e)
	}
	if d.admin, err = d.newAdmin(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// Start serves every listener and the admin endpoint, starts the token
// manager's background refresh, logs the config's warnings, and notifies
// READY=1.
func (d *Daemon) Start() error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	d.mu.Lock()
	if d.started || d.stopping {
		d.mu.Unlock()
		return errors.New("daemon: Start called twice or after Shutdown")
	}
	d.started = true
	cfg := d.cfg
	for _, e := range d.entries {
		d.serve(e)
	}
	d.admin.start(d)
	d.mu.Unlock()

	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = d.tokens.Run(d.life)
	}()
	d.logWarnings(cfg)
	d.notify(sdnotify.Ready)
	return nil
}

// serve runs e's accept loop on a goroutine the Daemon waits for.
func (d *Daemon) serve(e *entry) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(e.served)
		err := e.pl.Serve()
		if err != nil && !errors.Is(err, proxy.ErrListenerClosed) && !e.view.detached() {
			d.log.Error("listener stopped accepting", "proto", e.info.Protocol, "listen", e.info.Addr, "err", err)
		}
	}()
}

func (d *Daemon) logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		d.log.Warn(w)
	}
}

func (d *Daemon) notify(state string) {
	if d.opts.Notify == nil {
		return
	}
	if err := d.opts.Notify(state); err != nil {
		d.log.Warn("cannot notify the service manager", "err", err)
	}
}

// Shutdown stops accepting everywhere and lets sessions finish until ctx
// is done (IMAP clients get "* BYE" at a command boundary, POP3 and SMTP
// finish the command in progress); then it force-closes what is left,
// stops the admin endpoint and lets token refreshes in flight finish
// within ctx. It notifies STOPPING=1 first. It returns ctx's error when
// sessions had to be force-closed.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return nil
	}
	d.stopping = true
	all := append(append([]*entry(nil), d.entries...), d.retired...)
	admin := d.admin
	d.mu.Unlock()
	d.notify(sdnotify.Stopping)
	d.log.Info("shutting down", "sessions", d.openSessions())

	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, e := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.pl.Shutdown(ctx)
		}()
	}
	wg.Wait()
	// Drains of listeners removed by a reload end now too.
	d.lifeCancel()
	err := errors.Join(errs...)
	if e := admin.shutdown(ctx); e != nil && err == nil {
		err = e
	}
	if e := d.tokens.Shutdown(ctx); e != nil && err == nil {
		err = e
	}
	d.wg.Wait()
	if err != nil {
		return fmt.Errorf("daemon: shutdown: %w", err)
	}
	return nil
}

// Close stops everything at once: connections are closed, handlers and
// refreshes are waited for.
func (d *Daemon) Close() error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	d.closeAll()
	return nil
}

func (d *Daemon) closeAll() {
	d.lifeCancel()
	d.mu.Lock()
	all := append(append([]*entry(nil), d.entries...), d.retired...)
	admin := d.admin
	d.mu.Unlock()
	for _, e := range all {
		e.pl.Close()
	}
	admin.close()
	if d.tokens != nil {
		d.tokens.Close()
	}
	d.wg.Wait()
}

func (d *Daemon) openSessions() int64 {
	var n int64
	for _, c := range d.sessions {
		n += c.Load()
	}
	return n
}

// Metrics is the daemon's metrics registry (the admin endpoint serves it).
func (d *Daemon) Metrics() *metrics.Metrics { return d.metrics }

// Logger is the daemon's logger (with the recent-errors tee).
func (d *Daemon) Logger() *slog.Logger { return d.log }

// Tokens is the daemon's token manager.
func (d *Daemon) Tokens() *tokens.Manager { return d.tokens }

// Config is the config in force.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// ListenerAddr is one running listener.
type ListenerAddr struct {
	Protocol string `json:"protocol"`
	Listen   string `json:"listen"` // as configured
	Addr     string `json:"addr"`   // as bound (the real port for port 0)
	TLS      string `json:"tls"`
}

// Listeners lists the running listeners in config order.
func (d *Daemon) Listeners() []ListenerAddr {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]ListenerAddr, len(d.entries))
	for i, e := range d.entries {
		out[i] = ListenerAddr{Protocol: e.info.Protocol, Listen: e.lc.Listen, Addr: e.addr().String(), TLS: e.info.TLS.String()}
	}
	return out
}

// AdminAddr is the bound admin endpoint address, "" without one.
func (d *Daemon) AdminAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.admin.addr()
}
