package daemon

import (
	"encoding/json"
	"net/http"
	"testing"

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
