package main

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/oauthbridge/oauthbridge/proxy"
)

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "", nil, "version")
	if code != 0 || !strings.HasPrefix(out, "oauthbridge ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

// Usage errors exit 2 and print the usage on stderr.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{nil, "usage: oauthbridge COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"authorize"}, "missing argument"},
		{[]string{"authorize", "a@b", "c@d"}, `unexpected argument "c@d"`},
		{[]string{"status", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"check", "-login"}, "flag needs an argument: -login"},
		{[]string{"hash-password"}, "not a terminal: use --stdin"},
	} {
		code, _, stderr := runCmd(t, "", nil, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "usage:") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q with the usage", tc.args, code, stderr, tc.want)
		}
	}
	code, out, _ := runCmd(t, "", nil, "status", "-h")
	if code != 0 || !strings.Contains(out, "usage: oauthbridge status") {
		t.Errorf("status -h: exit %d, %q", code, out)
	}
}

// Config errors exit 2 and name the key path, whatever the command.
func TestConfigErrors(t *testing.T) {
	f := newFixture(t)
	good := f.writeConfig(t, "good.yaml", []listenerSpec{{"imap", "127.0.0.1:0"}}, "alice-pw", "")
	bad := f.writeConfig(t, "bad.yaml", []listenerSpec{{"imap", "127.0.0.1:0"}}, "alice-pw", "log: {level: loud}\n")
	for _, args := range [][]string{
		{"check", "-config", bad},
		{"serve", "--config", bad},
		{"status", "-config=" + bad},
		{"authorize", alice, "-config", bad},
	} {
		code, _, stderr := runCmd(t, "", nil, args...)
		if code != 2 || !strings.Contains(stderr, "log.level: unknown level \"loud\"") || !strings.Contains(stderr, "bad.yaml:") {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming bad.yaml's log.level", args, code, stderr)
		}
	}
	code, _, stderr := runCmd(t, "", nil, "check", "-config", f.dir+"/missing.yaml")
	if code != 2 || !strings.Contains(stderr, "missing.yaml: no such file") {
		t.Errorf("missing config: exit %d, %q", code, stderr)
	}
	// $OAUTHBRIDGE_CONFIG is the default path.
	code, _, stderr = runCmd(t, "", []string{"OAUTHBRIDGE_CONFIG=" + bad}, "check")
	if code != 2 || !strings.Contains(stderr, "log.level") {
		t.Errorf("check with $OAUTHBRIDGE_CONFIG: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "", nil, "authorize", "nobody@gmail.com", "-config", good)
	if code != 2 || !strings.Contains(stderr, `no account "nobody@gmail.com"`) || !strings.Contains(stderr, alice) {
		t.Errorf("authorize of an unknown account: exit %d, %q", code, stderr)
	}
}

func TestHashPasswordStdin(t *testing.T) {
	code, out, stderr := runCmd(t, "correct horse battery\r\nignored\n", nil, "hash-password", "--stdin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	hash := strings.TrimSpace(out)
	ok, err := proxy.VerifyPassword(hash, "correct horse battery")
	if err != nil || !ok {
		t.Errorf("VerifyPassword(%q) = %v, %v", hash, ok, err)
	}
	if bad, _ := proxy.VerifyPassword(hash, "correct horse battery\r"); bad {
		t.Error("the line ending is part of the hashed password")
	}
	code, _, stderr = runCmd(t, "\n", nil, "hash-password", "--stdin")
	if code != 1 || !strings.Contains(stderr, "empty password") {
		t.Errorf("empty password: exit %d, %q", code, stderr)
	}
}

// Flags may come before and after positional arguments, with one or two
// dashes; "--" ends the flags.
func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		pos     []string
		config  string
		browser bool
	}{
		{[]string{"a@b", "--no-browser", "-config", "x.yaml"}, []string{"a@b"}, "x.yaml", false},
		{[]string{"--config=x.yaml", "a@b"}, []string{"a@b"}, "x.yaml", true},
		{[]string{"-no-browser", "a@b", "--config", "y"}, []string{"a@b"}, "y", false},
		{[]string{"--", "-odd@b"}, []string{"-odd@b"}, "default", true},
	} {
		fs := newFlagSet("t", "t", "")
		cfg := fs.String("config", "default", "")
		nb := fs.Bool("no-browser", false, "")
		pos, err := fs.parse(&env{}, tc.args, 0, 5)
		if err != nil || !slices.Equal(pos, tc.pos) || *cfg != tc.config || *nb == tc.browser {
			t.Errorf("parse(%q) = %q, %v, config %q, no-browser %v", tc.args, pos, err, *cfg, *nb)
		}
	}
}
