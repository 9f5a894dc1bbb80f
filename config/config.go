// Package config holds oauthbridge's configuration: the YAML schema, strict
// loading, defaults, built-in provider presets and validation with
// path-qualified errors.
//
// Typical use:
//
//	cfg, err := config.Load(config.DefaultPath())
//	if err != nil {
//		// err names the line, the key path and the fix, one problem per line:
//		// config.yaml:12: accounts[1].provider: unknown provider "gmial" (known: gmail, outlook)
//	}
//	for _, w := range cfg.Warnings() {
//		logger.Warn(w)
//	}
//	acct := cfg.Account("alice@gmail.com")
//	p := cfg.Provider(acct.Provider) // built-in preset merged with overrides
//
// Load = read + Parse + CheckFiles. Parse decodes strictly (unknown and
// duplicate keys are errors) and calls Complete, which applies defaults and
// validates; a Config built in Go (the demo command) calls Complete itself.
// A *Config returned without error is complete: every duration, address and
// path the rest of the program reads is filled in. Zero values in the file
// (or in Go) mean "use the default".
package config

import "time"

// Config is the whole file. Field comments give the YAML key and default.
type Config struct {
	StateDir      string `yaml:"state_dir"`       // default $STATE_DIRECTORY, else ~/.local/state/oauthbridge
	MasterKeyFile string `yaml:"master_key_file"` // default <state_dir>/master.key

	Log  Log  `yaml:"log"`
	HTTP HTTP `yaml:"http"`

	// ShutdownGrace is how long SIGTERM waits for sessions to finish (30s).
	ShutdownGrace Duration `yaml:"shutdown_grace"`

	Limits   Limits   `yaml:"limits"`
	Throttle Throttle `yaml:"throttle"`
	Timeouts Timeouts `yaml:"timeouts"`
	Tokens   Tokens   `yaml:"tokens"`
	Resume   Resume   `yaml:"resume"`
	SMTP     SMTP     `yaml:"smtp"`

	Listeners []Listener           `yaml:"listeners"`
	Providers map[string]*Provider `yaml:"providers"`
	Accounts  []Account            `yaml:"accounts"`

	// resolved holds built-in and configured providers after merging;
	// filled by Complete, read with Provider.
	resolved map[string]*Provider
	// source and pos locate errors found after parsing (Complete,
	// CheckFiles, Warnings): the file name and key path -> line.
	source string
	pos    map[string]int
}

// Log selects the daemon's log output (log/slog on stderr).
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error (info)
	Format string `yaml:"format"` // text | json (text)
}

// HTTP is the optional admin endpoint: /healthz, /metrics, the status
// page and /oauth2/callback.
type HTTP struct {
	// Listen is the admin endpoint address; empty disables it. A
	// non-loopback address is refused unless AllowRemote is set: the status
	// page can start an authorization flow.
	Listen      string `yaml:"listen"`
	AllowRemote bool   `yaml:"allow_remote"` // false
	// Hosts are extra names the endpoint answers to in the Host header
	// (say the name Prometheus scrapes it by); loopback names and
	// addresses always work. Other names are refused: a DNS-rebinding
	// defence.
	Hosts []string `yaml:"hosts"`
}

// Limits bound concurrent sessions. Zero means the default; negative
// values are errors.
type Limits struct {
	MaxConnections int `yaml:"max_connections"` // all client connections of the process (20000)
	PerAddress     int `yaml:"per_address"`     // concurrent sessions from one client address (50)
	// PerAccount is concurrent sessions per account and protocol (7): a
	// session may briefly hold two upstream connections during rotation,
	// and 2 x 7 stays below Gmail's 15 IMAP connections per account.
	PerAccount int `yaml:"per_account"`
}

// Throttle slows and then bans addresses that fail logins.
type Throttle struct {
	Delay    Duration `yaml:"delay"`     // delay after the first failure, doubled per failure (1s)
	MaxDelay Duration `yaml:"max_delay"` // cap of the growing delay (16s)
	BanAfter int      `yaml:"ban_after"` // failures within Window before a ban (10)
	BanFor   Duration `yaml:"ban_for"`   // ban length (15m)
	Window   Duration `yaml:"window"`    // failures older than this are forgotten (15m)
}

// Timeouts per protocol state. Zero means the default.
type Timeouts struct {
	Login    Duration `yaml:"login"`     // from connect to a completed login (60s)
	IMAPIdle Duration `yaml:"imap_idle"` // an authenticated IMAP client silent this long is logged out (30m, RFC 3501 §5.4 minimum)
	POP3Idle Duration `yaml:"pop3_idle"` // (10m, RFC 1939 §3 minimum)
	SMTPIdle Duration `yaml:"smtp_idle"` // (5m, RFC 5321 §4.5.3.2)
	Upstream Duration `yaml:"upstream"`  // connect + TLS + greeting + XOAUTH2 to an upstream (30s)
}

// Tokens controls the daemon's token lifecycle.
type Tokens struct {
	// RefreshBefore: access tokens are refreshed this long before they
	// expire, in the background and on use (5m).
	RefreshBefore Duration `yaml:"refresh_before"`
	// Keepalive: a refresh token unused this long is used once, so
	// providers that expire idle refresh tokens (Microsoft, 90 days) never
	// do (168h).
	Keepalive Duration `yaml:"keepalive"`
}

// Resume bounds reactive resumes after an upstream cut.
type Resume struct {
	Within Duration `yaml:"within"` // give up and close the client after this long (30s)
}

