package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, yaml string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(yaml), "config.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// TestDefaults checks every default of DESIGN §3 on an empty file.
func TestDefaults(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/oauthbridge:/var/lib/other")
	cfg := mustParse(t, "")

	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	want := Config{
		StateDir:      "/var/lib/oauthbridge",
		MasterKeyFile: "/var/lib/oauthbridge/master.key",
		Log:           Log{Level: "info", Format: "text"},
		ShutdownGrace: Duration(30 * time.Second),
		Limits:        Limits{MaxConnections: 20000, PerAddress: 50, PerAccount: 7},
		Throttle: Throttle{Delay: Duration(time.Second), MaxDelay: Duration(16 * time.Second), BanAfter: 10,
			BanFor: Duration(15 * time.Minute), Window: Duration(15 * time.Minute)},
		Timeouts: Timeouts{Login: Duration(60 * time.Second), IMAPIdle: Duration(30 * time.Minute),
			POP3Idle: Duration(10 * time.Minute), SMTPIdle: Duration(5 * time.Minute), Upstream: Duration(30 * time.Second)},
		Tokens: Tokens{RefreshBefore: Duration(5 * time.Minute), Keepalive: Duration(168 * time.Hour)},
		Resume: Resume{Within: Duration(30 * time.Second)},
		SMTP:   SMTP{SpoolMemory: 1048576, SpoolDir: os.TempDir(), Hostname: host},
	}
	got := *cfg
	got.Listeners, got.resolved, got.pos, got.source = nil, nil, nil, ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}

	loop := []string{"127.0.0.0/8", "::1/128"}
	wantL := []Listener{
		{Protocol: "imap", Listen: "127.0.0.1:1143", TLS: "none", MinTLSVersion: "1.2", Allow: loop},
		{Protocol: "pop3", Listen: "127.0.0.1:1110", TLS: "none", MinTLSVersion: "1.2", Allow: loop},
		{Protocol: "smtp", Listen: "127.0.0.1:1587", TLS: "none", MinTLSVersion: "1.2", Allow: loop},
	}
	if !reflect.DeepEqual(cfg.Listeners, wantL) {
		t.Errorf("default listeners:\n got %+v\nwant %+v", cfg.Listeners, wantL)
	}
}

