package proxy

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSelfSignedCertCreatedAndReused(t *testing.T) {
	state := t.TempDir()
	opts := ServerTLSOptions{StateDir: state, ListenAddr: "127.0.0.1:1143"}
	cfg1, err := ServerTLSConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(state, "tls")
	for path, want := range map[string]os.FileMode{
		dir:                                      0o700 | os.ModeDir,
		filepath.Join(dir, "127.0.0.1_1143.key"): 0o600,
		filepath.Join(dir, "127.0.0.1_1143.crt"): 0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	leaf := cfg1.Certificates[0].Leaf
	hostname, _ := os.Hostname()
	for _, n := range []string{"localhost", hostname} {
		if !slices.Contains(leaf.DNSNames, n) {
			t.Errorf("SANs %v lack %q", leaf.DNSNames, n)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if !slices.ContainsFunc(leaf.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("SANs %v lack %s", leaf.IPAddresses, ip)
		}
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if k, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Errorf("key %T, want RSA 2048", leaf.PublicKey)
	}
	if time.Until(leaf.NotAfter) < 800*24*time.Hour {
		t.Errorf("expires %v", leaf.NotAfter)
	}

	// A restart reuses the stored certificate.
	cfg2, err := ServerTLSConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg2.Certificates[0].Certificate[0], cfg1.Certificates[0].Certificate[0]) {
		t.Fatal("certificate regenerated on restart")
	}
	// Another listen address gets its own.
	cfg3, err := ServerTLSConfig(ServerTLSOptions{StateDir: state, ListenAddr: "127.0.0.2:1143"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(cfg3.Certificates[0].Certificate[0], cfg1.Certificates[0].Certificate[0]) {
		t.Fatal("two listen addresses share a certificate")
	}
	if err := cfg3.Certificates[0].Leaf.VerifyHostname("127.0.0.2"); err != nil {
		t.Error(err)
	}
}

func TestSelfSignedCertRenewal(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	now := time.Now()
	c1, err := selfSignedCert(dir, "127.0.0.1:993", now, log)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		now   time.Time
		addr  string
		renew bool
	}{
		{"next day", now.Add(24 * time.Hour), "127.0.0.1:993", false},
		{"within 30 days of expiry", c1.Leaf.NotAfter.Add(-29 * 24 * time.Hour), "127.0.0.1:993", true},
	}
	for _, tt := range tests {
		c, err := selfSignedCert(dir, tt.addr, tt.now, log)
		if err != nil {
			t.Fatal(err)
		}
		if renewed := !bytes.Equal(c.Certificate[0], c1.Certificate[0]); renewed != tt.renew {
			t.Errorf("%s: renewed = %v", tt.name, renewed)
		}
	}
	// A certificate that does not name the address (an edited file) is
	// replaced.
	other, _ := selfSignedCert(t.TempDir(), "127.0.0.9:1", now, log)
	if p := reuseProblem(other.Leaf, now, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, false); p != "" {
		t.Errorf("loopback always named, got %q", p)
	}
	if p := reuseProblem(other.Leaf, now, nil, []net.IP{net.ParseIP("192.0.2.1")}, false); !strings.Contains(p, "192.0.2.1") {
		t.Errorf("missing IP not detected: %q", p)
	}
	if p := reuseProblem(other.Leaf, now, nil, []net.IP{net.ParseIP("192.0.2.1")}, true); p != "" {
		t.Errorf("wildcard listener compared interface IPs: %q", p)
	}
}

func TestSelfSignedCertUnreadableReplaced(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "127.0.0.1_25.crt"), []byte("garbage"), 0o644)
	os.WriteFile(filepath.Join(dir, "127.0.0.1_25.key"), []byte("garbage"), 0o600)
	c, err := selfSignedCert(dir, "127.0.0.1:25", time.Now(), slog.New(slog.DiscardHandler))
	if err != nil || c.Leaf == nil {
		t.Fatalf("got %v", err)
	}
}

