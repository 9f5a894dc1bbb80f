package tokens

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// FuzzStoreOpen: a damaged or hostile token file gives an error, never a
// panic.
func FuzzStoreOpen(f *testing.F) {
	s := openStore(f, f.TempDir())
	good, err := s.seal(alice, &Record{AccessToken: "a", RefreshToken: "r", Expiry: time.Now()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(fileMagic))
	f.Add([]byte{})
	f.Add(append([]byte(fileMagic), make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := s.open(alice, data)
		if err == nil && r == nil {
			t.Fatal("nil record without error")
		}
		if err == nil && !bytes.Equal(data, good) {
			t.Fatal("a forged file decrypted")
		}
	})
}

// FuzzRedirectQuery: whatever is pasted, the parser answers without
// panicking, and accepts only http(s) URLs carrying code or error.
func FuzzRedirectQuery(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:4711/?code=abc&state=xyz",
		"http://127.0.0.1:4711/?error=access_denied&state=xyz",
		"127.0.0.1:4711/?code=abc",
		"https://accounts.google.com/o/oauth2/auth?client_id=x",
		"%zz", "", "javascript:alert(1)?code=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, ok := redirectQuery(s)
		if ok && !q.Has("code") && !q.Has("error") {
			t.Fatalf("%q accepted without code or error", s)
		}
		if ok && !strings.HasPrefix(strings.ToLower(s), "http") {
			t.Fatalf("%q accepted without an http scheme", s)
		}
	})
}

func TestRecordRedacted(t *testing.T) {
	r := &Record{AccessToken: "secret-access-123", RefreshToken: "secret-refresh-456", Flow: FlowAuthCode, LastError: "boom"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "record", r)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "record", r)
	text := fmt.Sprintf("%v %+v %#v %s", r, r, r, r) + buf.String()
	if strings.Contains(text, "secret-") {
		t.Fatalf("a token leaks through formatting: %s", text)
	}
	if !strings.Contains(text, "has_refresh_token") || !strings.Contains(text, "boom") {
		t.Fatalf("redacted form lost the useful fields: %s", text)
	}
}
