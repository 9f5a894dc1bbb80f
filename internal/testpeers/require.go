package testpeers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequirePeersEnv is the environment variable that turns a missing peer
// program from a skip into a failure. .ci/run sets it to 1 after
// scripts/test.sh has installed every package in Packages.
const RequirePeersEnv = "OAUTHBRIDGE_REQUIRE_PEERS"

// Packages maps each program the real-peer tests run to the Debian 12
// package providing it. scripts/test.sh installs the same set; keep the two
// in step when adding a program.
var Packages = map[string]string{
	"dovecot":         "dovecot-core",
	"doveadm":         "dovecot-core",
	"doveconf":        "dovecot-core",
	"curl":            "curl",
	"python3":         "python3",
	"fetchmail":       "fetchmail",
	"swaks":           "swaks",
	"msmtp":           "msmtp",
	"openssl":         "openssl",
	"mbsync":          "isync",
	"offlineimap":     "offlineimap",
	"getmail":         "getmail6",
	"neomutt":         "neomutt",
	"chromium":        "chromium",
	"systemd-analyze": "systemd",
	"script":          "bsdutils",
}

// sbinDirs are searched after PATH: a non-root PATH often lacks /usr/sbin,
// where Debian puts the dovecot binary.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// peersRequired reports whether a missing peer must fail the test.
func peersRequired() bool { return os.Getenv(RequirePeersEnv) == "1" }

// LookPath finds program in PATH, then in the sbin directories. It returns
// exec.ErrNotFound (wrapped) when the program is not installed.
func LookPath(program string) (string, error) {
	if p, err := exec.LookPath(program); err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, program)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("testpeers: %s: %w", program, exec.ErrNotFound)
}

// Require makes sure every program is installed. For the first missing one
// it skips the test with a message naming the program and its Debian
// package, or fails it when OAUTHBRIDGE_REQUIRE_PEERS=1.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := LookPath(p); err != nil {
			missing(t, p, packageOf(p))
		}
	}
}

// packageOf names the Debian package for program; unknown programs are
// assumed to ship in a package of the same name.
func packageOf(program string) string {
	if pkg, ok := Packages[program]; ok {
		return pkg
	}
	return program
}

// missing ends the test because what (provided by pkg) is not installed.
func missing(t testing.TB, what, pkg string) {
	t.Helper()
	msg := fmt.Sprintf("needs %s (Debian package %s); run ./scripts/test.sh as root to install", what, pkg)
	if peersRequired() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
