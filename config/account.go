package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Account flows (the OAuth grant that obtains the account's tokens).
const (
	FlowAuthCode          = "authcode"           // browser consent, PKCE, loopback redirect
	FlowDevice            = "device"             // RFC 8628 device code (Microsoft)
	FlowServiceAccount    = "service_account"    // Google domain-wide delegation, JWT
	FlowClientCredentials = "client_credentials" // Microsoft app-only
)

var flows = []string{FlowAuthCode, FlowDevice, FlowServiceAccount, FlowClientCredentials}

// IsWildcard reports whether the account is "*@domain": it matches every
// login in that domain, which then becomes the upstream user.
func (a *Account) IsWildcard() bool { return strings.HasPrefix(a.Username, "*@") }

// Matches reports whether a client logging in as name uses this account:
// the same username ignoring case, or for a wildcard account any name in
// its domain.
func (a *Account) Matches(name string) bool {
	if a.IsWildcard() {
		local, domain, ok := strings.Cut(name, "@")
		return ok && local != "" && !strings.Contains(domain, "@") &&
			strings.EqualFold(domain, a.Username[2:])
	}
	return strings.EqualFold(name, a.Username)
}

// Secret returns the OAuth client secret: client_secret, or the content of
// client_secret_file with surrounding white space trimmed. It returns ""
// and no error when neither is set (public clients).
func (a *Account) Secret() (string, error) {
	if a.ClientSecretFile == "" {
		return a.ClientSecret, nil
	}
	b, err := os.ReadFile(a.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("config: client_secret_file of %s: %w", a.Username, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("config: client_secret_file %s of %s is empty", a.ClientSecretFile, a.Username)
	}
	return s, nil
}

// Account returns the account a client logging in as name uses: an exact
// username (ignoring case) first, else a wildcard account of name's
// domain; nil when none matches. The pointer is into cfg.Accounts.
func (cfg *Config) Account(name string) *Account {
	for i := range cfg.Accounts {
		if a := &cfg.Accounts[i]; !a.IsWildcard() && a.Matches(name) {
			return a
		}
	}
	for i := range cfg.Accounts {
		if a := &cfg.Accounts[i]; a.IsWildcard() && a.Matches(name) {
			return a
		}
	}
	return nil
}

// errNotArgon2id is the syntactic check's only failure; the text is in
// validate, which knows the key path.
var errNotArgon2id = errors.New("not an argon2id hash")

// checkArgon2idPHC checks the shape of a PHC string as hash-password
// writes it: $argon2id$v=19$m=N,t=N,p=N$<b64 salt>$<b64 hash>, base64
// without padding. It does not verify anything cryptographic.
func checkArgon2idPHC(s string) error {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		return errNotArgon2id
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return errNotArgon2id
	}
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], name)
		if !ok {
			return errNotArgon2id
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || (name == "p=" && n > 255) {
			return errNotArgon2id
		}
	}
	for _, b := range parts[4:] {
		raw, err := base64.RawStdEncoding.DecodeString(b)
		if err != nil || len(raw) < 8 {
			return errNotArgon2id
		}
	}
	return nil
}
