package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// maxFileSize bounds every file the config names: they are keys, secrets
// and certificates of a few KB. A path pointing at /dev/zero by mistake
// must not eat the memory.
const maxFileSize = 1 << 20

// CheckFiles checks that every file the config names exists, is readable
// and is well-formed: client_secret_file is not empty, ca_file holds at
// least one PEM certificate, service_account_file is a JSON key with
// client_email and private_key, and client_cert_file/client_key_file and
// listeners' cert_file/key_file are matching PEM certificate and key. It
// does not look at state_dir or master_key_file, which the daemon
// creates. Errors are Errors, located like Parse's; file errors wrap the
// os error (errors.Is(err, fs.ErrNotExist) works).
func (cfg *Config) CheckFiles() error {
	c := &collector{source: cfg.source, pos: cfg.pos}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if l.CertFile != "" && l.KeyFile != "" {
			checkKeyPair(c, fmt.Sprintf("listeners[%d]", i), "cert_file", "key_file", l.CertFile, l.KeyFile)
		}
	}
	names := make([]string, 0, len(cfg.resolved))
	for name := range cfg.resolved {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if p := cfg.resolved[name]; p.CAFile != "" {
			path := joinPath("providers", name) + ".ca_file"
			if b, ok := readChecked(c, path, p.CAFile); ok {
				if err := checkCAPEM(b); err != nil {
					c.add(path, "%s: %v", p.CAFile, err)
				}
			}
		}
	}
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		path := fmt.Sprintf("accounts[%d]", i)
		if a.ClientSecretFile != "" {
			if b, ok := readChecked(c, path+".client_secret_file", a.ClientSecretFile); ok && strings.TrimSpace(string(b)) == "" {
				c.add(path+".client_secret_file", "%s is empty: put the OAuth client secret in it", a.ClientSecretFile)
			}
		}
		if a.ServiceAccountFile != "" {
			if b, ok := readChecked(c, path+".service_account_file", a.ServiceAccountFile); ok {
				if err := checkServiceAccountJSON(b); err != nil {
					c.add(path+".service_account_file", "%s: %v", a.ServiceAccountFile, err)
				}
			}
		}
		if a.ClientCertFile != "" && a.ClientKeyFile != "" {
			checkKeyPair(c, path, "client_cert_file", "client_key_file", a.ClientCertFile, a.ClientKeyFile)
		}
	}
	return c.result()
}

// RootCAs returns the roots that verify this provider's servers: the
// system pool plus ca_file plus CAPEM. Verification is never disabled;
// an unreadable or empty ca_file is an error, not a silent fallback.
func (p *Provider) RootCAs() (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool() // no system roots (scratch container): ca_file alone
	}
	if p.CAFile != "" {
		b, err := readLimited(p.CAFile)
		if err != nil {
			return nil, fmt.Errorf("config: provider %s: ca_file: %w", p.Name, err)
		}
		if err := checkCAPEM(b); err != nil {
			return nil, fmt.Errorf("config: provider %s: ca_file %s: %w", p.Name, p.CAFile, err)
		}
		pool.AppendCertsFromPEM(b)
	}
	if len(p.CAPEM) > 0 && !pool.AppendCertsFromPEM(p.CAPEM) {
		return nil, fmt.Errorf("config: provider %s: CAPEM holds no certificate", p.Name)
	}
	return pool, nil
}

func readLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes, not a key or certificate file", name, maxFileSize)
	}
	return b, nil
}

// readChecked reads a file, recording an error at path when it cannot.
func readChecked(c *collector, path, name string) ([]byte, bool) {
	b, err := readLimited(name)
	if err != nil {
		c.addErr(path, err, "%v", err)
		return nil, false
	}
	return b, true
}

// checkCAPEM requires at least one PEM CERTIFICATE block that parses.
func checkCAPEM(b []byte) error {
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")
	}
	return nil
}

// checkServiceAccountJSON checks the fields the JWT flow needs. Parse
// errors give only the offset: the file holds a private key.
func checkServiceAccountJSON(b []byte) error {
	var key struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &key); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("not valid JSON (at byte %d): want the service account key file downloaded from Google Cloud", se.Offset)
		}
		return errors.New("not a service account key: want a JSON object as downloaded from Google Cloud")
	}
	if key.Type != "" && key.Type != "service_account" {
		return fmt.Errorf("type is %q, want \"service_account\"", key.Type)
	}
	if key.ClientEmail == "" {
		return errors.New("no client_email: want the service account key file downloaded from Google Cloud")
	}
	if block, _ := pem.Decode([]byte(key.PrivateKey)); block == nil {
		return errors.New("no PEM private_key: want the service account key file downloaded from Google Cloud")
	}
	return nil
}

// checkKeyPair reads a certificate and key file and checks they match.
func checkKeyPair(c *collector, path, certKey, keyKey, certFile, keyFile string) {
	certPEM, ok1 := readChecked(c, path+"."+certKey, certFile)
	keyPEM, ok2 := readChecked(c, path+"."+keyKey, keyFile)
	if !ok1 || !ok2 {
		return
	}
	if err := checkCAPEM(certPEM); err != nil {
		c.add(path+"."+certKey, "%s: %v", certFile, err)
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		// crypto/tls's messages name the problem ("private key does not
		// match public key") without key material.
		c.add(path+"."+keyKey, "%s does not go with %s: %v", keyFile, certFile, err)
	}
}
