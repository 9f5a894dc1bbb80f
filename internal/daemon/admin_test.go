package daemon

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/admin"
)

// The admin endpoint reads this Daemon: /healthz is 200 while it serves,
// /status.json counts the open session of the account.
func TestAdminEndpoint(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	cfg.HTTP.Listen = "127.0.0.1:0"
	e.authorize(t, cfg, alice)
	d := e.start(t, cfg)
	base := "http://" + d.AdminAddr()

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d", resp.StatusCode)
	}

	imapLogin(t, addr(t, d, "imap"), alice, "alice-pw")
	resp, err = http.Get(base + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if !st.Healthy || st.Sessions["imap"] != 1 || len(st.Accounts) != 2 {
		t.Fatalf("status = %+v", st)
	}
	a := st.Accounts[0]
	if a.Account != alice || a.State != "authorized" || a.Sessions["imap"] != 1 {
		t.Errorf("account = %+v", a)
	}
	if b := st.Accounts[1]; b.Account != bob || b.State != "not_authorized" {
		t.Errorf("account = %+v", b)
	}
}

// A reload moving http.listen serves the admin endpoint at the new address
// and stops the old one.
func TestReloadMovesAdminEndpoint(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	cfg.HTTP.Listen = freeAddr(t)
	d := e.start(t, cfg)
	old := d.AdminAddr()

	cfg2 := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	cfg2.HTTP.Listen = freeAddr(t)
	if err := d.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if d.AdminAddr() != cfg2.HTTP.Listen {
		t.Fatalf("AdminAddr = %s, want %s", d.AdminAddr(), cfg2.HTTP.Listen)
	}
	resp, err := http.Get("http://" + cfg2.HTTP.Listen + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("new /healthz = %d", resp.StatusCode)
	}
	// The old server shuts down in the background; its socket closes first.
	if err := waitFor(5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", old, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}); err != nil {
		t.Errorf("the old admin address %s still accepts", old)
	}
}

// waitFor polls cond until it holds or d passes: for a close that happens
// on a goroutine the test cannot wait on.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// http.hosts lets the admin endpoint answer to extra Host names (a
// Prometheus scraping it by name); others stay refused.
func TestAdminHosts(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.Hosts = []string{"metrics.internal"}
	d := e.start(t, cfg)
	get := func(host string) int {
		req, _ := http.NewRequest("GET", "http://"+d.AdminAddr()+"/healthz", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("metrics.internal:8025"); code != http.StatusOK {
		t.Errorf("configured host: %d", code)
	}
	if code := get("attacker.example:8025"); code != http.StatusForbidden {
		t.Errorf("other host: %d, want 403", code)
	}
}
