package daemon

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// accountsOf builds the token specs and the LocalAuth accounts of cfg and
// checks both completely (in throwaway objects), so that the swap that
// follows cannot fail half-way. Errors name the key path.
func (d *Daemon) accountsOf(cfg *config.Config) ([]tokens.AccountSpec, []proxy.LocalAccount, error) {
	rc := rootsCache{}
	specs := make([]tokens.AccountSpec, 0, len(cfg.Accounts))
	local := make([]proxy.LocalAccount, 0, len(cfg.Accounts))
	check := tokens.NewManager(d.store, tokens.Options{}) // validates specs; never runs
	defer check.Close()
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		spec, err := accountSpec(cfg, i, rc)
		if err != nil {
			return nil, nil, err
		}
		if err := check.SetAccounts([]tokens.AccountSpec{spec}); err != nil {
			return nil, nil, &config.Error{Path: fmt.Sprintf("accounts[%d]", i), Msg: err.Error(), Err: err}
		}
		tmpl, err := upstreamTemplate(cfg, i, rc)
		if err != nil {
			return nil, nil, err
		}
		hashes := make([]string, len(a.Passwords))
		for j, pw := range a.Passwords {
			hashes[j] = pw.Hash
		}
		wildcard := a.IsWildcard()
		m := d.tokens
		la := proxy.LocalAccount{Pattern: a.Username, Hashes: hashes,
			New: func(loginName string) *proxy.Account { return login(tmpl, wildcard, loginName, m) }}
		if _, err := proxy.NewLocalAuth([]proxy.LocalAccount{la}, proxy.LocalAuthOptions{}); err != nil {
			return nil, nil, &config.Error{Path: fmt.Sprintf("accounts[%d].passwords", i), Msg: err.Error(), Err: err}
		}
		specs = append(specs, spec)
		local = append(local, la)
	}
	if err := check.SetAccounts(specs); err != nil {
		return nil, nil, &config.Error{Path: "accounts", Msg: err.Error(), Err: err}
	}
	if _, err := proxy.NewLocalAuth(local, proxy.LocalAuthOptions{}); err != nil {
		return nil, nil, &config.Error{Path: "accounts", Msg: err.Error(), Err: err}
	}
	return specs, local, nil
}

// listenerPlan is one configured listener, built but not yet serving.
type listenerPlan struct {
	idx     int
	lc      config.Listener
	info    proxy.ListenerInfo // TLSConfig is set from the entry's tlsHolder
	allow   []netip.Prefix
	tls     *tls.Config // the current server config; nil for tls: none
	handler proxy.Handler
}

// listenerPlans builds every listener's handler and server TLS config.
// It reads certificate files and may write a self-signed certificate to
// state_dir; it binds no port.
func (d *Daemon) listenerPlans(cfg *config.Config) ([]*listenerPlan, error) {
	dialer := d.dialerFor(cfg)
	plans := make([]*listenerPlan, 0, len(cfg.Listeners))
	for i := range cfg.Listeners {
		l := cfg.Listeners[i]
		h, err := d.handler(cfg, i, dialer)
		if err != nil {
			return nil, err
		}
		p := &listenerPlan{
			idx: i, lc: l, handler: h,
			allow: unmapPrefixes(l.AllowPrefixes()),
			info: proxy.ListenerInfo{
				Protocol:           l.Protocol,
				Addr:               l.Listen,
				TLS:                tlsMode(l.TLS),
				AllowPlaintextAuth: l.AllowPlaintextAuth,
				Loopback:           l.IsLoopback(),
			},
		}
		if p.info.TLS != proxy.TLSNone {
			p.tls, err = proxy.ServerTLSConfig(proxy.ServerTLSOptions{
				CertFile: l.CertFile, KeyFile: l.KeyFile, MinVersion: l.MinTLSVersion,
				StateDir: cfg.StateDir, ListenAddr: l.Listen, Logger: d.log,
			})
			if err != nil {
				key := "cert_file"
				if l.CertFile == "" {
					key = "tls"
				}
				return nil, &config.Error{Path: fmt.Sprintf("listeners[%d].%s", i, key), Msg: err.Error(), Err: err}
			}
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// sameListener reports whether a running listener built from a can serve
// plan b by swapping its handler (and TLS certificate): everything a
// proxy.Listener fixes at construction is equal.
func sameListener(a *entry, b *listenerPlan) bool {
	return a.info.Protocol == b.info.Protocol &&
		a.info.TLS == b.info.TLS &&
		a.info.AllowPlaintextAuth == b.info.AllowPlaintextAuth &&
		slices.Equal(a.allow, b.allow)
}

// entry is a listener as it runs: its socket, the proxy.Listener accepting
// from it, and the TLS holder whose config a reload replaces.
type entry struct {
	info   proxy.ListenerInfo
	allow  []netip.Prefix
	lc     config.Listener // as configured, for matching at the next reload; guarded by Daemon.mu
	sock   *socket
	view   *socketView
	tls    *tlsHolder // nil for tls: none
	pl     *proxy.Listener
	served chan struct{} // closed when pl.Serve has returned
}

// newEntry makes the proxy.Listener of plan p on view v of sock. It does
// not start serving.
func (d *Daemon) newEntry(p *listenerPlan, sock *socket, v *socketView) (*entry, error) {
	e := &entry{info: p.info, allow: p.allow, lc: p.lc, sock: sock, view: v, served: make(chan struct{})}
	if p.tls != nil {
		e.tls = newTLSHolder(p.tls)
		e.info.TLSConfig = e.tls.outer
	}
	pl, err := proxy.NewListener(v, proxy.ListenerConfig{
		Info: e.info, Allow: p.allow, Limiter: d.limits, Logger: d.log, Metrics: d.metrics,
	}, p.handler)
	if err != nil {
		return nil, &config.Error{Path: fmt.Sprintf("listeners[%d]", p.idx), Msg: err.Error(), Err: err}
	}
	e.pl = pl
	return e, nil
}

// addr is the bound address (with the real port for port 0).
func (e *entry) addr() net.Addr { return e.sock.ln.Addr() }
