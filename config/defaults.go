package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults of the top-level settings (DESIGN §3). Each is also written in
// the field comments of the schema and in config.example.yaml.
const (
	DefaultShutdownGrace  = 30 * time.Second
	DefaultMaxConnections = 20000
	DefaultPerAddress     = 50
	DefaultPerAccount     = 7
	DefaultSpoolMemory    = 1 << 20
)

// Complete applies defaults and validates cfg; Parse calls it, and a
// Config built in Go (the demo command) must call it before use. It is
// idempotent. It does not touch the filesystem beyond reading the
// environment, the home directory and the host name for defaults; Load
// calls CheckFiles for the files. On error it returns Errors listing every
// problem found.
func (cfg *Config) Complete() error {
	c := &collector{source: cfg.source, pos: cfg.pos}
	cfg.applyDefaults(c)
	cfg.resolveProviders(c)
	cfg.validate(c)
	return c.result()
}

func (cfg *Config) applyDefaults(c *collector) {
	if cfg.StateDir == "" {
		cfg.StateDir = defaultStateDir()
		if cfg.StateDir == "" {
			c.add("state_dir", "required: $STATE_DIRECTORY is unset and there is no home directory for ~/.local/state/oauthbridge")
		}
	}
	if cfg.MasterKeyFile == "" && cfg.StateDir != "" {
		cfg.MasterKeyFile = filepath.Join(cfg.StateDir, "master.key")
	}
	setS(&cfg.Log.Level, "info")
	setS(&cfg.Log.Format, "text")
	setD(&cfg.ShutdownGrace, DefaultShutdownGrace)

	setI(&cfg.Limits.MaxConnections, DefaultMaxConnections)
	setI(&cfg.Limits.PerAddress, DefaultPerAddress)
	setI(&cfg.Limits.PerAccount, DefaultPerAccount)

	setD(&cfg.Throttle.Delay, time.Second)
	setD(&cfg.Throttle.MaxDelay, 16*time.Second)
	setI(&cfg.Throttle.BanAfter, 10)
	setD(&cfg.Throttle.BanFor, 15*time.Minute)
	setD(&cfg.Throttle.Window, 15*time.Minute)

	setD(&cfg.Timeouts.Login, 60*time.Second)
	setD(&cfg.Timeouts.IMAPIdle, 30*time.Minute)
	setD(&cfg.Timeouts.POP3Idle, 10*time.Minute)
	setD(&cfg.Timeouts.SMTPIdle, 5*time.Minute)
	setD(&cfg.Timeouts.Upstream, 30*time.Second)

	setD(&cfg.Tokens.RefreshBefore, 5*time.Minute)
	setD(&cfg.Tokens.Keepalive, 168*time.Hour)
	setD(&cfg.Resume.Within, 30*time.Second)

	if cfg.SMTP.SpoolMemory == 0 {
		cfg.SMTP.SpoolMemory = DefaultSpoolMemory
	}
	setS(&cfg.SMTP.SpoolDir, os.TempDir())
	if cfg.SMTP.Hostname == "" {
		cfg.SMTP.Hostname = "localhost"
		if h, err := os.Hostname(); err == nil && h != "" {
			cfg.SMTP.Hostname = h
		}
	}

	if len(cfg.Listeners) == 0 {
		cfg.Listeners = defaultListeners()
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		setS(&l.TLS, TLSNone)
		setS(&l.MinTLSVersion, "1.2")
		// A nil list was not written; an empty one was (allow: []) and is
		// reported by validate rather than silently widened.
		if l.Allow == nil && l.IsLoopback() {
			l.Allow = append([]string(nil), loopbackAllow...)
		}
	}
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		setS(&a.Flow, FlowAuthCode)
		if !a.IsWildcard() {
			setS(&a.UpstreamUser, a.Username)
		}
	}
}

// defaultStateDir is $STATE_DIRECTORY (set by systemd's StateDirectory=;
// the first entry when it lists several, colon-separated), else
// ~/.local/state/oauthbridge; "" when neither is available.
func defaultStateDir() string {
	if s := os.Getenv("STATE_DIRECTORY"); s != "" {
		first, _, _ := strings.Cut(s, ":")
		return first
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".local", "state", "oauthbridge")
}

func setS(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setI(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setD(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}