func TestCertNames(t *testing.T) {
	hostname, _ := os.Hostname()
	tests := []struct {
		addr     string
		wantDNS  string
		wantIP   string
		wildcard bool
	}{
		{"127.0.0.1:1143", "localhost", "127.0.0.1", false},
		{"192.0.2.10:465", hostname, "192.0.2.10", false},
		{"[2001:db8::1]:993", "localhost", "2001:db8::1", false},
		{"mail.example.test:993", "mail.example.test", "::1", false},
		{"0.0.0.0:1587", "localhost", "127.0.0.1", true},
		{":1587", "localhost", "127.0.0.1", true},
	}
	for _, tt := range tests {
		dns, ips, wc := certNames(tt.addr)
		if wc != tt.wildcard || !slices.Contains(dns, tt.wantDNS) || !slices.ContainsFunc(ips, net.ParseIP(tt.wantIP).Equal) {
			t.Errorf("certNames(%q) = %v %v %v", tt.addr, dns, ips, wc)
		}
	}
	if got := certFileBase("[::1]:993"); got != "___1__993" {
		t.Errorf("certFileBase = %q", got)
	}
}

func TestServerTLSConfigOptions(t *testing.T) {
	state := t.TempDir()
	// A cert/key pair on disk, as an admin would configure.
	gen, err := ServerTLSConfig(ServerTLSOptions{StateDir: state, ListenAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(state, "tls", "127.0.0.1_1.crt")
	key := filepath.Join(state, "tls", "127.0.0.1_1.key")
	tests := []struct {
		name    string
		opts    ServerTLSOptions
		ok      bool
		min     uint16
		legacy  bool
		sameAsG bool
	}{
		{"files", ServerTLSOptions{CertFile: crt, KeyFile: key, ListenAddr: "x"}, true, tls.VersionTLS12, false, true},
		{"default version", ServerTLSOptions{StateDir: state, ListenAddr: "127.0.0.1:2"}, true, tls.VersionTLS12, false, false},
		{"1.0", ServerTLSOptions{StateDir: state, ListenAddr: "127.0.0.1:2", MinVersion: "1.0"}, true, tls.VersionTLS10, true, false},
		{"1.1", ServerTLSOptions{StateDir: state, ListenAddr: "127.0.0.1:2", MinVersion: "1.1"}, true, tls.VersionTLS11, true, false},
		{"1.3", ServerTLSOptions{StateDir: state, ListenAddr: "127.0.0.1:2", MinVersion: "1.3"}, true, tls.VersionTLS13, false, false},
		{"bad version", ServerTLSOptions{StateDir: state, ListenAddr: "127.0.0.1:2", MinVersion: "1.4"}, false, 0, false, false},
		{"cert without key", ServerTLSOptions{CertFile: crt, ListenAddr: "x"}, false, 0, false, false},
		{"missing files", ServerTLSOptions{CertFile: crt + ".no", KeyFile: key, ListenAddr: "x"}, false, 0, false, false},
		{"no state dir", ServerTLSOptions{ListenAddr: "x"}, false, 0, false, false},
	}
	for _, tt := range tests {
		cfg, err := ServerTLSConfig(tt.opts)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v", tt.name, err)
			continue
		}
		if err != nil {
			continue
		}
		if cfg.MinVersion != tt.min {
			t.Errorf("%s: MinVersion %x", tt.name, cfg.MinVersion)
		}
		if got := slices.Contains(cfg.CipherSuites, tls.TLS_RSA_WITH_AES_128_CBC_SHA); got != tt.legacy {
			t.Errorf("%s: legacy suites %v", tt.name, got)
		}
		if same := bytes.Equal(cfg.Certificates[0].Certificate[0], gen.Certificates[0].Certificate[0]); same != tt.sameAsG {
			t.Errorf("%s: same certificate as the files: %v", tt.name, same)
		}
	}
}
