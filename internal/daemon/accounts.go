package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// rootsCache builds each provider's upstream roots once per config.
type rootsCache map[string]*x509.CertPool

func (rc rootsCache) get(cfg *config.Config, p *config.Provider) (*x509.CertPool, error) {
	if pool, ok := rc[p.Name]; ok {
		return pool, nil
	}
	pool, err := p.RootCAs()
	if err != nil {
		return nil, &config.Error{Path: "providers." + p.Name + ".ca_file", Msg: err.Error(), Err: err}
	}
	rc[p.Name] = pool
	return pool, nil
}

// AccountSpecs returns the token manager's view of every configured
// account, in config order. It reads the files the accounts name (client
// secret, service account key, client certificate and key) and the
// providers' CA files; errors name the key path.
func AccountSpecs(cfg *config.Config) ([]tokens.AccountSpec, error) {
	rc := rootsCache{}
	specs := make([]tokens.AccountSpec, 0, len(cfg.Accounts))
	for i := range cfg.Accounts {
		s, err := accountSpec(cfg, i, rc)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// AccountSpec returns the spec of the account whose username is name
// (ignoring case; a wildcard account by its pattern, "*@example.com"). It
// fails when no account has that username, listing the ones that exist.
func AccountSpec(cfg *config.Config, name string) (tokens.AccountSpec, error) {
	i := AccountIndex(cfg, name)
	if i < 0 {
		return tokens.AccountSpec{}, fmt.Errorf("no account %q in the config (accounts: %s)", name, accountNames(cfg))
	}
	return accountSpec(cfg, i, rootsCache{})
}

// AccountIndex returns the index in cfg.Accounts of the account whose
// username is name (ignoring case), or -1.
func AccountIndex(cfg *config.Config, name string) int {
	for i := range cfg.Accounts {
		if strings.EqualFold(cfg.Accounts[i].Username, name) {
			return i
		}
	}
	return -1
}

func accountNames(cfg *config.Config) string {
	if len(cfg.Accounts) == 0 {
		return "none configured"
	}
	names := make([]string, len(cfg.Accounts))
	for i := range cfg.Accounts {
		names[i] = cfg.Accounts[i].Username
	}
	return strings.Join(names, ", ")
}

func accountSpec(cfg *config.Config, i int, rc rootsCache) (tokens.AccountSpec, error) {
	a := &cfg.Accounts[i]
	path := fmt.Sprintf("accounts[%d]", i)
	p := cfg.Provider(a.Provider)
	if p == nil { // Complete rejects this; a Config built in Go may not have run it
		return tokens.AccountSpec{}, &config.Error{Path: path + ".provider", Msg: fmt.Sprintf("unknown provider %q", a.Provider)}
	}
	roots, err := rc.get(cfg, p)
	if err != nil {
		return tokens.AccountSpec{}, err
	}
	secret, err := a.Secret()
	if err != nil {
		return tokens.AccountSpec{}, &config.Error{Path: path + ".client_secret_file", Msg: err.Error(), Err: err}
	}
	s := tokens.AccountSpec{
		Name:          a.Username,
		Subject:       a.UpstreamUser,
		Flow:          tokens.Flow(a.Flow),
		ClientID:      a.ClientID,
		ClientSecret:  secret,
		AuthURL:       p.AuthURL,
		TokenURL:      p.TokenURL,
		DeviceAuthURL: p.DeviceAuthURL,
		Scopes:        p.ScopesFor(a.Flow),
		RootCAs:       roots,
		Wildcard:      a.IsWildcard(),
	}
	read := func(key, file string) ([]byte, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, &config.Error{Path: path + "." + key, Msg: err.Error(), Err: err}
		}
		return b, nil
	}
	if a.Flow == config.FlowServiceAccount && a.ServiceAccountFile != "" {
		if s.ServiceAccountKey, err = read("service_account_file", a.ServiceAccountFile); err != nil {
			return tokens.AccountSpec{}, err
		}
	}
	if a.Flow == config.FlowClientCredentials && a.ClientCertFile != "" {
		if s.ClientCertPEM, err = read("client_cert_file", a.ClientCertFile); err != nil {
			return tokens.AccountSpec{}, err
		}
		if s.ClientKeyPEM, err = read("client_key_file", a.ClientKeyFile); err != nil {
			return tokens.AccountSpec{}, err
		}
	}
	return s, nil
}

// upstreamTemplate is an account's proxy.Account without the login-time
// parts (Name and UpstreamUser of a wildcard login, Tokens).
func upstreamTemplate(cfg *config.Config, i int, rc rootsCache) (proxy.Account, error) {
	a := &cfg.Accounts[i]
	p := cfg.Provider(a.Provider)
	if p == nil {
		return proxy.Account{}, &config.Error{Path: fmt.Sprintf("accounts[%d].provider", i), Msg: fmt.Sprintf("unknown provider %q", a.Provider)}
	}
	roots, err := rc.get(cfg, p)
	if err != nil {
		return proxy.Account{}, err
	}
	// One tls.Config per endpoint: the Dialer clones it per connection and
	// fills ServerName from the address.
	ep := func(addr string, mode proxy.UpstreamTLS) proxy.Endpoint {
		return proxy.Endpoint{Addr: addr, TLS: mode, TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	}
	smtpMode := proxy.UpstreamStartTLS
	if p.SMTPImplicitTLS() {
		smtpMode = proxy.UpstreamImplicitTLS
	}
	rotate := p.RotateBefore.D()
	return proxy.Account{
		Name:         a.Username,
		ConfigName:   a.Username,
		UpstreamUser: a.UpstreamUser,
		IMAP:         ep(p.IMAP, proxy.UpstreamImplicitTLS),
		POP3:         ep(p.POP3, proxy.UpstreamImplicitTLS),
		SMTP:         ep(p.SMTP, smtpMode),
		Session: proxy.SessionPolicy{
			Lifetime:     p.SessionLifetimeDuration,
			RotateBefore: rotate,
			ResumeWithin: cfg.Resume.Within.D(),
		},
	}, nil
}

// login completes a template for a client that logged in as loginName
// (LocalAuth passes the pattern for an exact account, the lower-cased login
// name for a wildcard one). Tokens come from m at login time, so a reload
// that replaced the manager's accounts is seen by the next login.
func login(tmpl proxy.Account, wildcard bool, loginName string, m *tokens.Manager) *proxy.Account {
	a := tmpl
	subject := ""
	if wildcard {
		// The login name is the upstream identity (domain-wide delegation).
		a.Name, a.UpstreamUser, subject = loginName, loginName, loginName
	}
	src, err := m.Source(a.ConfigName, subject)
	if err != nil {
		a.Tokens = failedSource{err}
	} else {
		a.Tokens = src
	}
	return &a
}

// UpstreamAccount returns the proxy.Account a client logging in as login
// would get (the exact username, or a name in a wildcard account's domain),
// with tokens from m, which must have the config's accounts (SetAccounts).
// It serves "oauthbridge check --login".
func UpstreamAccount(cfg *config.Config, loginName string, m *tokens.Manager) (*proxy.Account, error) {
	a := cfg.Account(loginName)
	if a == nil {
		return nil, fmt.Errorf("no account matches %q (accounts: %s)", loginName, accountNames(cfg))
	}
	i := AccountIndex(cfg, a.Username)
	tmpl, err := upstreamTemplate(cfg, i, rootsCache{})
	if err != nil {
		return nil, err
	}
	return login(tmpl, a.IsWildcard(), strings.ToLower(loginName), m), nil
}

// failedSource is the token source of an account the manager does not
// know (it cannot happen after a successful build; kept so a login fails
// cleanly rather than with a nil source).
type failedSource struct{ err error }

func (f failedSource) Token(context.Context) (*oauth2.Token, error) { return nil, f.err }
func (f failedSource) ForceRefresh(context.Context, string) (*oauth2.Token, error) {
	return nil, f.err
}

var _ proxy.TokenSource = failedSource{}
var _ proxy.TokenSource = (*tokens.Source)(nil)

// ManagerOptions returns the tokens.Options of cfg (refresh margin,
// keepalive); callers add Logger and Metrics.
func ManagerOptions(cfg *config.Config) tokens.Options {
	return tokens.Options{RefreshBefore: cfg.Tokens.RefreshBefore.D(), Keepalive: cfg.Tokens.Keepalive.D()}
}

// OpenTokens opens cfg's token store and returns a Manager with every
// configured account. The CLI commands (authorize, status, check) use it;
// the daemon builds its own the same way.
func OpenTokens(cfg *config.Config, opts tokens.Options) (*tokens.Manager, *tokens.Store, error) {
	specs, err := AccountSpecs(cfg)
	if err != nil {
		return nil, nil, err
	}
	store, err := tokens.OpenStore(cfg.StateDir, cfg.MasterKeyFile)
	if err != nil {
		return nil, nil, err
	}
	m := tokens.NewManager(store, opts)
	if err := m.SetAccounts(specs); err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, store, nil
}
