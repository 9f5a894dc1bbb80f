package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Default provider settings.
const (
	SessionLifetimeToken = "token" // sessions end when their access token expires
	SMTPImplicit         = "implicit"
	SMTPStartTLS         = "starttls"
	defaultRotateBefore  = 5 * time.Minute
	tenantPlaceholder    = "{tenant}"
)

// builtinProviders are the presets; see DESIGN §1 and FACTS "OAuth".
// smtp_tls and rotate_before are left to the defaults (by port; 5m) so an
// override of smtp alone also changes the TLS mode.
func builtinProviders() map[string]*Provider {
	return map[string]*Provider{
		"gmail": {
			IMAP:            "imap.gmail.com:993",
			POP3:            "pop.gmail.com:995",
			SMTP:            "smtp.gmail.com:465",
			AuthURL:         "https://accounts.google.com/o/oauth2/v2/auth",
			TokenURL:        "https://oauth2.googleapis.com/token",
			Scopes:          []string{"https://mail.google.com/"},
			SessionLifetime: SessionLifetimeToken,
		},
		"outlook": {
			IMAP:          "outlook.office365.com:993",
			POP3:          "outlook.office365.com:995",
			SMTP:          "smtp.office365.com:587",
			Tenant:        "common",
			AuthURL:       "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
			TokenURL:      "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
			DeviceAuthURL: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
			Scopes: []string{
				"https://outlook.office.com/IMAP.AccessAsUser.All",
				"https://outlook.office.com/POP.AccessAsUser.All",
				"https://outlook.office.com/SMTP.Send",
				"offline_access",
			},
			AppOnlyScopes:   []string{"https://outlook.office365.com/.default"},
			SessionLifetime: SessionLifetimeToken,
		},
	}
}

// Provider returns the provider called name, built-in preset merged with
// the configured overrides, with "{tenant}" substituted in its URLs and
// every default filled in (SMTPTLS, SessionLifetime,
// SessionLifetimeDuration, RotateBefore, Name). It returns nil for an
// unknown name. The result is a copy; changing it changes nothing.
func (cfg *Config) Provider(name string) *Provider {
	p, ok := cfg.resolved[name]
	if !ok {
		return nil
	}
	cp := *p
	cp.Scopes = slices.Clone(p.Scopes)
	cp.AppOnlyScopes = slices.Clone(p.AppOnlyScopes)
	cp.CAPEM = slices.Clone(p.CAPEM)
	if p.RotateBefore != nil {
		rb := *p.RotateBefore
		cp.RotateBefore = &rb
	}
	return &cp
}

// ProviderNames lists every provider an account may name: the built-ins
// and the configured ones, sorted.
func (cfg *Config) ProviderNames() []string {
	seen := make(map[string]bool)
	for name := range builtinProviders() {
		seen[name] = true
	}
	for name := range cfg.Providers {
		seen[name] = true
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ScopesFor returns the scopes to request for flow: app_only_scopes for
// client_credentials, scopes otherwise.
func (p *Provider) ScopesFor(flow string) []string {
	if flow == FlowClientCredentials {
		return p.AppOnlyScopes
	}
	return p.Scopes
}

// SMTPImplicitTLS reports whether the SMTP upstream uses implicit TLS
// (true) or STARTTLS (false).
func (p *Provider) SMTPImplicitTLS() bool { return p.SMTPTLS == SMTPImplicit }

// mergeProvider lays over's set keys on a copy of base.
func mergeProvider(base, over *Provider) *Provider {
	m := *base
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&m.IMAP, over.IMAP)
	set(&m.POP3, over.POP3)
	set(&m.SMTP, over.SMTP)
	set(&m.SMTPTLS, over.SMTPTLS)
	set(&m.CAFile, over.CAFile)
	set(&m.AuthURL, over.AuthURL)
	set(&m.TokenURL, over.TokenURL)
	set(&m.DeviceAuthURL, over.DeviceAuthURL)
	set(&m.Tenant, over.Tenant)
	set(&m.SessionLifetime, over.SessionLifetime)
	if over.Scopes != nil {
		m.Scopes = slices.Clone(over.Scopes)
	}
	if over.AppOnlyScopes != nil {
		m.AppOnlyScopes = slices.Clone(over.AppOnlyScopes)
	}
	if over.RotateBefore != nil {
		rb := *over.RotateBefore
		m.RotateBefore = &rb
	}
	if over.CAPEM != nil {
		m.CAPEM = slices.Clone(over.CAPEM)
	}
	return &m
}

// resolveProviders builds cfg.resolved from the presets and cfg.Providers
// and validates each provider on its own. Whether an account's flow finds
// the URL it needs is checked with the accounts.
func (cfg *Config) resolveProviders(c *collector) {
	cfg.resolved = builtinProviders()
	names := make([]string, 0, len(cfg.Providers))
	for name := range cfg.Providers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := joinPath("providers", name)
		over := cfg.Providers[name]
		if over == nil {
			over = &Provider{}
		}
		if strings.TrimSpace(name) == "" {
			c.add(path, "provider name must not be empty")
			continue
		}
		if base, ok := cfg.resolved[name]; ok {
			cfg.resolved[name] = mergeProvider(base, over)
			continue
		}
		for _, req := range []struct{ key, val, what string }{
			{"imap", over.IMAP, "host:port of the IMAP server (implicit TLS, usually port 993)"},
			{"pop3", over.POP3, "host:port of the POP3 server (implicit TLS, usually port 995)"},
			{"smtp", over.SMTP, "host:port of the SMTP server (465 implicit TLS, 587 STARTTLS)"},
			{"token_url", over.TokenURL, "the OAuth token endpoint"},
		} {
			if req.val == "" {
				c.add(path+"."+req.key, "required for a provider that is not built in: %s", req.what)
			}
		}
		cfg.resolved[name] = mergeProvider(&Provider{}, over)
	}
	for name, p := range cfg.resolved {
		p.Name = name
		cfg.completeProvider(c, joinPath("providers", name), p)
	}
}

