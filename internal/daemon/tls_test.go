package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/oauthbridge/oauthbridge/config"
)

// An implicit-TLS listener serves the self-signed certificate kept in
// state_dir; a reload raising min_tls_version applies to the next
// handshake on the same listener, and a TLS session opened before goes on.
func TestTLSListenerAndMinVersionReload(t *testing.T) {
	e := newEnv(t)
	l := config.Listener{Protocol: "imap", Listen: freeAddr(t), TLS: "implicit"}
	cfg := e.config(t, []config.Listener{l}, "alice-pw", "bob-pw")
	e.authorize(t, cfg, alice)
	d := e.start(t, cfg)

	certs, _ := filepath.Glob(filepath.Join(e.dir, "tls", "*.crt"))
	if len(certs) != 1 {
		t.Fatalf("self-signed certificates in state_dir/tls: %v", certs)
	}
	pem, err := os.ReadFile(certs[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in", certs[0])
	}
	tls12 := &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}

	live, err := imapclient.DialTLS(l.Listen, &imapclient.Options{TLSConfig: tls12})
	if err != nil {
		t.Fatalf("TLS 1.2 client before the reload: %v", err)
	}
	defer live.Close()
	if err := live.Login(alice, "alice-pw").Wait(); err != nil {
		t.Fatal(err)
	}

	l.MinTLSVersion = "1.3"
	if err := d.Reload(e.config(t, []config.Listener{l}, "alice-pw", "bob-pw")); err != nil {
		t.Fatal(err)
	}
	if lines := e.logs.Lines("configuration reloaded", "listeners_kept=1"); len(lines) != 1 {
		t.Errorf("the listener was not kept across the reload:\n%s", e.logs.String())
	}
	c, err := tls.Dial("tcp", l.Listen, tls12)
	if err == nil {
		c.Close()
		t.Fatal("a TLS 1.2 client connected after min_tls_version 1.3")
	}
	c13, err := imapclient.DialTLS(l.Listen, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatalf("TLS 1.3 client after the reload: %v", err)
	}
	defer c13.Close()
	if err := c13.Login(alice, "alice-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := live.Noop().Wait(); err != nil {
		t.Errorf("NOOP on the TLS 1.2 session opened before the reload: %v", err)
	}
}
