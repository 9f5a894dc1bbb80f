package admin

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzScrub: masking never panics, is stable (masking twice changes
// nothing more), and a bearer token or XOAUTH2 payload planted anywhere
// in the text never survives.
func FuzzScrub(f *testing.F) {
	f.Add("imap: upstream refused AUTHENTICATE XOAUTH2 dXNlcj1hAWF1dGg9QmVhcmVyIHgBAQ==", "tok")
	f.Add(`{"access_token": "ya29.x", "refresh_token": "1//y"}`, "abc")
	f.Add("password=hunter2&state=x code=abc", "zz")
	f.Add("status code: 400 Bearer", "q")
	f.Fuzz(func(t *testing.T, s, tok string) {
		once := scrub(s)
		if twice := scrub(once); twice != once {
			t.Fatalf("not stable:\n%q\n%q\n%q", s, once, twice)
		}
		tok = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, tok)
		if len(tok) < 8 || strings.Contains(s, tok) {
			return
		}
		for _, planted := range []string{
			s + " Authorization: Bearer " + tok + " " + s,
			s + " " + base64.StdEncoding.EncodeToString([]byte("user=a@b\x01auth=Bearer "+tok+"\x01\x01")) + " " + s,
			s + " refresh_token=" + tok,
		} {
			if out := scrub(planted); strings.Contains(out, tok) {
				t.Fatalf("token %q survived in %q", tok, out)
			}
		}
	})
}
