package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

func (cfg *Config) validate(c *collector) {
	switch cfg.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		c.add("log.level", "unknown level %q (known: debug, info, warn, error)", cfg.Log.Level)
	}
	switch cfg.Log.Format {
	case "text", "json":
	default:
		c.add("log.format", "unknown format %q (known: text, json)", cfg.Log.Format)
	}
	cfg.validateHTTP(c)
	cfg.validateNumbers(c)
	cfg.validateListeners(c)
	cfg.validateAccounts(c)
}

func (cfg *Config) validateHTTP(c *collector) {
	if cfg.HTTP.Listen == "" {
		return
	}
	host, _, err := splitHostPort(cfg.HTTP.Listen, true)
	if err != nil {
		c.add("http.listen", "%v", err)
		return
	}
	if !isLoopbackHost(host) && !cfg.HTTP.AllowRemote {
		c.add("http.listen", "%s is not a loopback address: the status page can start an authorization flow, "+
			"so it is loopback-only; use 127.0.0.1:PORT, or set http.allow_remote: true behind your own access control",
			cfg.HTTP.Listen)
	}
}

// validateNumbers rejects negative limits and durations that cannot be
// zero (a Config built in Go may hold either; YAML rejects negative
// durations while parsing and turns zero into the default).
func (cfg *Config) validateNumbers(c *collector) {
	for _, n := range []struct {
		path string
		v    int64
	}{
		{"limits.max_connections", int64(cfg.Limits.MaxConnections)},
		{"limits.per_address", int64(cfg.Limits.PerAddress)},
		{"limits.per_account", int64(cfg.Limits.PerAccount)},
		{"throttle.ban_after", int64(cfg.Throttle.BanAfter)},
		{"smtp.spool_memory", cfg.SMTP.SpoolMemory},
	} {
		if n.v < 0 {
			c.add(n.path, "must not be negative, got %d", n.v)
		}
	}
	for _, d := range []struct {
		path string
		v    Duration
	}{
		{"shutdown_grace", cfg.ShutdownGrace},
		{"throttle.delay", cfg.Throttle.Delay},
		{"throttle.max_delay", cfg.Throttle.MaxDelay},
		{"throttle.ban_for", cfg.Throttle.BanFor},
		{"throttle.window", cfg.Throttle.Window},
		{"timeouts.login", cfg.Timeouts.Login},
		{"timeouts.imap_idle", cfg.Timeouts.IMAPIdle},
		{"timeouts.pop3_idle", cfg.Timeouts.POP3Idle},
		{"timeouts.smtp_idle", cfg.Timeouts.SMTPIdle},
		{"timeouts.upstream", cfg.Timeouts.Upstream},
		{"tokens.refresh_before", cfg.Tokens.RefreshBefore},
		{"tokens.keepalive", cfg.Tokens.Keepalive},
		{"resume.within", cfg.Resume.Within},
	} {
		if d.v <= 0 {
			c.add(d.path, "must be positive, got %v", d.v.D())
		}
	}
	if cfg.Throttle.MaxDelay > 0 && cfg.Throttle.MaxDelay < cfg.Throttle.Delay {
		c.add("throttle.max_delay", "%v is shorter than throttle.delay %v", cfg.Throttle.MaxDelay.D(), cfg.Throttle.Delay.D())
	}
}

type listenKey struct {
	host string // canonical IP text, lower-case name, or "" for every address
	port int
}

func (cfg *Config) validateListeners(c *collector) {
	type used struct {
		key listenKey
		idx int
	}
	var seen []used
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		path := fmt.Sprintf("listeners[%d]", i)
		switch l.Protocol {
		case ProtoIMAP, ProtoPOP3, ProtoSMTP:
		case "":
			c.add(path+".protocol", "required (imap, pop3 or smtp)")
		default:
			c.add(path+".protocol", "unknown protocol %q (known: imap, pop3, smtp)", l.Protocol)
		}
		switch l.TLS {
		case TLSNone, TLSStartTLS, TLSImplicit:
		default:
			c.add(path+".tls", "unknown mode %q (known: none, starttls, implicit)", l.TLS)
		}
		if _, ok := tlsVersions[l.MinTLSVersion]; !ok {
			c.add(path+".min_tls_version", "unknown version %q (known: \"1.0\", \"1.1\", \"1.2\", \"1.3\")", l.MinTLSVersion)
		}
		switch {
		case (l.CertFile == "") != (l.KeyFile == ""):
			missing := "key_file"
			if l.CertFile == "" {
				missing = "cert_file"
			}
			c.add(path+"."+missing, "required when %s is set: give both cert_file and key_file, or neither for a generated self-signed certificate",
				map[string]string{"key_file": "cert_file", "cert_file": "key_file"}[missing])
		case l.CertFile != "" && l.TLS == TLSNone:
			c.add(path+".cert_file", "set but tls is \"none\": set tls: starttls or implicit, or remove cert_file and key_file")
		}

		host, port, err := splitHostPort(l.Listen, true)
		switch {
		case l.Listen == "":
			c.add(path+".listen", "required: host:port such as 127.0.0.1:1143")
		case err != nil:
			c.add(path+".listen", "%v", err)
		default:
			key := listenKey{canonicalHost(host), port}
			if port == 0 { // port 0 asks for a fresh port each time
				break
			}
			for _, u := range seen {
				// The unspecified address binds the port on every address.
				if u.key.port == port && (u.key.host == key.host || u.key.host == "" || key.host == "") {
					c.add(path+".listen", "%s is already used by listeners[%d] (%s)", l.Listen, u.idx, cfg.Listeners[u.idx].Listen)
					break
				}
			}
			seen = append(seen, used{key, i})
		}

		allow := cfg.validateAllow(c, path, l, err == nil && l.Listen != "")
		if l.TLS == TLSNone && l.Listen != "" && err == nil && !l.IsLoopback() && !l.AllowPlaintextAuth {
			c.add(path+".tls", "\"none\" on the non-loopback address %s would send passwords in clear over the network: "+
				"set tls: starttls (or implicit), or set allow_plaintext_auth: true if the network is trusted", l.Listen)
		}
		cfg.validateRelay(c, path, l, allow)
	}
}

