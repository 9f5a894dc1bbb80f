package config

import (
	"errors"
	"strings"
	"testing"
)

// A syntactically valid argon2id PHC string (random salt and tag).
const testHash = "$argon2id$v=19$m=65536,t=3,p=4$txFaT05AMxqZtfke8NBJjA$taaPXbsxLBHOQU/lM3fulZ5qvTyMXmyJIkKd56rDj8o"

// TestParseErrors feeds broken configs to Parse and checks the whole error
// text: the line, the key path and the fix, every problem, in line order.
func TestParseErrors(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/oauthbridge")
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown key with suggestion", `
listeners:
  - protocol: imap
    listen: 127.0.0.1:1143
    tsl: none
`, `config.yaml:5: listeners[0].tsl: unknown key (did you mean "tls"?)`},

		{"unknown key without suggestion", `
log: {level: info, colour: true}
`, `config.yaml:2: log.colour: unknown key (known: format, level)`},

		{"duplicate key", `
log:
  level: info
  level: debug
`, `config.yaml:4: log.level: duplicate key (first at line 3)`},

		{"wrong kind: scalar for a list", `
listeners:
  - {protocol: imap, listen: "127.0.0.1:1143", allow: 127.0.0.1}
`, `config.yaml:3: listeners[0].allow: want a list ([a, b] or one "- item" per line), got "127.0.0.1"`},

		{"not a number", `
limits: {per_address: many}
`, `config.yaml:2: limits.per_address: want a whole number, got "many"`},

		{"not a bool", `
http: {listen: "127.0.0.1:8025", allow_remote: maybe}
`, `config.yaml:2: http.allow_remote: want true or false, got "maybe"`},

		{"bad duration", `
timeouts:
  login: 60
  upstream: -5s
`, `config.yaml:3: timeouts.login: "60" is not a duration (use e.g. 30s, 5m, 168h)
config.yaml:4: timeouts.upstream: "-5s" is negative`},

		{"yaml syntax error", "log:\n  level: info\n bad\n",
			// yaml.v3 reports the line where the construct began.
			`config.yaml:2: invalid YAML: did not find expected key`},

		{"two documents", "log: {level: info}\n---\nlog: {level: debug}\n",
			`config.yaml:2: more than one YAML document ("---"): put everything in one`},

		{"log level and format", `
log: {level: verbose, format: xml}
`, `config.yaml:2: log.level: unknown level "verbose" (known: debug, info, warn, error)
config.yaml:2: log.format: unknown format "xml" (known: text, json)`},

		{"unknown protocol and tls mode", `
listeners:
  - protocol: imaps
    listen: 127.0.0.1:993
    tls: ssl
`, `config.yaml:3: listeners[0].protocol: unknown protocol "imaps" (known: imap, pop3, smtp)
config.yaml:5: listeners[0].tls: unknown mode "ssl" (known: none, starttls, implicit)`},

		{"listen missing and bad port", `
listeners:
  - protocol: imap
  - protocol: pop3
    listen: 127.0.0.1:99999
  - protocol: smtp
    listen: localhost
`, `config.yaml:3: listeners[0].listen: required: host:port such as 127.0.0.1:1143
config.yaml:5: listeners[1].listen: "127.0.0.1:99999": port must be a number from 0 to 65535
config.yaml:7: listeners[2].listen: "localhost" is not host:port (e.g. 127.0.0.1:1143, [::1]:1143)`},

		{"listen host not a name", `
listeners:
  - {protocol: imap, listen: "mail server:1143"}
`, `config.yaml:3: listeners[0].listen: "mail server:1143": "mail server" is not an IP address or host name`},

		{"duplicate listen addresses", `
listeners:
  - {protocol: imap, listen: "127.0.0.1:1143"}
  - {protocol: pop3, listen: "127.0.0.1:1143"}
  - {protocol: smtp, listen: "0.0.0.0:1143", allow: [10.0.0.0/8], tls: starttls}
`, `config.yaml:4: listeners[1].listen: 127.0.0.1:1143 is already used by listeners[0] (127.0.0.1:1143)
config.yaml:5: listeners[2].listen: 0.0.0.0:1143 is already used by listeners[0] (127.0.0.1:1143)`},

		{"cert without key, cert on tls none", `
listeners:
  - {protocol: imap, listen: "127.0.0.1:1143", tls: implicit, cert_file: /c.pem}
  - {protocol: pop3, listen: "127.0.0.1:1110", cert_file: /c.pem, key_file: /k.pem}
`, `config.yaml:3: listeners[0].key_file: required when cert_file is set: give both cert_file and key_file, or neither for a generated self-signed certificate
config.yaml:4: listeners[1].cert_file: set but tls is "none": set tls: starttls or implicit, or remove cert_file and key_file`},

		{"min_tls_version", `
listeners:
  - {protocol: imap, listen: "127.0.0.1:1143", tls: implicit, min_tls_version: "1.4"}
`, `config.yaml:3: listeners[0].min_tls_version: unknown version "1.4" (known: "1.0", "1.1", "1.2", "1.3")`},

		{"allow entries", `
listeners:
  - protocol: imap
    listen: 127.0.0.1:1143
    allow:
      - 127.0.0.1
      - 10.0.0.0/33
      - office
  - {protocol: pop3, listen: "127.0.0.1:1110", allow: []}
`, `config.yaml:7: listeners[0].allow[1]: "10.0.0.0/33" is not a CIDR such as 192.168.1.0/24 or an IP address
config.yaml:8: listeners[0].allow[2]: "office" is not a CIDR such as 192.168.1.0/24 or an IP address
config.yaml:9: listeners[1].allow: empty: no client could connect; list the client networks (e.g. [192.168.1.0/24]) or remove the key on a loopback listener`},

		{"non-loopback listen without allow", `
listeners:
  - {protocol: imap, listen: "0.0.0.0:1143", tls: starttls}
`, `config.yaml:3: listeners[0].allow: required because 0.0.0.0:1143 is not a loopback address: list the client networks that may connect (e.g. allow: [192.168.1.0/24]); the bridge logs into mailboxes for its clients, so it must not be open to everyone`},

		{"plaintext on the LAN", `
listeners:
  - {protocol: smtp, listen: "192.168.1.10:25", allow: [192.168.1.0/24]}
  - {protocol: pop3, listen: "[::]:110", allow: ["fd00::/8"], allow_plaintext_auth: true}
`, `config.yaml:3: listeners[0].tls: "none" on the non-loopback address 192.168.1.10:25 would send passwords in clear over the network: set tls: starttls (or implicit), or set allow_plaintext_auth: true if the network is trusted`},

		{"relay on imap", `
listeners:
  - protocol: imap
    listen: 127.0.0.1:1143
    relay_without_auth: {from: [127.0.0.1], account: a@gmail.com}
accounts:
  - {username: a@gmail.com, provider: gmail, client_id: c}
`, `config.yaml:5: listeners[0].relay_without_auth: only for protocol smtp (devices that send mail without AUTH)`},

		{"relay from outside allow, unknown account", `
listeners:
  - protocol: smtp
    listen: 192.168.1.10:2525
    tls: starttls
    allow: [192.168.1.0/25]
    relay_without_auth:
      from: [192.168.1.50, 192.168.1.0/24, 10.1.1.1]
      account: scaner@example.com
accounts:
  - {username: scanner@example.com, provider: gmail, client_id: c}
`, `config.yaml:8: listeners[0].relay_without_auth.from[1]: 192.168.1.0/24 is not inside the listener's allow list (192.168.1.0/25): those devices could not connect; widen allow or narrow from
config.yaml:8: listeners[0].relay_without_auth.from[2]: 10.1.1.1/32 is not inside the listener's allow list (192.168.1.0/25): those devices could not connect; widen allow or narrow from
config.yaml:9: listeners[0].relay_without_auth.account: no account with username "scaner@example.com" (accounts: scanner@example.com)`},

		{"relay needs from and a definite account", `
listeners:
  - protocol: smtp
    listen: 127.0.0.1:1587
    relay_without_auth: {account: "*@corp.example"}
accounts:
  - {username: "*@corp.example", provider: gmail, flow: service_account, service_account_file: /sa.json}
`, `config.yaml:5: listeners[0].relay_without_auth.from: required: the device addresses that may send without AUTH (e.g. [192.168.1.50/32])
config.yaml:5: listeners[0].relay_without_auth.account: "*@corp.example" is a wildcard account: relayed mail needs one definite sender account`},

		{"http listen on the network", `
http: {listen: "0.0.0.0:8025"}
`, `config.yaml:2: http.listen: 0.0.0.0:8025 is not a loopback address: the status page can start an authorization flow, so it is loopback-only; use 127.0.0.1:PORT, or set http.allow_remote: true behind your own access control`},

		{"unknown provider", `
accounts:
  - {username: a@gmail.com, provider: gmail, client_id: c}
  - {username: b@gmail.com, provider: gmial, client_id: c}
`, `config.yaml:4: accounts[1].provider: unknown provider "gmial" (known: gmail, outlook)`},

		{"custom provider incomplete", `
providers:
  corp:
    imap: imap.corp.example
    auth_url: http://id.corp.example/auth
    scopes: [mail]
accounts:
  - {username: a@corp.example, provider: corp, client_id: c}
`, `config.yaml:3: providers.corp.pop3: required for a provider that is not built in: host:port of the POP3 server (implicit TLS, usually port 995)
config.yaml:3: providers.corp.smtp: required for a provider that is not built in: host:port of the SMTP server (465 implicit TLS, 587 STARTTLS)
config.yaml:3: providers.corp.token_url: required for a provider that is not built in: the OAuth token endpoint
config.yaml:4: providers.corp.imap: "imap.corp.example" is not host:port (e.g. 127.0.0.1:1143, [::1]:1143)
config.yaml:5: providers.corp.auth_url: http:// is only allowed for loopback hosts (tokens would cross the network in clear): use https://`},

		{"provider values", `
providers:
  gmail:
    smtp_tls: ssl
    session_lifetime: 0s
    token_url: /token
  outlook:
    session_lifetime: 10m
    rotate_before: 10m
`, `config.yaml:4: providers.gmail.smtp_tls: unknown value "ssl" (known: implicit, starttls)
config.yaml:5: providers.gmail.session_lifetime: must be positive, or "token"
config.yaml:6: providers.gmail.token_url: "/token" is not an absolute https:// URL
config.yaml:9: providers.outlook.rotate_before: 10m0s must be shorter than session_lifetime 10m0s`},

		{"tenant placeholder without tenant", `
providers:
  outlook:
    tenant: "con toso"
  azure:
    imap: imap.example:993
    pop3: pop.example:995
    smtp: smtp.example:587
    token_url: https://login.example/{tenant}/token
`, `config.yaml:4: providers.outlook.tenant: "con toso" is not a tenant name or ID (letters, digits, '.', '-')
config.yaml:5: providers.azure.tenant: required: token_url contains {tenant}`},

		{"username missing and duplicated", `
accounts:
  - {provider: gmail, client_id: c}
  - {username: Alice@Gmail.com, provider: gmail, client_id: c}
  - {username: alice@gmail.com, provider: gmail, client_id: c}
  - {username: "bob smith", provider: gmail, client_id: c}
`, `config.yaml:3: accounts[0].username: required: the name clients log in with (usually the mail address)
config.yaml:5: accounts[2].username: "alice@gmail.com" is already used by accounts[1] (usernames ignore case)
config.yaml:6: accounts[3].username: "bob smith" must not contain spaces or control characters`},

		{"flow, client_id, provider missing", `
accounts:
  - {username: a@gmail.com, provider: gmail, flow: password, client_id: c}
  - {username: b@gmail.com, provider: gmail}
  - {username: c@gmail.com, client_id: c}
`, `config.yaml:3: accounts[0].flow: unknown flow "password" (known: authcode, device, service_account, client_credentials)
config.yaml:4: accounts[1].client_id: required for flow authcode: the OAuth client ID of your app registration
config.yaml:5: accounts[2].provider: required (known: gmail, outlook)`},

		{"secret twice", `
accounts:
  - username: a@gmail.com
    provider: gmail
    client_id: c
    client_secret: s3cr3t-value
    client_secret_file: /etc/oauthbridge/a.secret
`, `config.yaml:6: accounts[0].client_secret: set either client_secret or client_secret_file, not both`},

		{"device flow with gmail", `
accounts:
  - {username: a@gmail.com, provider: gmail, client_id: c, flow: device}
`, `config.yaml:3: accounts[0].flow: provider gmail has no device flow: Google does not allow the Gmail scope (https://mail.google.com/) in the device flow; use flow: authcode and, on a machine without a browser, run "oauthbridge authorize a@gmail.com --no-browser"`},

		{"device flow and authcode without URLs", `
providers:
  corp:
    imap: imap.corp.example:993
    pop3: pop.corp.example:995
    smtp: smtp.corp.example:465
    token_url: https://id.corp.example/token
accounts:
  - {username: a@corp.example, provider: corp, client_id: c, flow: device}
  - {username: b@corp.example, provider: corp, client_id: c}
`, `config.yaml:9: accounts[0].flow: provider corp has no device_auth_url: set providers.corp.device_auth_url, or use flow: authcode
config.yaml:10: accounts[1].flow: provider corp has no auth_url: set providers.corp.auth_url, or use another flow`},

		{"service account and client credentials", `
accounts:
  - {username: a@corp.example, provider: gmail, flow: service_account}
  - {username: b@corp.example, provider: outlook, client_id: c, flow: client_credentials}
  - {username: c@corp.example, provider: outlook, client_id: c, flow: client_credentials, client_cert_file: /c.pem}
  - {username: d@corp.example, provider: outlook, client_id: c, client_key_file: /k.pem}
`, `config.yaml:3: accounts[0].service_account_file: required for flow service_account: the JSON key of the service account (with domain-wide delegation for the Gmail scope)
config.yaml:4: accounts[1].client_secret: flow client_credentials needs client_secret, client_secret_file, or client_cert_file with client_key_file
config.yaml:5: accounts[2].client_key_file: required: client_cert_file and client_key_file go together
config.yaml:6: accounts[3].client_key_file: only used with flow: client_credentials (flow is authcode)`},

		{"wildcards", `
accounts:
  - {username: "*@corp.example", provider: gmail, client_id: c}
  - {username: "a*@corp.example", provider: gmail, flow: service_account, service_account_file: /sa.json}
  - {username: "*@other.example", upstream_user: x@other.example, provider: gmail, flow: service_account, service_account_file: /sa.json}
`, `config.yaml:3: accounts[0].username: wildcard "*@corp.example" needs flow: service_account (only domain-wide delegation can act for every user of a domain)
config.yaml:4: accounts[1].username: "a*@corp.example": a wildcard must be the whole local part, as in *@example.com
config.yaml:5: accounts[2].upstream_user: not allowed on a wildcard account: the login name is the upstream user`},

		{"passwords", `
accounts:
  - username: a@gmail.com
    provider: gmail
    client_id: c
    passwords:
      - {name: laptop, hash: "hunter2"}
      - {name: laptop, hash: "` + testHash + `"}
      - {hash: "$argon2i$v=19$m=65536,t=3,p=4$txFaT05AMxqZtfke8NBJjA$taaPXbsxLBHOQU/lM3fulZ5qvTyMXmyJIkKd56rDj8o"}
      - {name: phone}
`, `config.yaml:7: accounts[0].passwords[0].hash: not an argon2id hash: run "oauthbridge hash-password" and paste its output ($argon2id$v=19$m=...,t=...,p=...$salt$hash)
config.yaml:8: accounts[0].passwords[1].name: "laptop" is already used by passwords[0] of this account
config.yaml:9: accounts[0].passwords[2].name: required: a label for this password (e.g. laptop, printer), used in logs
config.yaml:9: accounts[0].passwords[2].hash: not an argon2id hash: run "oauthbridge hash-password" and paste its output ($argon2id$v=19$m=...,t=...,p=...$salt$hash)
config.yaml:10: accounts[0].passwords[3].hash: required: run "oauthbridge hash-password" and paste its output`},

		{"negative limits, throttle order", `
limits: {max_connections: -1}
throttle: {delay: 10s, max_delay: 5s}
smtp: {spool_memory: -5}
`, `config.yaml:2: limits.max_connections: must not be negative, got -1
config.yaml:3: throttle.max_delay: 5s is shorter than throttle.delay 10s
config.yaml:4: smtp.spool_memory: must not be negative, got -5`},

		{"top level not a mapping", `
- a
- b
`, `config.yaml:2: want a mapping of keys (key: value), got a list`},

		{"errors from strict pass sorted with several sections", `
accounts:
  - {username: a@gmail.com, provider: gmail, client_id: c, passwrods: []}
listeners:
  - {protocol: imap, lisen: "127.0.0.1:1143"}
state_dri: /tmp
`, `config.yaml:3: accounts[0].passwrods: unknown key (did you mean "passwords"?)
config.yaml:5: listeners[0].lisen: unknown key (did you mean "listen"?)
config.yaml:6: state_dri: unknown key (did you mean "state_dir"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "config.yaml")
			if err == nil {
				t.Fatalf("Parse accepted the config; want error:\n%s", tt.want)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error mismatch\n got:\n%s\nwant:\n%s", got, tt.want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) != strings.Count(tt.want, "\n")+1 {
				t.Errorf("want Errors with one entry per line, got %T %v", err, err)
			}
		})
	}
}

// TestErrorsNeverEchoSecrets: a plain password pasted as a hash and an
// inline client secret must not appear in any error text.
func TestErrorsNeverEchoSecrets(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/oauthbridge")
	_, err := Parse([]byte(`
accounts:
  - username: a@gmail.com
    provider: gmail
    client_id: c
    client_secret: TOPSECRET-client
    client_secret_file: /x
    passwords: [{name: p, hash: "TOPSECRET-password"}]
`), "config.yaml")
	if err == nil {
		t.Fatal("want errors")
	}
	if strings.Contains(err.Error(), "TOPSECRET") {
		t.Errorf("error text contains a secret:\n%v", err)
	}
}

func TestErrorFormats(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{Source: "c.yaml", Line: 3, Path: "a.b", Msg: "bad"}, "c.yaml:3: a.b: bad"},
		{Error{Source: "c.yaml", Path: "a.b", Msg: "bad"}, "c.yaml: a.b: bad"},
		{Error{Line: 3, Path: "a.b", Msg: "bad"}, "line 3: a.b: bad"},
		{Error{Path: "a.b", Msg: "bad"}, "config: a.b: bad"},
		{Error{Msg: "bad"}, "config: bad"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// TestErrorsAs: callers can pick out each problem's path and line.
func TestErrorsAs(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/oauthbridge")
	_, err := Parse([]byte("log:\n  level: loud\n"), "")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*Error) failed on %v", err)
	}
	if e.Path != "log.level" || e.Line != 2 || e.Source != "" {
		t.Errorf("got path %q line %d source %q", e.Path, e.Line, e.Source)
	}
	if got, want := err.Error(), `line 2: log.level: unknown level "loud" (known: debug, info, warn, error)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSuggest(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"tsl", `did you mean "tls"?`},
		{"Listen", `did you mean "listen"?`},
		{"alow", `did you mean "allow"?`},
		{"mintls", `known: allow, allow_plaintext_auth, cert_file, key_file, listen, min_tls_version, protocol, relay_without_auth, tls`},
	} {
		known := []string{"protocol", "listen", "tls", "cert_file", "key_file", "min_tls_version", "allow", "allow_plaintext_auth", "relay_without_auth"}
		if got := suggest(tt.key, known); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// TestErrorCap: a file with a thousand mistakes gets a report of
// maxErrors lines plus a count, not a thousand lines.
func TestErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("accounts:\n")
	for range 1000 {
		b.WriteString("  - {usernam: x}\n")
	}
	_, err := Parse([]byte(b.String()), "c.yaml")
	var es Errors
	if !errors.As(err, &es) || len(es) != maxErrors+1 {
		t.Fatalf("got %d errors, want %d", len(es), maxErrors+1)
	}
	if got, want := es[maxErrors].Error(), "c.yaml: 950 more errors not shown; fix the ones above first"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	if got := es[0].Error(); got != `c.yaml:2: accounts[0].usernam: unknown key (did you mean "username"?)` {
		t.Errorf("first line %q", got)
	}
}

// TestErrorOneLine: values with line breaks are escaped, so each problem
// stays one line (found by FuzzParse).
func TestErrorOneLine(t *testing.T) {
	_, err := Parse([]byte("listeners: [{protocol: imap, listen: \"127.0.0.1:1143\", tls: starttls}]\n"+
		"providers: {x: {imap: \"a:1\", pop3: \"a:2\", smtp: \"a:3\", token_url: \"https://a/\\nb\"}}\n"), "c.yaml")
	want := `c.yaml:2: providers.x.token_url: "https://a/\nb" is not an absolute https:// URL`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	// Messages that embed a value with %s (file paths) are escaped too.
	e := &Error{Source: "c.yaml", Line: 1, Path: "a", Msg: "/tmp/x\nc.yaml:9: forged\u2028 is empty"}
	if got, want := e.Error(), `c.yaml:1: a: /tmp/x\nc.yaml:9: forged\u2028 is empty`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