// completeProvider fills p's defaults and checks its values. Built-ins
// only fail here through an override, so path is right either way.
func (cfg *Config) completeProvider(c *collector, path string, p *Provider) {
	for _, ep := range []struct{ key, val string }{{"imap", p.IMAP}, {"pop3", p.POP3}, {"smtp", p.SMTP}} {
		if ep.val == "" {
			continue // reported as required above
		}
		if host, _, err := splitHostPort(ep.val, false); err != nil {
			c.add(path+"."+ep.key, "%v", err)
		} else if host == "" {
			c.add(path+"."+ep.key, "%q: the host is missing", ep.val)
		}
	}

	switch p.SMTPTLS {
	case "":
		p.SMTPTLS = SMTPStartTLS
		if _, port, err := net.SplitHostPort(p.SMTP); err == nil && port == "465" {
			p.SMTPTLS = SMTPImplicit
		}
	case SMTPImplicit, SMTPStartTLS:
	default:
		c.add(path+".smtp_tls", "unknown value %q (known: implicit, starttls)", p.SMTPTLS)
	}

	if p.Tenant != "" && !isTenant(p.Tenant) {
		c.add(path+".tenant", "%q is not a tenant name or ID (letters, digits, '.', '-')", p.Tenant)
	}
	for _, u := range []struct {
		key string
		val *string
	}{{"auth_url", &p.AuthURL}, {"token_url", &p.TokenURL}, {"device_auth_url", &p.DeviceAuthURL}} {
		if *u.val == "" {
			continue
		}
		if strings.Contains(*u.val, tenantPlaceholder) {
			if p.Tenant == "" {
				c.add(path+".tenant", "required: %s contains %s", u.key, tenantPlaceholder)
				continue
			}
			*u.val = strings.ReplaceAll(*u.val, tenantPlaceholder, p.Tenant)
		}
		if err := checkURL(*u.val); err != nil {
			c.add(path+"."+u.key, "%v", err)
		}
	}

	if p.SessionLifetime == "" {
		p.SessionLifetime = SessionLifetimeToken
	}
	p.SessionLifetimeDuration = 0
	if p.SessionLifetime != SessionLifetimeToken {
		d, err := time.ParseDuration(p.SessionLifetime)
		switch {
		case err != nil:
			c.add(path+".session_lifetime", "%q is neither \"token\" nor a duration such as 1h", p.SessionLifetime)
		case d <= 0:
			c.add(path+".session_lifetime", "must be positive, or \"token\"")
		default:
			p.SessionLifetimeDuration = d
		}
	}
	if p.RotateBefore == nil {
		rb := Duration(defaultRotateBefore)
		p.RotateBefore = &rb
	}
	switch rb := p.RotateBefore.D(); {
	case rb < 0:
		c.add(path+".rotate_before", "must not be negative (0s disables rotation)")
	case p.SessionLifetimeDuration > 0 && rb >= p.SessionLifetimeDuration:
		c.add(path+".rotate_before", "%v must be shorter than session_lifetime %v", rb, p.SessionLifetimeDuration)
	}
}

func isTenant(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// checkURL accepts absolute https URLs, and http ones to loopback hosts
// (tests run fake OAuth servers on 127.0.0.1). Anything else would send
// client secrets and tokens in clear.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an absolute https:// URL", s)
	}
	if u.User != nil {
		return fmt.Errorf("must not contain credentials (user:password@)")
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("http:// is only allowed for loopback hosts (tokens would cross the network in clear): use https://")
	}
	return nil
}
