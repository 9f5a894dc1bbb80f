package config

import (
	"fmt"
	"strings"
)

// Warnings lists settings that are allowed but deserve a line in the log
// at start: weak TLS for old devices, cleartext passwords on a network,
// accounts nobody can use. Each reads like an Error ("config.yaml:12:
// listeners[1].min_tls_version: ..."). Call it on a completed Config.
func (cfg *Config) Warnings() []string {
	c := &collector{source: cfg.source, pos: cfg.pos}
	if len(cfg.Accounts) == 0 {
		c.add("accounts", "no accounts configured: every login will fail")
	}
	relayed := make(map[string]bool)
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		path := fmt.Sprintf("listeners[%d]", i)
		if l.TLS != TLSNone && l.TLSMinVersion() < tlsVersions["1.2"] {
			c.add(path+".min_tls_version", "TLS %s is obsolete (RFC 8996); keep it only for devices that cannot do 1.2, "+
				"on a listener of their own", l.MinTLSVersion)
		}
		if l.AllowPlaintextAuth && !l.IsLoopback() {
			c.add(path+".allow_plaintext_auth", "passwords from %s cross the network in clear; "+
				"anyone on that network can read them", strings.Join(l.Allow, ", "))
		}
		for j, p := range l.AllowPrefixes() {
			if p.Bits() == 0 {
				c.add(fmt.Sprintf("%s.allow[%d]", path, j), "%s admits every address", p)
			}
		}
		if r := l.RelayWithoutAuth; r != nil {
			relayed[strings.ToLower(r.Account)] = true
		}
	}
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if len(a.Passwords) == 0 && !relayed[strings.ToLower(a.Username)] {
			c.add(fmt.Sprintf("accounts[%d].passwords", i), "%s has no passwords and no relay_without_auth uses it: "+
				"no client can use it; add one with \"oauthbridge hash-password\"", a.Username)
		}
	}
	c.result() // sorts by line
	out := make([]string, len(c.errs))
	for i, e := range c.errs {
		out[i] = e.Error()
	}
	return out
}
