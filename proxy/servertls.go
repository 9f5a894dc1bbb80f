package proxy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ServerTLSOptions says how to build a listener's server TLS config (config
// listeners[].cert_file, key_file, min_tls_version).
type ServerTLSOptions struct {
	// CertFile and KeyFile are PEM files. When both are empty a
	// self-signed certificate is used (see ServerTLSConfig).
	CertFile, KeyFile string
	// MinVersion is "1.0", "1.1", "1.2" or "1.3"; "" means "1.2".
	MinVersion string
	// StateDir holds generated certificates under StateDir/tls.
	StateDir string
	// ListenAddr is the listener's configured address (host:port). It
	// names the self-signed certificate's files and gives its SANs.
	ListenAddr string
	// Logger gets the legacy-TLS warning and certificate generation
	// lines; nil discards.
	Logger *slog.Logger
}

// Self-signed certificate lifetime and renewal. 825 days is the longest
// validity Apple's TLS stack accepts for a server certificate; a
// certificate is replaced when it has less than selfSignedRenew left, and
// only then, so clients that pinned it keep working for two years.
const (
	selfSignedValidity = 825 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour
)

// legacyCipherSuites are added for min_tls_version 1.0 and 1.1, after
// Go's defaults (which Go still prefers): the CBC-SHA1 suites TLS 1.0
// devices speak, RSA key exchange (disabled by default since Go 1.22,
// "tlsrsakex") for devices without ECDHE, and 3DES (disabled by default
// since Go 1.23, "tls3des") for Windows XP-era stacks without AES. Listing
// them in Config.CipherSuites enables them without any GODEBUG setting.
var legacyCipherSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
	tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

// ParseTLSVersion maps a min_tls_version value to a tls.Version* constant
// ("" is "1.2").
func ParseTLSVersion(s string) (uint16, error) {
	switch s {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("proxy: TLS version %q: want 1.0, 1.1, 1.2 or 1.3", s)
}

// ServerTLSConfig builds the server TLS config of a listener.
//
// Certificate: CertFile/KeyFile when given; when both are empty, a
// self-signed certificate kept in <StateDir>/tls/<listen addr>.crt and
// .key (key 0600, directory 0700), generated on first use and reused on
// later starts until it is within 30 days of expiry or no longer names the
// listen address. Its SANs: the listen IP (for 0.0.0.0, :: or an empty
// host, every address of the host's interfaces at generation time),
// or the listen host name, plus os.Hostname(), "localhost", 127.0.0.1 and
// ::1. The key is RSA 2048 whatever the minimum version: every TLS client
// ever made speaks RSA, the devices that need TLS 1.0 often speak nothing
// else, and a later change of min_tls_version to "1.0" must not need a new
// certificate that clients would have to accept again. One RSA signature
// per handshake costs about a millisecond, irrelevant at login rates.
//
// Versions: MinVersion as given. For "1.0" and "1.1", a warning is logged
// and legacyCipherSuites are enabled; no GODEBUG setting is needed for
// TLS 1.0/1.1 clients (crypto/tls honours an explicit MinVersion, and
// their handshake signatures are MD5+SHA1, not subject to "tlssha1").
func ServerTLSConfig(o ServerTLSOptions) (*tls.Config, error) {
	minVer, err := ParseTLSVersion(o.MinVersion)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var cert tls.Certificate
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err = tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("proxy: listener %s: load cert_file %s / key_file %s: %w", o.ListenAddr, o.CertFile, o.KeyFile, err)
		}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, fmt.Errorf("proxy: listener %s: cert_file and key_file go together", o.ListenAddr)
	default:
		if o.StateDir == "" {
			return nil, fmt.Errorf("proxy: listener %s: no certificate and no state_dir to keep a self-signed one", o.ListenAddr)
		}
		cert, err = selfSignedCert(filepath.Join(o.StateDir, "tls"), o.ListenAddr, time.Now(), log)
		if err != nil {
			return nil, err
		}
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   minVer,
	}
	if minVer < tls.VersionTLS12 {
		cfg.CipherSuites = legacySuiteList()
		log.Warn("listener accepts legacy TLS: TLS 1.0/1.1 and CBC-SHA1, RSA key exchange and 3DES cipher suites are enabled for old devices",
			"listen", o.ListenAddr, "min_tls_version", o.MinVersion)
	}
	return cfg, nil
}

