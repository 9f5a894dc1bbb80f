package testpeers

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recordTB stands in for a test so Require's skip and fail can be observed
// without ending the real test.
type recordTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recordTB) Helper() {}

func (r *recordTB) Skip(args ...any) {
	r.skipped, r.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *recordTB) Fatal(args ...any) {
	r.failed, r.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}

// runRecorded runs f like a test body on its own goroutine (Skip and Fatal
// end it with Goexit) and returns what happened.
func runRecorded(f func(tb testing.TB)) *recordTB {
	r := &recordTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestRequire(t *testing.T) {
	const prog = "oauthbridge-no-such-program"
	want := "needs " + prog + " (Debian package " + prog + "); run ./scripts/test.sh as root to install"

	t.Run("missing skips", func(t *testing.T) {
		t.Setenv(RequirePeersEnv, "")
		r := runRecorded(func(tb testing.TB) { Require(tb, "sh", prog) })
		if !r.skipped || r.failed || r.msg != want {
			t.Fatalf("skipped=%v failed=%v msg=%q; want a skip with %q", r.skipped, r.failed, r.msg, want)
		}
	})
	t.Run("missing fails when required", func(t *testing.T) {
		t.Setenv(RequirePeersEnv, "1")
		r := runRecorded(func(tb testing.TB) { Require(tb, prog) })
		if !r.failed || r.skipped || r.msg != want {
			t.Fatalf("skipped=%v failed=%v msg=%q; want a failure with %q", r.skipped, r.failed, r.msg, want)
		}
	})
	t.Run("package names", func(t *testing.T) {
		t.Setenv(RequirePeersEnv, "")
		r := runRecorded(func(tb testing.TB) { missing(tb, "mbsync", packageOf("mbsync")) })
		if !strings.Contains(r.msg, "(Debian package isync)") {
			t.Fatalf("msg = %q, want the isync package named", r.msg)
		}
	})
	t.Run("present passes", func(t *testing.T) {
		t.Setenv(RequirePeersEnv, "1")
		r := runRecorded(func(tb testing.TB) { Require(tb, "sh") })
		if r.skipped || r.failed {
			t.Fatalf("Require(sh) ended the test: %q", r.msg)
		}
	})
}

// TestLookPathSbin: dovecot lives in /usr/sbin, often not in a user's PATH.
func TestLookPathSbin(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	p, err := LookPath("dovecot")
	if err != nil {
		Require(t, "dovecot") // reports the missing package
		t.Fatal(err)
	}
	if !strings.HasSuffix(p, "/sbin/dovecot") {
		t.Fatalf("LookPath(dovecot) = %q", p)
	}
}
