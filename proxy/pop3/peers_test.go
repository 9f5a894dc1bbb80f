package pop3_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// Real clients against the bridge (plaintext on loopback, as legacy
// clients are configured), the bridge against the fake Gmail. Each skips
// when its program is missing, and fails instead under
// OAUTHBRIDGE_REQUIRE_PEERS=1.

const poplibScript = `
import base64, json, poplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
p = poplib.POP3(host, port, timeout=30)
caps = p.capa()
p.user(user)
p.pass_(pw)
count, size = p.stat()
msgs = []
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    msgs.append(base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode())
uidl = [l.decode() for l in p.uidl()[1]]
p.dele(1)
p.quit()
print(json.dumps({"caps": sorted(caps), "stat": [count, size], "msgs": msgs, "uidl": uidl}))
`

func TestPeerPythonPoplib(t *testing.T) {
	testpeers.Require(t, "python3")
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	msgs := e.appendN(t, 3)
	msgs = append(msgs, message("large", 2<<20))
	e.appendMessages(t, msgs[3])
	host, port, _ := net.SplitHostPort(e.addr)
	out, _, err := testpeers.RunClient(t, context.Background(), "python3", "-c", poplibScript, host, port, user, appPassword)
	if err != nil {
		t.Fatalf("poplib: %v", err)
	}
	var res struct {
		Caps []string
		Stat []int
		Msgs []string
		UIDL []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("poplib output %q: %v", out, err)
	}
	if len(res.Msgs) != len(msgs) || res.Stat[0] != len(msgs) || len(res.UIDL) != len(msgs) {
		t.Fatalf("poplib saw %v messages, %d UIDLs", res.Stat, len(res.UIDL))
	}
	for i, m := range res.Msgs {
		got, _ := base64.StdEncoding.DecodeString(m)
		if !bytes.Equal(got, msgs[i]) {
			t.Errorf("message %d differs (%d bytes, want %d)", i+1, len(got), len(msgs[i]))
		}
	}
	if strings.Join(res.Caps, " ") == "" {
		t.Error("no capabilities")
	}
	e.assertStored(t, msgs, 1, 2, 3)
}

func TestPeerCurl(t *testing.T) {
	testpeers.Require(t, "curl")
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	msgs := e.appendN(t, 2)
	ctx := context.Background()
	// curl authenticates with AUTH PLAIN and a continuation (the bridge
	// advertises SASL PLAIN LOGIN), then RETR 2.
	out, _, err := testpeers.RunClient(t, ctx, "curl", "-sS", "--max-time", "30",
		"-u", user+":"+appPassword, "pop3://"+e.addr+"/2")
	if err != nil {
		t.Fatalf("curl RETR: %v", err)
	}
	if !bytes.Equal([]byte(out), msgs[1]) {
		t.Errorf("curl RETR 2: got %d bytes %q, want %d", len(out), out[:min(len(out), 80)], len(msgs[1]))
	}
	// Without a message number curl runs LIST.
	out, _, err = testpeers.RunClient(t, ctx, "curl", "-sS", "--max-time", "30",
		"-u", user+":"+appPassword, "pop3://"+e.addr+"/")
	if err != nil {
		t.Fatalf("curl LIST: %v", err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "1 ") {
		t.Errorf("curl LIST: %q", out)
	}
	e.assertStored(t, msgs, 0, 1)
}

func TestPeerFetchmail(t *testing.T) {
	testpeers.Require(t, "fetchmail")
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	msgs := e.appendN(t, 3)
	msgs = append(msgs, message("large", 1<<20))
	e.appendMessages(t, msgs[3])
	dir := t.TempDir()
	mbox := filepath.Join(dir, "mbox")
	host, port, _ := net.SplitHostPort(e.addr)
	rc := filepath.Join(dir, "fetchmailrc")
	conf := "set no bouncemail\n" +
		"poll " + host + " service " + port + " protocol POP3 auth password timeout 30\n" +
		"  user \"" + user + "\" there with password \"" + appPassword + "\" is \"local\" here\n" +
		// sslproto '': fetchmail 6.4 insists on STLS otherwise.
		"  fetchall nokeep sslproto '' mda \"cat >> " + mbox + "\"\n"
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := testpeers.Cmd{
		Name: "fetchmail",
		Args: []string{"-f", rc, "--pidfile", filepath.Join(dir, "pid"), "--nodetach", "-v"},
		Env:  []string{"HOME=" + dir, "FETCHMAILHOME=" + dir},
	}.Run(t, context.Background())
	if err != nil {
		t.Fatalf("fetchmail: %v", err)
	}
	got, err := os.ReadFile(mbox)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		_, body, _ := bytes.Cut(m, []byte("\r\n\r\n"))
		// fetchmail hands the MDA LF line ends.
		if !bytes.Contains(got, bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))) {
			t.Errorf("message %d (%s) not delivered", i+1, subject(m))
		}
	}
	e.assertStored(t, msgs)
}
