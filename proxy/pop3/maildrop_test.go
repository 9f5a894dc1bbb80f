package pop3

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"golang.org/x/oauth2"
)

func lines(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func TestMergeListings(t *testing.T) {
	got, err := mergeListings(lines("1 a", "2 b", "3 c"), lines("1 10", "2 20", "3 30 extra"))
	if err != nil {
		t.Fatal(err)
	}
	want := []entry{{1, "a", 10}, {2, "b", 20}, {3, "c", 30}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merge = %v, want %v", got, want)
	}
	bad := []struct{ uidl, list [][]byte }{
		{lines("1 a", "1 b"), lines("1 1", "2 2")},      // duplicate number
		{lines("1 a", "3 b"), lines("1 1", "3 2")},      // not 1..N
		{lines("1 a"), lines("1 1", "2 2")},             // counts differ
		{lines("1 a", "2 b"), lines("1 1", "3 2")},      // unknown number in LIST
		{lines("1"), lines("1 1")},                      // no UIDL
		{lines("1 a"), lines("1 -5")},                   // negative size
		{lines("x a"), lines("1 1")},                    // not a number
		{lines("1073741825 a"), lines("1 1")},           // huge number, never allocated
		{lines("1 a"), lines("1 99999999999999999999")}, // size overflow
	}
	for _, b := range bad {
		if _, err := mergeListings(b.uidl, b.list); !errors.Is(err, errUpstreamProtocol) {
			t.Errorf("mergeListings(%q, %q) = %v, want a protocol error", b.uidl, b.list, err)
		}
	}
}

func TestMaildropRemap(t *testing.T) {
	m := newMaildrop([]entry{{1, "a", 10}, {2, "b", 20}, {3, "c", 30}, {4, "d", 40}})
	m.mark(2)
	m.mark(4)
	// New session: "a" expunged, "e" arrived, the rest renumbered.
	vanished := m.remap([]entry{{1, "b", 20}, {2, "c", 30}, {3, "d", 40}, {4, "e", 50}})
	if vanished != 1 {
		t.Errorf("vanished = %d, want 1", vanished)
	}
	if _, st := m.lookup(1); st != msgNone {
		t.Errorf("message 1 (vanished) state %v", st)
	}
	if _, st := m.lookup(2); st != msgDeleted {
		t.Errorf("message 2 (marked) state %v", st)
	}
	if msg, st := m.lookup(3); st != msgOK || msg.cur != 2 || msg.size != 30 {
		t.Errorf("message 3 = %+v, %v; want upstream number 2", msg, st)
	}
	if _, st := m.lookup(5); st != msgNone {
		t.Errorf("message 5 (new upstream, not in the view) state %v", st)
	}
	if n, size := m.stat(); n != 1 || size != 30 {
		t.Errorf("stat = %d %d, want 1 30", n, size)
	}
	if got := m.scan(true); !reflect.DeepEqual(got, []string{"3 c"}) {
		t.Errorf("UIDL scan = %q", got)
	}
	if got := m.markedUIDLs(); !reflect.DeepEqual(got, []string{"b", "d"}) {
		t.Errorf("marked = %q", got)
	}
	m.reset()
	if got := m.scan(false); !reflect.DeepEqual(got, []string{"2 20", "3 30", "4 40"}) {
		t.Errorf("LIST scan after RSET = %q", got)
	}
	// A UIDL listed twice by the new session cannot be mapped.
	if v := m.remap([]entry{{1, "b", 20}, {2, "b", 20}, {3, "c", 30}, {4, "d", 40}}); v != 2 {
		t.Errorf("vanished with a duplicate UIDL = %d, want 2 (a and b)", v)
	}
}

func TestRotationTime(t *testing.T) {
	at := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tok := &oauth2.Token{Expiry: at.Add(time.Hour)}
	tests := []struct {
		name string
		p    proxy.SessionPolicy
		tok  *oauth2.Token
		want time.Time
	}{
		{"disabled", proxy.SessionPolicy{}, tok, time.Time{}},
		{"token expiry", proxy.SessionPolicy{RotateBefore: 5 * time.Minute}, tok, at.Add(55 * time.Minute)},
		{"session lifetime", proxy.SessionPolicy{RotateBefore: 5 * time.Minute, Lifetime: 20 * time.Minute}, tok, at.Add(15 * time.Minute)},
		{"short token: half way", proxy.SessionPolicy{RotateBefore: 5 * time.Minute}, &oauth2.Token{Expiry: at.Add(4 * time.Minute)}, at.Add(2 * time.Minute)},
		{"expired token", proxy.SessionPolicy{RotateBefore: 5 * time.Minute}, &oauth2.Token{Expiry: at.Add(-time.Minute)}, time.Time{}},
		{"no expiry", proxy.SessionPolicy{RotateBefore: 5 * time.Minute}, &oauth2.Token{}, time.Time{}},
	}
	for _, tt := range tests {
		if got := rotationTime(tt.p, tt.tok, at); !got.Equal(tt.want) {
			t.Errorf("%s: rotationTime = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzListing feeds arbitrary upstream UIDL and LIST bodies to the
// listing parser: no panic, no allocation beyond the listing's size, and
// an accepted listing numbers its messages exactly 1..N.
func FuzzListing(f *testing.F) {
	f.Add([]byte("1 a\n2 b"), []byte("1 10\n2 20"))
	f.Add([]byte("1 GmailId0000000100000001"), []byte("1 300 extra"))
	f.Add([]byte("2 a\n1 b"), []byte("1 5\n2 7"))
	f.Add([]byte("1073741824 a"), []byte("1 1"))
	f.Add([]byte("1  a b"), []byte("1 -1"))
	f.Add([]byte("1 a\n2 a"), []byte("1 1\n2 2"))
	f.Fuzz(func(t *testing.T, uidl, list []byte) {
		split := func(b []byte) [][]byte {
			if len(b) == 0 {
				return nil
			}
			return bytes.Split(b, []byte("\n"))
		}
		l, err := mergeListings(split(uidl), split(list))
		if err != nil {
			return
		}
		seen := make([]bool, len(l)+1)
		for _, e := range l {
			if e.num < 1 || e.num > len(l) || seen[e.num] || e.uidl == "" || e.size < 0 {
				t.Fatalf("accepted listing %+v", l)
			}
			seen[e.num] = true
		}
		m := newMaildrop(l)
		if len(m.msgs) != len(l) {
			t.Fatalf("maildrop of %d for %d entries", len(m.msgs), len(l))
		}
		// An identical listing maps every message whose UIDL is unique
		// (RFC 1939 §7 promises uniqueness; duplicates cannot be mapped).
		count := map[string]int{}
		for _, e := range l {
			count[e.uidl]++
		}
		unique := 0
		for _, n := range count {
			if n == 1 {
				unique++
			}
		}
		m.remap(l)
		if n, _ := m.stat(); n != unique {
			t.Fatalf("stat %d after an identical remap, want %d", n, unique)
		}
	})
}
