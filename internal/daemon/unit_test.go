package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

func TestRecentHandler(t *testing.T) {
	ring := &errorRing{}
	// The inner handler's level is ERROR; WARN must still be kept.
	log := slog.New(newRecentHandler(slog.NewTextHandler(&discard{}, &slog.HandlerOptions{Level: slog.LevelError}), ring))
	log.Info("not kept")
	log.With("proto", "imap").WithGroup("g").With("a", 1).Warn("kept", "b", "x", slog.Group("h", "c", true))
	entries := ring.list()
	if len(entries) != 1 {
		t.Fatalf("entries = %+v, want 1", entries)
	}
	want := map[string]string{"level": "WARN", "proto": "imap", "g.a": "1", "g.b": "x", "g.h.c": "true"}
	for k, v := range want {
		if entries[0].Attrs[k] != v {
			t.Errorf("attr %s = %q, want %q (all: %v)", k, entries[0].Attrs[k], v, entries[0].Attrs)
		}
	}
	if entries[0].Message != "kept" {
		t.Errorf("entry = %+v", entries[0])
	}

	for i := range 2 * recentErrorsMax {
		log.Error(fmt.Sprint(i))
	}
	entries = ring.list()
	if len(entries) != recentErrorsMax {
		t.Fatalf("%d entries, want the last %d", len(entries), recentErrorsMax)
	}
	if entries[0].Message != fmt.Sprint(2*recentErrorsMax-1) || entries[len(entries)-1].Message != fmt.Sprint(recentErrorsMax) {
		t.Errorf("not newest first: first %q, last %q", entries[0].Message, entries[len(entries)-1].Message)
	}
}

// The inner handler gets exactly what it would without the tee.
func TestRecentHandlerPassesThrough(t *testing.T) {
	inner := proxytest.NewLogBuffer()
	log := slog.New(newRecentHandler(inner, &errorRing{}))
	log.Debug("d", "k", "v")
	if n := len(inner.Lines("msg=d", "k=v")); n != 1 {
		t.Errorf("debug line reached the inner handler %d times:\n%s", n, inner.String())
	}
	if !slog.New(newRecentHandler(slog.NewTextHandler(&discard{}, nil), &errorRing{})).Enabled(context.Background(), slog.LevelWarn) {
		t.Error("WARN not enabled")
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }

func TestUnmapPrefixes(t *testing.T) {
	in := []netip.Prefix{
		netip.MustParsePrefix("::ffff:192.0.2.0/120"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::ffff:0.0.0.0/96"),
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("0.0.0.0/0"),
	}
	if got := unmapPrefixes(in); !slices.Equal(got, want) {
		t.Errorf("unmapPrefixes = %v, want %v", got, want)
	}
}

func TestSameSocket(t *testing.T) {
	for _, tc := range []struct {
		a, b   string
		pa, pb string
		want   bool
	}{
		{"127.0.0.1:1143", "127.0.0.1:1143", "imap", "pop3", true},
		{"[::ffff:127.0.0.1]:1143", "127.0.0.1:1143", "imap", "imap", true},
		{"0.0.0.0:1143", "[::]:1143", "imap", "imap", true},
		{"LOCALHOST:25", "localhost:25", "smtp", "smtp", true},
		{"127.0.0.1:1143", "127.0.0.1:1144", "imap", "imap", false},
		{"127.0.0.1:0", "127.0.0.1:0", "imap", "imap", true},
		{"127.0.0.1:0", "127.0.0.1:0", "imap", "pop3", false},
		{"127.0.0.1:0", "localhost:0", "imap", "imap", false},
	} {
		a := &config.Listener{Listen: tc.a, Protocol: tc.pa}
		b := &config.Listener{Listen: tc.b, Protocol: tc.pb}
		if got := sameSocket(a, b); got != tc.want {
			t.Errorf("sameSocket(%s %s, %s %s) = %v, want %v", tc.pa, tc.a, tc.pb, tc.b, got, tc.want)
		}
	}
}
