package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: Parse must never panic or hang, and its two outcomes keep
// their contracts: an error comes alone with every line located in the
// source, and a config it accepts is complete (Complete again succeeds,
// Warnings and Provider work).
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"listeners:\n  - {protocol: imap, listen: \"127.0.0.1:1143\", tsl: none}\n",
		"log:\n  level: info\n  level: debug\n",
		"accounts:\n  - &a {username: a@gmail.com, provider: gmail, client_id: c}\n  - <<: *a\n    username: b@gmail.com\n",
		"providers: {outlook: {tenant: x, session_lifetime: 1h, rotate_before: 2h}}\n",
		"listeners: [{protocol: smtp, listen: \"0.0.0.0:25\", allow: [10.0.0.0/8], relay_without_auth: {from: [10.1.0.0/16], account: x}}]\n",
		"accounts: [{username: \"*@x\", provider: gmail, flow: service_account, service_account_file: /s, passwords: [{name: a, hash: \"" + testHash + "\"}]}]\n",
		"a: &a [*a]\n",
		"- [\n",
		"{? [a]: b}\n",
		"timeouts: {login: 1ns}\n---\nx: 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "f.yaml")
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml") {
					t.Fatalf("error line without its source: %q", line)
				}
			}
			return
		}
		if err := cfg.Complete(); err != nil {
			t.Fatalf("accepted config fails a second Complete: %v", err)
		}
		_ = cfg.Warnings()
		for i := range cfg.Accounts {
			if cfg.Provider(cfg.Accounts[i].Provider) == nil {
				t.Fatalf("accounts[%d] names provider %q, which does not resolve", i, cfg.Accounts[i].Provider)
			}
			_ = cfg.Account(cfg.Accounts[i].Username)
		}
		for i := range cfg.Listeners {
			_ = cfg.Listeners[i].AllowPrefixes()
		}
	})
}