// canonicalHost makes equal addresses compare equal: "::" and "0.0.0.0"
// (every address) become "", IPs their canonical text, names lower case.
func canonicalHost(host string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() {
			return ""
		}
		return a.Unmap().String()
	}
	return strings.ToLower(host)
}

// validateAllow checks the allow list and returns it parsed.
func (cfg *Config) validateAllow(c *collector, path string, l *Listener, listenOK bool) []netip.Prefix {
	if l.Allow == nil {
		if listenOK && !l.IsLoopback() {
			c.add(path+".allow", "required because %s is not a loopback address: list the client networks that may connect "+
				"(e.g. allow: [192.168.1.0/24]); the bridge logs into mailboxes for its clients, so it must not be open to everyone",
				l.Listen)
		}
		return nil
	}
	if len(l.Allow) == 0 {
		c.add(path+".allow", "empty: no client could connect; list the client networks (e.g. [192.168.1.0/24]) or remove the key on a loopback listener")
		return nil
	}
	var out []netip.Prefix
	for j, s := range l.Allow {
		p, err := parsePrefix(s)
		if err != nil {
			c.add(fmt.Sprintf("%s.allow[%d]", path, j), "%v", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (cfg *Config) validateRelay(c *collector, path string, l *Listener, allow []netip.Prefix) {
	r := l.RelayWithoutAuth
	if r == nil {
		return
	}
	path += ".relay_without_auth"
	if l.Protocol != ProtoSMTP {
		c.add(path, "only for protocol smtp (devices that send mail without AUTH)")
		return
	}
	if len(r.From) == 0 {
		c.add(path+".from", "required: the device addresses that may send without AUTH (e.g. [192.168.1.50/32])")
	}
	for j, s := range r.From {
		fp := fmt.Sprintf("%s.from[%d]", path, j)
		p, err := parsePrefix(s)
		if err != nil {
			c.add(fp, "%v", err)
			continue
		}
		inside := false
		for _, a := range allow {
			if prefixWithin(p, a) {
				inside = true
				break
			}
		}
		if !inside && allow != nil {
			c.add(fp, "%s is not inside the listener's allow list (%s): those devices could not connect; widen allow or narrow from",
				p, strings.Join(l.Allow, ", "))
		}
	}
	switch a := cfg.Account(r.Account); {
	case r.Account == "":
		c.add(path+".account", "required: the username of the account the devices send as")
	case strings.HasPrefix(r.Account, "*@"):
		c.add(path+".account", "%q is a wildcard account: relayed mail needs one definite sender account", r.Account)
	case a == nil || a.IsWildcard():
		c.add(path+".account", "no account with username %q (accounts: %s)", r.Account, cfg.accountNames())
	}
}

func (cfg *Config) accountNames() string {
	if len(cfg.Accounts) == 0 {
		return "none configured"
	}
	names := make([]string, len(cfg.Accounts))
	for i := range cfg.Accounts {
		names[i] = cfg.Accounts[i].Username
	}
	return strings.Join(names, ", ")
}

func (cfg *Config) validateAccounts(c *collector) {
	seen := make(map[string]int)
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		path := fmt.Sprintf("accounts[%d]", i)

		cfg.validateUsername(c, path, a)
		if a.Username != "" {
			key := strings.ToLower(a.Username)
			if j, dup := seen[key]; dup {
				c.add(path+".username", "%q is already used by accounts[%d] (usernames ignore case)", a.Username, j)
			} else {
				seen[key] = i
			}
		}

		valid := false
		for _, f := range flows {
			valid = valid || a.Flow == f
		}
		if !valid {
			c.add(path+".flow", "unknown flow %q (known: %s)", a.Flow, strings.Join(flows, ", "))
		}

		var p *Provider
		switch {
		case a.Provider == "":
			c.add(path+".provider", "required (known: %s)", strings.Join(cfg.ProviderNames(), ", "))
		default:
			p = cfg.resolved[a.Provider]
			if p == nil {
				c.add(path+".provider", "unknown provider %q (known: %s)", a.Provider, strings.Join(cfg.ProviderNames(), ", "))
			}
		}
		if valid {
			cfg.validateCredentials(c, path, a, p)
		}

		names := make(map[string]int)
		for j, pw := range a.Passwords {
			pp := fmt.Sprintf("%s.passwords[%d]", path, j)
			switch k, dup := names[pw.Name]; {
			case pw.Name == "":
				c.add(pp+".name", "required: a label for this password (e.g. laptop, printer), used in logs")
			case dup:
				c.add(pp+".name", "%q is already used by passwords[%d] of this account", pw.Name, k)
			default:
				names[pw.Name] = j
			}
			// Never echo the value: a plain password pasted here by mistake
			// must not end up in a log.
			if pw.Hash == "" {
				c.add(pp+".hash", "required: run \"oauthbridge hash-password\" and paste its output")
			} else if checkArgon2idPHC(pw.Hash) != nil {
				c.add(pp+".hash", "not an argon2id hash: run \"oauthbridge hash-password\" and paste its output "+
					"($argon2id$v=19$m=...,t=...,p=...$salt$hash)")
			}
		}
	}
}

func (cfg *Config) validateUsername(c *collector, path string, a *Account) {
	p := path + ".username"
	switch {
	case a.Username == "":
		c.add(p, "required: the name clients log in with (usually the mail address)")
		return
	case strings.IndexFunc(a.Username, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		c.add(p, "%s must not contain spaces or control characters", strconv.Quote(a.Username))
		return
	}
	if !strings.Contains(a.Username, "*") {
		return
	}
	domain, ok := strings.CutPrefix(a.Username, "*@")
	if !ok || domain == "" || strings.ContainsAny(domain, "*@") {
		c.add(p, "%q: a wildcard must be the whole local part, as in *@example.com", a.Username)
		return
	}
	if a.Flow != FlowServiceAccount {
		c.add(p, "wildcard %q needs flow: service_account (only domain-wide delegation can act for every user of a domain)", a.Username)
	}
	if a.UpstreamUser != "" {
		c.add(path+".upstream_user", "not allowed on a wildcard account: the login name is the upstream user")
	}
}

// validateCredentials checks that the account's flow has what it needs
// from the account and from its provider p (nil when unknown).
func (cfg *Config) validateCredentials(c *collector, path string, a *Account, p *Provider) {
	if a.ClientSecret != "" && a.ClientSecretFile != "" {
		c.add(path+".client_secret", "set either client_secret or client_secret_file, not both")
	}
	hasSecret := a.ClientSecret != "" || a.ClientSecretFile != ""
	if a.Flow != FlowServiceAccount && a.ClientID == "" {
		c.add(path+".client_id", "required for flow %s: the OAuth client ID of your app registration", a.Flow)
	}
	if a.Flow != FlowServiceAccount && a.ServiceAccountFile != "" {
		c.add(path+".service_account_file", "only used with flow: service_account (flow is %s)", a.Flow)
	}
	if a.Flow != FlowClientCredentials && (a.ClientCertFile != "" || a.ClientKeyFile != "") {
		key := "client_cert_file"
		if a.ClientCertFile == "" {
			key = "client_key_file"
		}
		c.add(path+"."+key, "only used with flow: client_credentials (flow is %s)", a.Flow)
	}

	switch a.Flow {
	case FlowAuthCode:
		if p != nil && p.AuthURL == "" {
			c.add(path+".flow", "provider %s has no auth_url: set providers.%s.auth_url, or use another flow", p.Name, p.Name)
		}
	case FlowDevice:
		switch {
		case p == nil || p.DeviceAuthURL != "":
		case p.Name == "gmail":
			c.add(path+".flow", "provider gmail has no device flow: Google does not allow the Gmail scope "+
				"(https://mail.google.com/) in the device flow; use flow: authcode and, on a machine without a browser, "+
				"run \"oauthbridge authorize %s --no-browser\"", a.Username)
		default:
			c.add(path+".flow", "provider %s has no device_auth_url: set providers.%s.device_auth_url, or use flow: authcode",
				p.Name, p.Name)
		}
	case FlowServiceAccount:
		if a.ServiceAccountFile == "" {
			c.add(path+".service_account_file", "required for flow service_account: the JSON key of the service account "+
				"(with domain-wide delegation for the Gmail scope)")
		}
		if hasSecret {
			c.add(path+".client_secret", "not used with flow service_account: the key file holds the credentials")
		}
	case FlowClientCredentials:
		hasCert := a.ClientCertFile != "" || a.ClientKeyFile != ""
		switch {
		case (a.ClientCertFile == "") != (a.ClientKeyFile == ""):
			missing := "client_key_file"
			if a.ClientCertFile == "" {
				missing = "client_cert_file"
			}
			c.add(path+"."+missing, "required: client_cert_file and client_key_file go together")
		case hasCert && hasSecret:
			c.add(path+".client_secret", "set a client secret or client_cert_file/client_key_file, not both")
		case !hasCert && !hasSecret:
			c.add(path+".client_secret", "flow client_credentials needs client_secret, client_secret_file, "+
				"or client_cert_file with client_key_file")
		}
	}
}