// legacySuiteList is Go's default TLS 1.0-1.2 suites followed by
// legacyCipherSuites.
func legacySuiteList() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		if !slices.Contains(s.SupportedVersions, tls.VersionTLS13) || len(s.SupportedVersions) > 1 {
			ids = append(ids, s.ID)
		}
	}
	for _, id := range legacyCipherSuites {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// certFileBase turns a listen address into a file name: "127.0.0.1:1143"
// becomes "127.0.0.1_1143", "[::1]:993" becomes "__1__993".
func certFileBase(addr string) string {
	if addr == "" {
		addr = "default"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, addr)
}

// certNames is what a self-signed certificate for addr must name.
func certNames(addr string) (dns []string, ips []net.IP, wildcard bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	dns = []string{"localhost"}
	ips = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	if hn, err := os.Hostname(); err == nil && hn != "" && hn != "localhost" {
		dns = append(dns, hn)
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || ip != nil && ip.IsUnspecified():
		wildcard = true
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					ips = append(ips, n.IP)
				}
			}
		}
	case ip != nil:
		ips = append(ips, ip)
	default:
		dns = append(dns, host)
	}
	return dedupNames(dns), dedupIPs(ips), wildcard
}

func dedupNames(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, n) }) {
			out = append(out, n)
		}
	}
	return out
}

func dedupIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		if !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}

// selfSignedCert loads the certificate for addr from dir, or generates
// and stores one when there is none, it expires within selfSignedRenew
// of now, or it does not name the listen address.
func selfSignedCert(dir, addr string, now time.Time, log *slog.Logger) (tls.Certificate, error) {
	base := filepath.Join(dir, certFileBase(addr))
	certPath, keyPath := base+".crt", base+".key"
	dns, ips, wildcard := certNames(addr)

	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case err == nil:
		reason := reuseProblem(cert.Leaf, now, dns, ips, wildcard)
		if reason == "" {
			return cert, nil
		}
		log.Info("replacing self-signed certificate", "listen", addr, "file", certPath, "reason", reason)
	case errors.Is(err, os.ErrNotExist):
	default:
		log.Warn("replacing unreadable self-signed certificate", "listen", addr, "file", certPath, "err", err)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("proxy: create %s: %w", dir, err)
	}
	certPEM, keyPEM, err := generateSelfSigned(dns, ips, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	// Key first: a crash between the two writes leaves a new key with an
	// old certificate, which fails to load and is regenerated.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("proxy: generated certificate: %w", err)
	}
	log.Info("generated self-signed certificate", "listen", addr, "file", certPath,
		"dns", strings.Join(dns, ","), "ips", len(ips), "expires", cert.Leaf.NotAfter.Format(time.DateOnly))
	return cert, nil
}

// reuseProblem says why a stored certificate cannot be reused, or "".
// For a wildcard listen address the interface addresses are not compared:
// chasing DHCP changes would replace certificates clients have accepted.
func reuseProblem(leaf *x509.Certificate, now time.Time, dns []string, ips []net.IP, wildcard bool) string {
	if leaf == nil {
		return "no leaf"
	}
	if now.Add(selfSignedRenew).After(leaf.NotAfter) {
		return "expires " + leaf.NotAfter.Format(time.DateOnly)
	}
	if now.Before(leaf.NotBefore) {
		return "not valid yet"
	}
	if wildcard {
		return ""
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return "does not name " + ip.String()
		}
	}
	for _, n := range dns {
		if !slices.ContainsFunc(leaf.DNSNames, func(d string) bool { return strings.EqualFold(d, n) }) {
			return "does not name " + n
		}
	}
	return ""
}

func generateSelfSigned(dns []string, ips []net.IP, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: generate RSA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	cn := "oauthbridge"
	if len(dns) > 1 {
		cn = "oauthbridge " + dns[1]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"oauthbridge self-signed"}},
		NotBefore:    now.Add(-time.Hour), // tolerate clients with a slow clock
		NotAfter:     now.Add(selfSignedValidity),
		// KeyEncipherment: TLS_RSA_* key exchange encrypts to this key.
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeFileAtomic writes data to a temporary file in path's directory with
// mode perm, syncs it and renames it over path, so readers never see a
// partial file and the key is never briefly world-readable.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("proxy: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("proxy: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("proxy: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("proxy: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("proxy: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("proxy: write %s: %w", path, err)
	}
	return nil
}