// SMTP settings shared by all SMTP listeners.
type SMTP struct {
	// SpoolMemory is how much of a message is kept in memory before the
	// spool moves to a temporary file (1MiB, in bytes).
	SpoolMemory int64 `yaml:"spool_memory"`
	// SpoolDir holds spool files; default the system temp dir (os.TempDir).
	SpoolDir string `yaml:"spool_dir"`
	// Hostname in the local greeting and EHLO reply; default the host name
	// (os.Hostname, "localhost" when that fails).
	Hostname string `yaml:"hostname"`
}

// Listener is one local port. Without any listeners configured the
// defaults are imap 127.0.0.1:1143, pop3 127.0.0.1:1110 and smtp
// 127.0.0.1:1587, all tls: none.
type Listener struct {
	Protocol string `yaml:"protocol"` // imap | pop3 | smtp (required)
	// Listen is host:port (required). Host is an IP address, "localhost"
	// or a name; an empty host or 0.0.0.0/[::] listens on every address.
	// Port 0 picks a free port (tests).
	Listen string `yaml:"listen"`
	TLS    string `yaml:"tls"` // none | starttls | implicit (none)
	// CertFile and KeyFile are a PEM certificate chain and key, both or
	// neither; empty on a TLS listener means a self-signed certificate
	// kept in state_dir.
	CertFile      string `yaml:"cert_file"`
	KeyFile       string `yaml:"key_file"`
	MinTLSVersion string `yaml:"min_tls_version"` // "1.0" | "1.1" | "1.2" | "1.3" ("1.2"; below 1.2 warns)
	// Allow lists the client networks (CIDRs; a bare IP means /32 or
	// /128). Default [127.0.0.0/8, ::1/128] on a loopback listen address;
	// required on any other, since the bridge holds mailbox credentials.
	Allow []string `yaml:"allow"`
	// AllowPlaintextAuth permits tls: none on a non-loopback address,
	// where passwords cross the network in clear (false).
	AllowPlaintextAuth bool              `yaml:"allow_plaintext_auth"`
	RelayWithoutAuth   *RelayWithoutAuth `yaml:"relay_without_auth"` // smtp only
}

// RelayWithoutAuth lets devices that cannot authenticate send as Account.
type RelayWithoutAuth struct {
	// From lists the device networks (CIDRs, bare IPs allowed); each must
	// lie inside the listener's allow list.
	From []string `yaml:"from"`
	// Account is the username of a configured, non-wildcard account.
	Account string `yaml:"account"`
}

// Provider describes an upstream. Built-in: gmail, outlook. A configured
// provider with a built-in's name overrides only the keys it sets; any
// other name must give imap, pop3, smtp and token_url (auth_url when an
// authcode account uses it, device_auth_url when a device account does).
// URLs are absolute https (http only for loopback hosts, as test servers).
type Provider struct {
	IMAP          string   `yaml:"imap"`     // host:port, implicit TLS
	POP3          string   `yaml:"pop3"`     // host:port, implicit TLS
	SMTP          string   `yaml:"smtp"`     // host:port
	SMTPTLS       string   `yaml:"smtp_tls"` // implicit | starttls; default by port: 465 implicit, else starttls
	CAFile        string   `yaml:"ca_file"`  // extra PEM roots for upstream TLS
	AuthURL       string   `yaml:"auth_url"`
	TokenURL      string   `yaml:"token_url"`
	DeviceAuthURL string   `yaml:"device_auth_url"`
	Scopes        []string `yaml:"scopes"`
	// Tenant is substituted for "{tenant}" in the URLs (outlook: "common").
	Tenant string `yaml:"tenant"`
	// SessionLifetime is "token" (sessions end when the access token
	// expires) or a duration. Default "token".
	SessionLifetime string `yaml:"session_lifetime"`
	// RotateBefore: proactive rotation starts this long before a session's
	// end (5m). "0s" disables rotation.
	RotateBefore *Duration `yaml:"rotate_before"`
	// AppOnlyScopes are the scopes of flow: client_credentials (outlook:
	// https://outlook.office365.com/.default).
	AppOnlyScopes []string `yaml:"app_only_scopes"`

	// CAPEM adds PEM roots from Go (the demo's generated CA); not in YAML.
	CAPEM []byte `yaml:"-"`

	// Filled by Complete: SessionLifetime parsed (0 = token lifetime).
	SessionLifetimeDuration time.Duration `yaml:"-"`
	// Filled by Complete: the name under providers or the built-in name.
	Name string `yaml:"-"`
}

// Account is one mailbox.
type Account struct {
	// Username is what clients log in with. "*@example.com" matches every
	// login in that domain (flow: service_account only); the login name
	// then becomes the upstream user.
	Username string `yaml:"username"`
	// UpstreamUser is the identity in XOAUTH2; default Username. Empty
	// (and not settable) for a wildcard account.
	UpstreamUser string `yaml:"upstream_user"`
	Provider     string `yaml:"provider"` // gmail | outlook | a name under providers (required)
	// ClientID is the OAuth client; required except for service_account,
	// whose key file carries it.
	ClientID string `yaml:"client_id"`
	// ClientSecret or ClientSecretFile (not both); read with Secret.
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// Flow: authcode | device | service_account | client_credentials (authcode).
	Flow               string `yaml:"flow"`
	ServiceAccountFile string `yaml:"service_account_file"` // Google JSON key
	// Certificate credentials for flow: client_credentials (Microsoft), as
	// an alternative to a client secret.
	ClientCertFile string     `yaml:"client_cert_file"`
	ClientKeyFile  string     `yaml:"client_key_file"`
	Passwords      []Password `yaml:"passwords"`
}

// Password is one local app password.
type Password struct {
	Name string `yaml:"name"`
	Hash string `yaml:"hash"` // argon2id PHC string from hash-password
}
