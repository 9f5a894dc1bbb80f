package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI writes a self-signed certificate and its key, plus a second
// unrelated key, into dir.
func testPKI(t *testing.T, dir string) (certFile, keyFile, otherKeyFile string) {
	t.Helper()
	writeKey := func(name string) (*ecdsa.PrivateKey, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, name)
		writeFile(t, f, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
		return k, f
	}
	key, keyFile := writeKey("key.pem")
	_, otherKeyFile = writeKey("other.pem")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "oauthbridge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "cert.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return certFile, keyFile, otherKeyFile
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func serviceAccountJSON(t *testing.T, email string, keyFile string) string {
	t.Helper()
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{"type": "service_account", "client_email": email, "private_key": string(key)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLoadGood: a config naming real, well-formed files loads.
func TestLoadGood(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/oauthbridge")
	dir := t.TempDir()
	cert, key, _ := testPKI(t, dir)
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "client-secret\n")
	sa := filepath.Join(dir, "sa.json")
	writeFile(t, sa, serviceAccountJSON(t, "sa@proj.iam.gserviceaccount.com", key))

	cfgFile := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgFile, `
listeners:
  - {protocol: imap, listen: "127.0.0.1:1143", tls: implicit, cert_file: "`+cert+`", key_file: "`+key+`"}
providers:
  gmail: {ca_file: "`+cert+`"}
accounts:
  - {username: a@gmail.com, provider: gmail, client_id: c, client_secret_file: "`+secret+`"}
  - {username: "*@corp.example", provider: gmail, flow: service_account, service_account_file: "`+sa+`"}
  - {username: app@contoso.com, provider: outlook, client_id: c, flow: client_credentials,
     client_cert_file: "`+cert+`", client_key_file: "`+key+`"}
`)
	cfg, err := Load(cfgFile)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if s, err := cfg.Account("a@gmail.com").Secret(); err != nil || s != "client-secret" {
		t.Errorf("Secret = %q, %v", s, err)
	}
	pool, err := cfg.Provider("gmail").RootCAs()
	if err != nil {
		t.Fatalf("RootCAs: %v", err)
	}
	// The pool verifies a certificate signed by the ca_file.
	pemBytes, _ := os.ReadFile(cert)
	block, _ := pem.Decode(pemBytes)
	c, _ := x509.ParseCertificate(block.Bytes)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("ca_file not in RootCAs: %v", err)
	}
}

// TestLoadFileErrors: each broken file is named with its key path and the
// line of the key, every problem at once.
func TestLoadFileErrors(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/oauthbridge")
	dir := t.TempDir()
	cert, key, otherKey := testPKI(t, dir)
	empty := filepath.Join(dir, "empty.secret")
	writeFile(t, empty, " \n")
	notPEM := filepath.Join(dir, "notpem.crt")
	writeFile(t, notPEM, "this is not a certificate\n")
	badJSON := filepath.Join(dir, "bad.json")
	writeFile(t, badJSON, `{"client_email": "x", "private_key": SECRETKEY}`)
	noEmail := filepath.Join(dir, "noemail.json")
	writeFile(t, noEmail, serviceAccountJSON(t, "", key))
	missing := filepath.Join(dir, "missing.secret")

	cfgFile := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgFile, `
listeners:
  - {protocol: imap, listen: "127.0.0.1:1143", tls: implicit, cert_file: "`+cert+`", key_file: "`+otherKey+`"}
providers:
  gmail: {ca_file: "`+dir+`"}
  outlook: {ca_file: "`+notPEM+`"}
accounts:
  - {username: a@gmail.com, provider: gmail, client_id: c, client_secret_file: "`+missing+`"}
  - {username: b@gmail.com, provider: gmail, client_id: c, client_secret_file: "`+empty+`"}
  - {username: "*@corp.example", provider: gmail, flow: service_account, service_account_file: "`+badJSON+`"}
  - {username: "*@corp2.example", provider: gmail, flow: service_account, service_account_file: "`+noEmail+`"}
`)
	_, err := Load(cfgFile)
	if err == nil {
		t.Fatal("Load accepted broken files")
	}
	want := []string{
		cfgFile + `:3: listeners[0].key_file: ` + otherKey + ` does not go with ` + cert + `: tls: private key does not match public key`,
		cfgFile + `:5: providers.gmail.ca_file: read ` + dir + `: is a directory`,
		cfgFile + `:6: providers.outlook.ca_file: ` + notPEM + `: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file`,
		cfgFile + `:8: accounts[0].client_secret_file: open ` + missing + `: no such file or directory`,
		cfgFile + `:9: accounts[1].client_secret_file: ` + empty + ` is empty: put the OAuth client secret in it`,
		cfgFile + `:10: accounts[2].service_account_file: ` + badJSON + `: not valid JSON (at byte 38): want the service account key file downloaded from Google Cloud`,
		cfgFile + `:11: accounts[3].service_account_file: ` + noEmail + `: no client_email: want the service account key file downloaded from Google Cloud`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "SECRETKEY") {
		t.Error("error echoes the key file's content")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is(err, fs.ErrNotExist) is false for a missing secret file")
	}
}

// TestCheckFilesUnreadable: a file the daemon may not read is reported
// (skipped as root, who reads everything).
func TestCheckFilesUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: file permissions do not stop reads (the directory case in TestLoadFileErrors covers unreadable files)")
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	writeFile(t, ca, "x")
	if err := os.Chmod(ca, 0); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte("providers: {gmail: {ca_file: \""+ca+"\"}}\nstate_dir: /x\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckFiles()
	if err == nil || !errors.Is(err, fs.ErrPermission) || !strings.HasPrefix(err.Error(), "c.yaml:1: providers.gmail.ca_file: open ") {
		t.Errorf("got %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: open ") {
		t.Errorf("got %v", err)
	}
}

func TestRootCAs(t *testing.T) {
	dir := t.TempDir()
	cert, _, _ := testPKI(t, dir)
	certPEM, _ := os.ReadFile(cert)
	for _, tt := range []struct {
		name    string
		p       Provider
		wantErr string
	}{
		{"none", Provider{Name: "x"}, ""},
		{"file", Provider{Name: "x", CAFile: cert}, ""},
		{"pem", Provider{Name: "x", CAPEM: certPEM}, ""},
		{"missing", Provider{Name: "x", CAFile: filepath.Join(dir, "nope")}, "config: provider x: ca_file: open "},
		{"no cert", Provider{Name: "x", CAFile: filepath.Join(dir, "key.pem")}, "config: provider x: ca_file " + filepath.Join(dir, "key.pem") + ": no PEM certificate"},
		{"bad pem", Provider{Name: "x", CAPEM: []byte("junk")}, "config: provider x: CAPEM holds no certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := tt.p.RootCAs()
			if tt.wantErr == "" {
				if err != nil || pool == nil {
					t.Errorf("RootCAs = %v, %v", pool, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want prefix %q", err, tt.wantErr)
			}
		})
	}
}
