package proxytest

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// ServerTLS returns a server TLS config as the daemon builds it
// (proxy.ServerTLSConfig: a self-signed RSA certificate for 127.0.0.1 and
// localhost, kept in a temporary state_dir) for minVersion ("" is "1.2"),
// and a pool that trusts it, for clients' RootCAs.
func ServerTLS(t testing.TB, minVersion string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	cfg, err := proxy.ServerTLSConfig(proxy.ServerTLSOptions{StateDir: t.TempDir(), ListenAddr: "127.0.0.1:0", MinVersion: minVersion})
	if err != nil {
		t.Fatalf("proxytest: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cfg.Certificates[0].Leaf)
	return cfg, pool
}
