package pop3

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

func TestDecodeSASL(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{"*", "", errSASLCancel},
		{" * ", "", errSASLCancel},
		{"=", "", nil},
		{"AGFsaWNlAHB3", "\x00alice\x00pw", nil},
		{"dXNlcg==", "user", nil},
		{"dXNlcg", "user", nil}, // unpadded
		{"not base64!", "", errBadBase64},
		{"dXNlcg=", "", errBadBase64},
	}
	for _, tt := range tests {
		got, err := decodeSASL([]byte(tt.in))
		if !errors.Is(err, tt.err) || (err == nil && string(got) != tt.want) {
			t.Errorf("decodeSASL(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestDecodePlain(t *testing.T) {
	tests := []struct {
		msg        string
		user, pass string
		err        error
	}{
		{"\x00alice\x00pw", "alice", "pw", nil},
		{"alice\x00alice\x00pw", "alice", "pw", nil},
		{"ALICE\x00alice\x00p w", "alice", "p w", nil},
		{"bob\x00alice\x00pw", "", "", errAuthzid},
		{"\x00\x00pw", "", "", errEmptySecret},
		{"\x00alice\x00", "", "", errEmptySecret},
		{"alice\x00pw", "", "", errBadPlain},
		{"\x00a\x00b\x00c", "", "", errBadPlain},
		{"", "", "", errBadPlain},
	}
	for _, tt := range tests {
		u, p, err := decodePlain([]byte(tt.msg))
		if !errors.Is(err, tt.err) || u != tt.user || p != tt.pass {
			t.Errorf("decodePlain(%q) = %q, %q, %v; want %q, %q, %v", tt.msg, u, p, err, tt.user, tt.pass, tt.err)
		}
	}
}

// FuzzLocalSASL feeds arbitrary client responses through the local SASL
// decoders: no panic, and whatever PLAIN accepts round-trips.
func FuzzLocalSASL(f *testing.F) {
	for _, s := range []string{
		"*", "=", "AGFsaWNlAHB3", base64.StdEncoding.EncodeToString([]byte("a\x00a\x00b")),
		"dXNlcg", "====", "\x00\x00", "AAAA", base64.StdEncoding.EncodeToString([]byte("\x00\x00\x00")),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, resp []byte) {
		msg, err := decodeSASL(resp)
		if err != nil {
			return
		}
		user, pass, err := decodePlain(msg)
		if err != nil {
			return
		}
		if user == "" || pass == "" {
			t.Fatalf("empty credentials accepted from %q", msg)
		}
		if !bytes.HasSuffix(msg, []byte("\x00"+user+"\x00"+pass)) {
			t.Fatalf("decodePlain(%q) = %q, %q", msg, user, pass)
		}
	})
}
