package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// tlsListener runs an implicit-TLS listener with a self-signed
// certificate built by ServerTLSConfig for minVersion, and returns its
// address and a pool trusting the certificate.
func tlsListener(t *testing.T, minVersion string, h proxy.Handler, hsTimeout time.Duration) (string, *x509.CertPool) {
	t.Helper()
	cfg, err := proxy.ServerTLSConfig(proxy.ServerTLSOptions{StateDir: t.TempDir(), ListenAddr: "127.0.0.1:0", MinVersion: minVersion})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cfg.Certificates[0].Leaf)
	l := proxytest.Start(t, proxy.ListenerConfig{
		Info:             proxy.ListenerInfo{Protocol: "smtp", TLS: proxy.TLSImplicit, TLSConfig: cfg},
		HandshakeTimeout: hsTimeout,
	}, h)
	return l.Addr().String(), pool
}

func TestListenerTLSVersions(t *testing.T) {
	versions := map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}
	tests := []struct {
		server  string // min_tls_version
		client  string // the only version the client speaks
		suites  []uint16
		success bool
	}{
		{"1.0", "1.0", nil, true},
		{"1.0", "1.0", []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, true}, // RSA key exchange
		{"1.0", "1.0", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, true},
		{"1.0", "1.0", []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, true},
		{"1.0", "1.1", nil, true},
		{"1.0", "1.2", nil, true},
		{"1.0", "1.3", nil, true},
		{"1.1", "1.0", nil, false},
		{"1.1", "1.1", []uint16{tls.TLS_RSA_WITH_AES_256_CBC_SHA}, true},
		{"", "1.0", nil, false},
		{"", "1.1", nil, false},
		{"", "1.2", nil, true},
		{"", "1.2", []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, false}, // no RSA key exchange by default
		{"", "1.3", nil, true},
		{"1.3", "1.2", nil, false},
		{"1.3", "1.3", nil, true},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("server %s client %s suites %x", tt.server, tt.client, tt.suites)
		t.Run(name, func(t *testing.T) {
			proxytest.VerifyNoLeaks(t)
			h := &lineHandler{name: "tls"}
			addr, pool := tlsListener(t, tt.server, h, 0)
			v := versions[tt.client]
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
				RootCAs: pool, MinVersion: v, MaxVersion: v, CipherSuites: tt.suites,
			})
			if !tt.success {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			st := c.ConnectionState()
			if st.Version != v || (tt.suites != nil && st.CipherSuite != tt.suites[0]) {
				t.Fatalf("negotiated version %x suite %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "hello tls ") {
				t.Fatalf("greeting %q, %v", line, err)
			}
		})
	}
}

func TestListenerTLSHandshakeBounded(t *testing.T) {
	tests := []struct {
		name string
		send string // what the client sends instead of a ClientHello
	}{
		{"silent client", ""},
		{"plaintext on a TLS port", "A1 LOGIN alice secret\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxytest.VerifyNoLeaks(t)
			h := &lineHandler{name: "tls"}
			addr, _ := tlsListener(t, "", h, 100*time.Millisecond)
			c := dialFrom(t, addr, "")
			if tt.send != "" {
				fmt.Fprint(c, tt.send)
			}
			// Whatever the server sent (an alert for garbage), it closes
			// without the handler ever running.
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			if h.served.Load() != 0 {
				t.Fatal("handler ran without a TLS handshake")
			}
		})
	}
}

// TestListenerTLS10OpenSSL checks a "1.0" listener against OpenSSL, the
// TLS stack most old devices' firmware is built on.
func TestListenerTLS10OpenSSL(t *testing.T) {
	testpeers.Require(t, "openssl")
	proxytest.VerifyNoLeaks(t)
	tests := []struct{ flag, cipher string }{
		{"-tls1", "ECDHE-RSA-AES128-SHA:@SECLEVEL=0"},
		{"-tls1", "AES128-SHA:@SECLEVEL=0"},
		{"-tls1", "DEFAULT:@SECLEVEL=0"},
		{"-tls1_1", "AES256-SHA:@SECLEVEL=0"},
	}
	h := &lineHandler{name: "openssl"}
	addr, _ := tlsListener(t, "1.0", h, 0)
	for _, tt := range tests {
		t.Run(tt.flag+" "+tt.cipher, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, tt.flag, "-cipher", tt.cipher, "-brief", "-ign_eof")
			cmd.Stdin = strings.NewReader("ping\r\n")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The handler greets and echoes "ping"; -ign_eof keeps the
			// client connected afterwards, so end it once the echo came.
			var got []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				got = append(got, sc.Text())
				if strings.Contains(sc.Text(), "echo ping") {
					break
				}
			}
			cancel()
			cmd.Wait()
			want := map[string]string{"-tls1": "TLSv1\n", "-tls1_1": "TLSv1.1\n"}[tt.flag]
			if !strings.Contains(strings.Join(got, "\n"), "echo ping") || !strings.Contains(stderr.String(), "Protocol version: "+want) {
				t.Fatalf("openssl s_client %s -cipher %s:\nstdout: %q\nstderr: %s", tt.flag, tt.cipher, got, stderr.String())
			}
		})
	}
}
