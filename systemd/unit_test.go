// Package systemd holds the unit file. Its tests check the deployment
// files: the unit with systemd's own parser (systemd-analyze verify) and
// the directives the daemon relies on, and ../Dockerfile and
// ../.dockerignore (docker_test.go), built when a Docker engine is
// reachable.
package systemd

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

const unitFile = "oauthbridge.service"

// directives parses the unit's [Service] section into key -> values
// (a key may repeat, as SystemCallFilter does).
func directives(t *testing.T, unit []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("not a directive: %q", line)
			}
			out[section+k] = append(out[section+k], v)
		}
	}
	return out
}

func TestUnitDirectives(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	d := directives(t, unit)
	for key, want := range map[string]string{
		"Type":                    "notify",
		"ExecStart":               "/usr/local/bin/oauthbridge serve -config /etc/oauthbridge/config.yaml",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Restart":                 "on-failure",
		"WatchdogSec":             "60",
		"DynamicUser":             "yes",
		"StateDirectory":          "oauthbridge",
		"StateDirectoryMode":      "0700",
		"ConfigurationDirectory":  "oauthbridge",
		"UMask":                   "0077",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
	} {
		got := d["[Service]"+key]
		if len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s = %q, want exactly %q", key, got, want)
		}
	}
	if f := d["[Service]SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("SystemCallFilter = %q, want @system-service first", f)
	}
	if got := d["[Install]WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("WantedBy = %q", got)
	}
	// The commented drop-in for ports < 1024 is documented in the file.
	if !bytes.Contains(unit, []byte("#   CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n#   AmbientCapabilities=CAP_NET_BIND_SERVICE")) {
		t.Error("the CAP_NET_BIND_SERVICE drop-in example is missing")
	}
}

// verify runs systemd-analyze verify on unit (written under dir) and
// returns its exit error and output.
func verify(t *testing.T, bin, dir string, unit []byte) (error, string) {
	t.Helper()
	path := filepath.Join(dir, unitFile)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "verify", "--man=no", path)
	out, err := cmd.CombinedOutput()
	return err, string(out)
}

// TestSystemdAnalyzeVerify checks the unit with systemd's own parser.
// verify also requires ExecStart's binary to exist, so the unit is
// checked with ExecStart pointing at a stand-in executable (every other
// line unchanged): then any output at all — an unknown directive, a bad
// value, a missing section — fails the test. A copy with a misspelt
// directive proves verify does complain here.
func TestSystemdAnalyzeVerify(t *testing.T) {
	testpeers.Require(t, "systemd-analyze")
	bin, _ := testpeers.LookPath("systemd-analyze")
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	standIn := filepath.Join(dir, "oauthbridge")
	if err := os.WriteFile(standIn, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const exe = "/usr/local/bin/oauthbridge"
	if !bytes.Contains(unit, []byte("ExecStart="+exe+" ")) {
		t.Fatalf("ExecStart does not run %s", exe)
	}
	testUnit := bytes.Replace(unit, []byte("ExecStart="+exe), []byte("ExecStart="+standIn), 1)

	if err, out := verify(t, bin, dir, testUnit); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The installed path: when no binary is installed, the only
	// complaint allowed is exactly that.
	if _, statErr := os.Stat(exe); statErr != nil {
		err, out := verify(t, bin, t.TempDir(), unit)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.Contains(line, "Command "+exe+" is not executable") {
				t.Errorf("unexpected complaint about the installed unit: %q (exit %v)", line, err)
			}
		}
	}

	broken := bytes.Replace(testUnit, []byte("ProtectHome=yes"), []byte("ProtectHomes=yes"), 1)
	if _, out := verify(t, bin, t.TempDir(), broken); !strings.Contains(out, "ProtectHomes") {
		t.Fatalf("verify did not flag a misspelt directive; output:\n%s", out)
	}
}
