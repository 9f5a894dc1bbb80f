package proxy

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// Vectors made with the reference implementation's CLI (Debian package
// argon2, 20190702):
//
//	echo -n "correct horse battery staple" | argon2 saltsaltsalt16b -id -t 2 -m 10 -p 1 -l 32 -e
//	echo -n "pässwörd" | argon2 anothersaltvalue -id -t 3 -k 4096 -p 2 -l 16 -e
var referenceVectors = []struct{ phc, pw string }{
	{"$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo", "correct horse battery staple"},
	{"$argon2id$v=19$m=4096,t=3,p=2$YW5vdGhlcnNhbHR2YWx1ZQ$3mrTj4ceHJcRpSFhTrAa6w", "pässwörd"},
}

func TestVerifyPasswordReference(t *testing.T) {
	for _, v := range referenceVectors {
		for _, tt := range []struct {
			pw   string
			want bool
		}{{v.pw, true}, {v.pw + " ", false}, {strings.ToUpper(v.pw), false}, {"", false}} {
			got, err := VerifyPassword(v.phc, tt.pw)
			if err != nil || got != tt.want {
				t.Errorf("VerifyPassword(%s, %q) = %v, %v; want %v", v.phc, tt.pw, got, err, tt.want)
			}
		}
	}
}

var phcFormat = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashPassword(t *testing.T) {
	h1, err := HashPassword("app password")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("app password")
	if !phcFormat.MatchString(h1) {
		t.Fatalf("hash %q is not a PHC string with the default parameters", h1)
	}
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	for _, h := range []string{h1, h2} {
		if ok, err := VerifyPassword(h, "app password"); !ok || err != nil {
			t.Fatalf("verify own hash: %v, %v", ok, err)
		}
		if ok, _ := VerifyPassword(h, "app passworD"); ok {
			t.Fatal("wrong password verified")
		}
	}
	if _, err := HashPassword(""); err == nil {
		t.Fatal("empty password hashed")
	}
	if _, err := HashPasswordParams("x", Argon2Params{Memory: 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}); !errors.Is(err, ErrBadHash) {
		t.Fatalf("bad parameters: %v", err)
	}
}

func TestParsePHCErrors(t *testing.T) {
	good := referenceVectors[0].phc
	tests := []string{
		"",
		"hunter2-plain-password",
		"$argon2i$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=16$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=19$m=1024,t=2$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=19$m=1024,t=2,p=1,p=1$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=19$m=1024,t=2,x=1$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=19$m=1024,t=0,p=1$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=19$m=1024,t=2,p=300$c2FsdHNhbHRzYWx0MTZi$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=19$m=1024,t=2,p=1$c2Fsd$JfnpSKdocQGlBzTENCUK3Q5b4Ylmve7dr2D+a6PWCwo",
		"$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$JfnpSKdo==",
		"$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$!!!!",
		good + "$",
		"x" + good,
	}
	for _, in := range tests {
		_, err := parsePHC(in)
		if !errors.Is(err, ErrBadHash) {
			t.Errorf("parsePHC(%q) = %v, want ErrBadHash", in, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "JfnpSK") {
			t.Errorf("error quotes its input: %v", err)
		}
	}
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("good vector: %v", err)
	}
}

func FuzzVerifyPassword(f *testing.F) {
	for _, v := range referenceVectors {
		f.Add(v.phc, v.pw)
	}
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Fuzz(func(t *testing.T, phc, pw string) {
		h, err := parsePHC(phc)
		if err != nil {
			return
		}
		if h.Memory > 4096 || h.Time > 3 {
			return // valid but slow: not what this fuzzes
		}
		h.verify(pw)
		if h.String() != phc && strings.Count(phc, "$") == 5 {
			// Re-encoding normalises parameter order only.
			if _, err := parsePHC(h.String()); err != nil {
				t.Fatalf("re-encoded hash does not parse: %v", err)
			}
		}
	})
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("app password"); err != nil {
			b.Fatal(err)
		}
	}
}
