package smtp

import (
	"bytes"
	"context"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// Real clients against the bridge (in front of the fake Gmail). Each skips
// naming the missing program, and fails under OAUTHBRIDGE_REQUIRE_PEERS=1.

func peerCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func hostPort(t *testing.T, addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// checkDelivered waits for one message from alice to rcpt whose data
// contains marker.
func (b *bridge) checkDelivered(t *testing.T, rcpt, marker string) {
	t.Helper()
	got := b.waitSent(1)[0]
	if got.From != alice || strings.Join(got.To, ",") != rcpt || !bytes.Contains(got.Data, []byte(marker)) {
		t.Fatalf("delivered from %q to %q: %q", got.From, got.To, got.Data)
	}
	b.logs.AssertNoSecrets(t, b.secrets()...)
}

func TestPeerPythonSmtplib(t *testing.T) {
	testpeers.Require(t, "python3")
	b := startBridge(t, bridgeOpts{})
	host, port := hostPort(t, b.addr)
	script := `
import smtplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = smtplib.SMTP(host, port, timeout=30)
s.ehlo("python.test")
s.login(user, pw)
refused = s.sendmail(user, ["py@example.com"], "Subject: from python\r\n\r\nmarker-python\r\n")
print("refused", refused)
s.quit()
`
	out, _, err := testpeers.RunClient(t, peerCtx(t), "python3", "-c", script, host, port, alice, alicePW)
	if err != nil || !strings.Contains(out, "refused {}") {
		t.Fatalf("python: %v %q", err, out)
	}
	b.checkDelivered(t, "py@example.com", "marker-python")
}

func TestPeerCurl(t *testing.T) {
	testpeers.Require(t, "curl")
	b := startBridge(t, bridgeOpts{})
	file := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(file, []byte("Subject: from curl\r\n\r\nmarker-curl\r\n"), 0o600)
	_, _, err := testpeers.RunClient(t, peerCtx(t), "curl", "-sS", "smtp://"+b.addr,
		"--mail-from", alice, "--mail-rcpt", "curl@example.com",
		"--upload-file", file, "--user", alice+":"+alicePW)
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	b.checkDelivered(t, "curl@example.com", "marker-curl")
}

func TestPeerSwaksAuthLogin(t *testing.T) {
	testpeers.Require(t, "swaks")
	b := startBridge(t, bridgeOpts{})
	host, port := hostPort(t, b.addr)
	out, _, err := testpeers.RunClient(t, peerCtx(t), "swaks", "--server", host, "--port", port,
		"--auth", "LOGIN", "--auth-user", alice, "--auth-password", alicePW,
		"--from", alice, "--to", "swaks@example.com", "--body", "marker-swaks", "--hide-all")
	if err != nil {
		t.Fatalf("swaks: %v %q", err, out)
	}
	b.checkDelivered(t, "swaks@example.com", "marker-swaks")
}

func TestPeerMsmtpSTARTTLS(t *testing.T) {
	testpeers.Require(t, "msmtp")
	b := startBridge(t, bridgeOpts{localTLS: proxy.TLSStartTLS})
	host, port := hostPort(t, b.addr)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, b.ca.PEM(), 0o600)
	_, _, err := testpeers.Cmd{
		Name: "msmtp",
		Args: []string{"--host=" + host, "--port=" + port, "--auth=on", "--user=" + alice,
			"--passwordeval=echo " + alicePW, "--tls=on", "--tls-starttls=on", "--tls-trust-file=" + ca,
			"--from=" + alice, "msmtp@example.com"},
		Stdin: []byte("Subject: from msmtp\r\n\r\nmarker-msmtp\r\n"),
		Env:   []string{"HOME=" + dir},
	}.Run(t, peerCtx(t))
	if err != nil {
		t.Fatalf("msmtp: %v", err)
	}
	b.checkDelivered(t, "msmtp@example.com", "marker-msmtp")
}

// TestPeerPrinterTLS10: a scan-to-email device that only speaks TLS 1.0
// (openssl s_client forced to TLS 1.0 with legacy ciphers) completes
// STARTTLS and AUTH LOGIN against a listener with min_tls_version "1.0"
// (the daemon's own server TLS config), and is refused by a default
// (TLS 1.2) listener.
func TestPeerPrinterTLS10(t *testing.T) {
	testpeers.Require(t, "openssl")
	script := "EHLO printer.lan\nAUTH LOGIN\n" + b64(alice) + "\n" + b64(alicePW) + "\nQUIT\n"
	run := func(minVersion string) string {
		cfg, _ := proxytest.ServerTLS(t, minVersion)
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Certificates[0].Leaf.Raw}), 0o600)
		b := startBridge(t, bridgeOpts{localTLS: proxy.TLSStartTLS, listener: proxy.ListenerInfo{TLSConfig: cfg}})
		out, errOut, _ := testpeers.Cmd{
			Name: "openssl",
			Args: []string{"s_client", "-connect", b.addr, "-starttls", "smtp", "-tls1",
				"-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", caFile, "-crlf", "-quiet"},
			Stdin:   []byte(script),
			Timeout: 30 * time.Second,
		}.Run(t, peerCtx(t))
		return out + errOut
	}
	if out := run("1.0"); !strings.Contains(out, "235 2.0.0 Authentication succeeded") || !strings.Contains(out, "221 2.0.0 Bye") {
		t.Fatalf("TLS 1.0 listener: %q", out)
	}
	if out := run(""); strings.Contains(out, "235 ") || strings.Contains(out, "250-") {
		t.Fatalf("TLS 1.2 listener served a TLS 1.0 client: %q", out)
	}
}