func TestDefaultStateDirHome(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg := mustParse(t, "")
	if want := filepath.Join(home, ".local/state/oauthbridge"); cfg.StateDir != want {
		t.Errorf("state_dir = %q, want %q", cfg.StateDir, want)
	}
	if want := filepath.Join(home, ".local/state/oauthbridge/master.key"); cfg.MasterKeyFile != want {
		t.Errorf("master_key_file = %q, want %q", cfg.MasterKeyFile, want)
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("OAUTHBRIDGE_CONFIG", "")
	if got := DefaultPath(); got != "/etc/oauthbridge/config.yaml" {
		t.Errorf("DefaultPath() = %q", got)
	}
	t.Setenv("OAUTHBRIDGE_CONFIG", "/tmp/x.yaml")
	if got := DefaultPath(); got != "/tmp/x.yaml" {
		t.Errorf("DefaultPath() with $OAUTHBRIDGE_CONFIG = %q", got)
	}
}

// TestExplicitValuesKept: values given in the file are not replaced by
// defaults, and a configured listener list replaces the default three.
func TestExplicitValuesKept(t *testing.T) {
	cfg := mustParse(t, `
state_dir: /srv/ob
log: {level: debug, format: json}
limits: {per_account: 3}
throttle: {delay: 2s}
smtp: {spool_dir: /srv/spool, hostname: mx.example}
listeners:
  - {protocol: smtp, listen: "[::1]:2525", tls: implicit, min_tls_version: 1.3}
accounts:
  - {username: Alice@Gmail.com, provider: gmail, client_id: c, passwords: [{name: l, hash: "`+testHash+`"}]}
`)
	if cfg.StateDir != "/srv/ob" || cfg.MasterKeyFile != "/srv/ob/master.key" {
		t.Errorf("state_dir %q master_key_file %q", cfg.StateDir, cfg.MasterKeyFile)
	}
	if cfg.Log != (Log{"debug", "json"}) || cfg.Limits.PerAccount != 3 || cfg.Limits.PerAddress != 50 {
		t.Errorf("log %+v limits %+v", cfg.Log, cfg.Limits)
	}
	if cfg.Throttle.Delay.D() != 2*time.Second || cfg.Throttle.MaxDelay.D() != 16*time.Second {
		t.Errorf("throttle %+v", cfg.Throttle)
	}
	if cfg.SMTP.SpoolDir != "/srv/spool" || cfg.SMTP.Hostname != "mx.example" {
		t.Errorf("smtp %+v", cfg.SMTP)
	}
	if len(cfg.Listeners) != 1 {
		t.Fatalf("listeners: %+v", cfg.Listeners)
	}
	l := cfg.Listeners[0]
	if !l.IsLoopback() || l.TLSMinVersion() != tls.VersionTLS13 || !slices.Equal(l.Allow, []string{"127.0.0.0/8", "::1/128"}) {
		t.Errorf("listener %+v", l)
	}
	a := cfg.Accounts[0]
	if a.Flow != FlowAuthCode || a.UpstreamUser != "Alice@Gmail.com" {
		t.Errorf("account defaults: flow %q upstream_user %q", a.Flow, a.UpstreamUser)
	}
}

// TestCompleteInGo: a Config built in Go (the demo) is completed and
// validated the same way, its errors without a file position, and
// Complete is idempotent.
func TestCompleteInGo(t *testing.T) {
	rb := Duration(0)
	cfg := &Config{
		StateDir: t.TempDir(),
		Listeners: []Listener{
			{Protocol: ProtoIMAP, Listen: "127.0.0.1:0"},
			{Protocol: ProtoPOP3, Listen: "127.0.0.1:0"},
		},
		Providers: map[string]*Provider{"gmail": {
			IMAP: "127.0.0.1:40993", POP3: "127.0.0.1:40995", SMTP: "127.0.0.1:40465", SMTPTLS: SMTPImplicit,
			AuthURL: "http://127.0.0.1:40080/auth", TokenURL: "http://127.0.0.1:40080/token",
			CAPEM: []byte("pem"), RotateBefore: &rb,
		}},
		Accounts: []Account{{Username: "demo@gmail.com", Provider: "gmail", ClientID: "demo",
			Passwords: []Password{{Name: "demo", Hash: testHash}}}},
	}
	if err := cfg.Complete(); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	before := *cfg.Provider("gmail")
	if err := cfg.Complete(); err != nil {
		t.Fatalf("second Complete: %v", err)
	}
	p := cfg.Provider("gmail")
	if !reflect.DeepEqual(*p, before) {
		t.Errorf("Complete is not idempotent:\n%+v\n%+v", before, *p)
	}
	if p.SMTPTLS != SMTPImplicit || p.RotateBefore.D() != 0 || string(p.CAPEM) != "pem" ||
		p.TokenURL != "http://127.0.0.1:40080/token" || !slices.Equal(p.Scopes, []string{"https://mail.google.com/"}) {
		t.Errorf("merged demo provider: %+v", p)
	}
	if len(cfg.Listeners) != 2 {
		t.Errorf("listeners: %+v", cfg.Listeners)
	}

	cfg.Accounts[0].Provider = "gmial"
	cfg.Limits.PerAddress = -1
	err := cfg.Complete()
	want := "config: limits.per_address: must not be negative, got -1\n" +
		`config: accounts[0].provider: unknown provider "gmial" (known: gmail, outlook)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestCompleteInGoRejectsNonPositiveDurations(t *testing.T) {
	cfg := &Config{StateDir: "/x", Timeouts: Timeouts{Login: Duration(-time.Second)}}
	err := cfg.Complete()
	if want := "config: timeouts.login: must be positive, got -1s"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestBuiltinProviders(t *testing.T) {
	cfg := mustParse(t, "")
	if got := cfg.ProviderNames(); !slices.Equal(got, []string{"gmail", "outlook"}) {
		t.Errorf("ProviderNames = %v", got)
	}
	g := cfg.Provider("gmail")
	wantG := Provider{
		IMAP: "imap.gmail.com:993", POP3: "pop.gmail.com:995", SMTP: "smtp.gmail.com:465", SMTPTLS: "implicit",
		AuthURL: "https://accounts.google.com/o/oauth2/v2/auth", TokenURL: "https://oauth2.googleapis.com/token",
		Scopes: []string{"https://mail.google.com/"}, SessionLifetime: "token", Name: "gmail",
	}
	if g.RotateBefore == nil || g.RotateBefore.D() != 5*time.Minute {
		t.Errorf("gmail rotate_before = %v", g.RotateBefore)
	}
	g.RotateBefore = nil
	if !reflect.DeepEqual(*g, wantG) {
		t.Errorf("gmail:\n got %+v\nwant %+v", *g, wantG)
	}

	o := cfg.Provider("outlook")
	if o.SMTPTLS != "starttls" || o.Tenant != "common" ||
		o.AuthURL != "https://login.microsoftonline.com/common/oauth2/v2.0/authorize" ||
		o.TokenURL != "https://login.microsoftonline.com/common/oauth2/v2.0/token" ||
		o.DeviceAuthURL != "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode" ||
		len(o.Scopes) != 4 || o.Scopes[3] != "offline_access" ||
		!slices.Equal(o.ScopesFor(FlowClientCredentials), []string{"https://outlook.office365.com/.default"}) {
		t.Errorf("outlook: %+v", *o)
	}
	if cfg.Provider("nope") != nil {
		t.Error("Provider of an unknown name is not nil")
	}

	// The result is a copy.
	g2 := cfg.Provider("gmail")
	g2.Scopes[0] = "changed"
	if cfg.Provider("gmail").Scopes[0] != "https://mail.google.com/" {
		t.Error("changing Provider's result changed the config")
	}
}

// TestOverrideOutlookTenant: an override changes only the keys it sets.
func TestOverrideOutlookTenant(t *testing.T) {
	cfg := mustParse(t, `
providers:
  outlook:
    tenant: 7f3c1a2b-0000-4000-8000-000000000001
    session_lifetime: 1h
    rotate_before: 10m
  gmail:
    smtp: smtp.gmail.com:587
`)
	o := cfg.Provider("outlook")
	base := "https://login.microsoftonline.com/7f3c1a2b-0000-4000-8000-000000000001/oauth2/v2.0/"
	if o.AuthURL != base+"authorize" || o.TokenURL != base+"token" || o.DeviceAuthURL != base+"devicecode" {
		t.Errorf("tenant not substituted: %s %s %s", o.AuthURL, o.TokenURL, o.DeviceAuthURL)
	}
	if o.IMAP != "outlook.office365.com:993" || o.SMTP != "smtp.office365.com:587" || len(o.Scopes) != 4 {
		t.Errorf("keys not set by the override changed: %+v", *o)
	}
	if o.SessionLifetime != "1h" || o.SessionLifetimeDuration != time.Hour || o.RotateBefore.D() != 10*time.Minute {
		t.Errorf("session: %q %v %v", o.SessionLifetime, o.SessionLifetimeDuration, o.RotateBefore.D())
	}
	if g := cfg.Provider("gmail"); g.SMTP != "smtp.gmail.com:587" || g.SMTPTLS != SMTPStartTLS {
		t.Errorf("gmail on 587: %s %s", g.SMTP, g.SMTPTLS)
	}
	// The raw overrides stay as written.
	if cfg.Providers["outlook"].AuthURL != "" {
		t.Errorf("override was modified: %+v", cfg.Providers["outlook"])
	}
}

func TestCustomProvider(t *testing.T) {
	cfg := mustParse(t, `
providers:
  corp:
    imap: imap.corp.example:993
    pop3: pop.corp.example:995
    smtp: smtp.corp.example:465
    token_url: https://id.corp.example/token
    device_auth_url: https://id.corp.example/device
accounts:
  - {username: a@corp.example, provider: corp, client_id: c, flow: device}
`)
	if got := cfg.ProviderNames(); !slices.Equal(got, []string{"corp", "gmail", "outlook"}) {
		t.Errorf("ProviderNames = %v", got)
	}
	p := cfg.Provider("corp")
	if p.Name != "corp" || p.SMTPTLS != SMTPImplicit || !p.SMTPImplicitTLS() || p.SessionLifetime != "token" ||
		p.SessionLifetimeDuration != 0 || p.RotateBefore.D() != 5*time.Minute {
		t.Errorf("corp: %+v", *p)
	}
}

func TestHTTPURLOnLoopbackAllowed(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080/token", "http://[::1]:8080/token", "http://localhost/token"} {
		if err := checkURL(u); err != nil {
			t.Errorf("checkURL(%q) = %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1/token", "ftp://127.0.0.1/x", "https://", "token", "https://u:p@id.example/"} {
		if err := checkURL(u); err == nil {
			t.Errorf("checkURL(%q) accepted", u)
		}
	}
}

func TestListenerHelpers(t *testing.T) {
	for _, tt := range []struct {
		listen string
		loop   bool
	}{
		{"127.0.0.1:1143", true}, {"127.1.2.3:1143", true}, {"[::1]:1143", true}, {"localhost:1143", true},
		{"0.0.0.0:1143", false}, {"[::]:1143", false}, {":1143", false}, {"192.168.1.10:25", false},
		{"mail.lan:25", false}, {"garbage", false},
	} {
		l := Listener{Listen: tt.listen}
		if got := l.IsLoopback(); got != tt.loop {
			t.Errorf("IsLoopback(%q) = %v", tt.listen, got)
		}
	}

	l := Listener{Allow: []string{"192.168.1.7/24", "10.0.0.1", "::1", "fd00::/8"},
		RelayWithoutAuth: &RelayWithoutAuth{From: []string{"192.168.1.50"}}}
	want := []netip.Prefix{
		netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.0.0.1/32"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fd00::/8"),
	}
	if got := l.AllowPrefixes(); !slices.Equal(got, want) {
		t.Errorf("AllowPrefixes = %v, want %v", got, want)
	}
	if got := l.RelayFromPrefixes(); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("192.168.1.50/32")}) {
		t.Errorf("RelayFromPrefixes = %v", got)
	}
	if (&Listener{}).RelayFromPrefixes() != nil {
		t.Error("RelayFromPrefixes without relay is not nil")
	}

	for v, want := range map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11,
		"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13, "": tls.VersionTLS12} {
		if got := (&Listener{MinTLSVersion: v}).TLSMinVersion(); got != want {
			t.Errorf("TLSMinVersion(%q) = %x, want %x", v, got, want)
		}
	}
}

func TestAccountLookup(t *testing.T) {
	cfg := mustParse(t, `
accounts:
  - {username: "*@corp.example", provider: gmail, flow: service_account, service_account_file: /sa.json}
  - {username: boss@corp.example, provider: gmail, client_id: c}
  - {username: plain-name, provider: gmail, client_id: c}
`)
	for _, tt := range []struct{ login, want string }{
		{"boss@corp.example", "boss@corp.example"},
		{"BOSS@Corp.Example", "boss@corp.example"},
		{"ann@corp.example", "*@corp.example"},
		{"ann@CORP.example", "*@corp.example"},
		{"plain-name", "plain-name"},
		{"ann@other.example", ""},
		{"@corp.example", ""},
		{"a@b@corp.example", ""},
		{"corp.example", ""},
	} {
		a := cfg.Account(tt.login)
		got := ""
		if a != nil {
			got = a.Username
		}
		if got != tt.want {
			t.Errorf("Account(%q) = %q, want %q", tt.login, got, tt.want)
		}
	}
	if !cfg.Accounts[0].IsWildcard() || cfg.Accounts[1].IsWildcard() {
		t.Error("IsWildcard")
	}
	if cfg.Accounts[0].UpstreamUser != "" {
		t.Errorf("wildcard got upstream_user %q", cfg.Accounts[0].UpstreamUser)
	}
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "s")
	if err := os.WriteFile(f, []byte("  s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		a       Account
		want    string
		wantErr string
	}{
		{Account{ClientSecret: "inline"}, "inline", ""},
		{Account{}, "", ""},
		{Account{ClientSecretFile: f}, "s3cr3t", ""},
		{Account{Username: "a", ClientSecretFile: filepath.Join(dir, "missing")}, "", "no such file"},
	} {
		got, err := tt.a.Secret()
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Secret(%+v) = %q, %v", tt.a, got, err)
		}
	}
}

func TestArgon2idSyntax(t *testing.T) {
	good := []string{testHash, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}
	bad := []string{
		"", "hunter2", "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=16$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=0,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$t=3,m=65536,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ=$aGFzaGhhc2g",
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$not base64!",
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ",
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g$extra",
	}
	for _, h := range good {
		if err := checkArgon2idPHC(h); err != nil {
			t.Errorf("rejected %q", h)
		}
	}
	for _, h := range bad {
		if err := checkArgon2idPHC(h); err == nil {
			t.Errorf("accepted %q", h)
		}
	}
}

func TestWarnings(t *testing.T) {
	cfg := mustParse(t, `
listeners:
  - {protocol: smtp, listen: "192.168.1.10:2525", tls: starttls, min_tls_version: "1.0", allow: [192.168.1.0/24],
     relay_without_auth: {from: [192.168.1.50], account: scanner@example.com}}
  - {protocol: pop3, listen: "192.168.1.10:110", allow: [0.0.0.0/0], allow_plaintext_auth: true}
  - {protocol: imap, listen: "127.0.0.1:1143", min_tls_version: "1.0"}
accounts:
  - {username: scanner@example.com, provider: gmail, client_id: c}
  - {username: idle@example.com, provider: gmail, client_id: c}
  - {username: used@example.com, provider: gmail, client_id: c, passwords: [{name: p, hash: "`+testHash+`"}]}
`)
	want := []string{
		`config.yaml:3: listeners[0].min_tls_version: TLS 1.0 is obsolete (RFC 8996); keep it only for devices that cannot do 1.2, on a listener of their own`,
		`config.yaml:5: listeners[1].allow_plaintext_auth: passwords from 0.0.0.0/0 cross the network in clear; anyone on that network can read them`,
		`config.yaml:5: listeners[1].allow[0]: 0.0.0.0/0 admits every address`,
		`config.yaml:9: accounts[1].passwords: idle@example.com has no passwords and no relay_without_auth uses it: no client can use it; add one with "oauthbridge hash-password"`,
	}
	if got := cfg.Warnings(); !slices.Equal(got, want) {
		t.Errorf("Warnings:\n got %q\nwant %q", got, want)
	}

	if got := mustParse(t, "").Warnings(); !slices.Equal(got, []string{"config.yaml: accounts: no accounts configured: every login will fail"}) {
		t.Errorf("empty config warnings: %q", got)
	}
}

// TestAliasesAndMerges: anchors and merge keys work and are checked.
func TestAliasesAndMerges(t *testing.T) {
	cfg := mustParse(t, `
accounts:
  - &a
    username: a@gmail.com
    provider: gmail
    client_id: shared
  - <<: *a
    username: b@gmail.com
`)
	if len(cfg.Accounts) != 2 || cfg.Accounts[1].ClientID != "shared" || cfg.Accounts[1].Username != "b@gmail.com" {
		t.Errorf("merged accounts: %+v", cfg.Accounts)
	}
	_, err := Parse([]byte(`
accounts:
  - &a {username: a@gmail.com, provider: gmail, client_id: c, bogus: 1}
  - <<: *a
    username: b@gmail.com
`), "c.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), `c.yaml:3: accounts[0].bogus: unknown key`) {
		t.Errorf("unknown key in an anchor: %v", err)
	}
}

// TestAliasBomb: merge keys nested ten-fold per level describe 10^9 keys
// in a few hundred bytes; the walk stops at its node budget instead.
func TestAliasBomb(t *testing.T) {
	doc := "accounts:\n  - &a0 {username: x}\n"
	for i := 1; i < 10; i++ {
		prev := fmt.Sprintf("*a%d", i-1)
		doc += fmt.Sprintf("  - &a%d {<<: [%s]}\n", i, strings.Repeat(prev+", ", 9)+prev)
	}
	_, err := Parse([]byte(doc), "bomb.yaml")
	want := fmt.Sprintf("document too large or too deeply aliased (more than %d nodes)", maxNodes)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}
