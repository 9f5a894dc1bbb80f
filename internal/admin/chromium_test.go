package admin

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// TestStatusPageInChromium loads the status page in headless Chromium,
// checks the text of the DOM it built and saves a screenshot as a test
// artifact (into $OAUTHBRIDGE_ARTIFACTS when set).
func TestStatusPageInChromium(t *testing.T) {
	testpeers.Require(t, "chromium")
	bin, _ := testpeers.LookPath("chromium")
	// The page's clock is the sample's: relative times are exact however
	// long Chromium takes to start.
	now := time.Now()
	h := New(sampleSource(now), nil, nil).(*handler)
	h.now = func() time.Time { return now }
	srv := serve(t, h)

	dom := runChromium(t, bin, "--dump-dom", srv.URL+"/")
	for _, want := range []string{
		"oauthbridge status", "healthy",
		"alice@gmail.com", "authorized", "in 41m 0s", // access token expiry, relative
		"bob@contoso.example", "consent required: authorize again",
		"Authorize", "CLI: oauthbridge authorize bob@contoso.example",
		"IMAP 2, SMTP 1", "upstream login failed", "account=bob@contoso.example proto=imap",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM Chromium built lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	dir := os.Getenv("OAUTHBRIDGE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "admin-status-page.png")
	os.Remove(shot)
	runChromium(t, bin, "--screenshot="+shot, srv.URL+"/")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1200x900", b.Dx(), b.Dy())
	}
	t.Logf("status page screenshot: %s", shot)
}

func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir=" + profile, "--window-size=1200,900"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Env = append(os.Environ(), "HOME="+profile) // keep Chromium's caches out of the real home
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out.String()
}
