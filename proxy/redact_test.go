package proxy

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

type step struct {
	server bool
	line   string
}

func C(line string) step { return step{line: line} }
func S(line string) step { return step{server: true, line: line} }

var redactCases = []struct {
	name    string
	proto   string
	steps   []step
	secrets []string
	keep    []string // must survive in the client output
}{
	{"imap login atom", "imap", []step{C("a1 LOGIN alice@gmail.com s3cr3t-pw\r\n")}, []string{"s3cr3t-pw"}, []string{"a1 LOGIN alice@gmail.com ***\r\n"}},
	{"imap login quoted", "imap", []step{C(`a1 login "alice" "pa ss\"w0rd"` + "\r\n")}, []string{"pa ss", `w0rd`}, []string{`a1 login "alice" ***`}},
	{"imap login quoted user with spaces", "imap", []step{C(`a1 LOGIN "al ice" hunter2` + "\r\n")}, []string{"hunter2"}, []string{`"al ice"`}},
	{"imap login tab", "imap", []step{C("a1 LOGIN alice\thunter2\r\n")}, []string{"hunter2"}, nil},
	{"imap login no space", "imap", []step{C("a1 LOGIN\thunter2\r\n")}, []string{"hunter2"}, nil},
	{"imap login lf only", "imap", []step{C("a1 LOGIN alice hunter2\n")}, []string{"hunter2"}, []string{"alice ***\n"}},
	{"imap login without ending", "imap", []step{C("a1 LOGIN alice hunter2")}, []string{"hunter2"}, nil},
	{"imap login literal password", "imap", []step{
		C("a1 LOGIN alice {8}\r\n"), S("+ Ready\r\n"), C("hunter22\r\n"), S("a1 OK done\r\n"), C("a2 NOOP\r\n"),
	}, []string{"hunter22"}, []string{"a1 LOGIN alice *** {8}", "a2 NOOP"}},
	{"imap login literal user and password", "imap", []step{
		C("a1 LOGIN {5}\r\n"), S("+ go\r\n"), C("alice {11+}\r\n"), C("pass\r\nword\r\n"), S("a1 NO bad\r\n"), C("a2 NOOP\r\n"),
	}, []string{"pass", "word"}, []string{"a2 NOOP"}},
	{"imap login literal+ with CRLF inside", "imap", []step{
		C("a1 LOGIN alice {12+}\r\n"), C("sec\r\n"), C("ret\r\nxyz\r\n"), C("a2 NOOP\r\n"),
	}, []string{"sec", "ret", "xyz"}, []string{"a2 NOOP"}},
	{"imap authenticate plain sasl-ir", "imap", []step{C("A1 AUTHENTICATE PLAIN " + b64("\x00alice\x00hunter2") + "\r\n")}, []string{"hunter2", b64("\x00alice\x00hunter2")}, []string{"A1 AUTHENTICATE PLAIN ***"}},
	{"imap authenticate plain continuation", "imap", []step{
		C("A1 AUTHENTICATE PLAIN\r\n"), S("+ \r\n"), C(b64("\x00alice\x00hunter2") + "\r\n"), S("A1 OK\r\n"), C("A2 SELECT INBOX\r\n"),
	}, []string{"hunter2", b64("\x00alice\x00hunter2")}, []string{"A1 AUTHENTICATE PLAIN", "A2 SELECT INBOX"}},
	{"imap authenticate login", "imap", []step{
		C("A1 AUTHENTICATE LOGIN\r\n"), S("+ VXNlcm5hbWU6\r\n"), C(b64("alice") + "\r\n"), S("+ UGFzc3dvcmQ6\r\n"), C(b64("hunter2") + "\r\n"), S("A1 OK\r\n"),
	}, []string{b64("hunter2")}, []string{"AUTHENTICATE LOGIN"}},
	{"imap authenticate without server lines fails safe", "imap", []step{
		C("A1 AUTHENTICATE LOGIN\r\n"), C(b64("alice") + "\r\n"), C(b64("hunter2") + "\r\n"), C("A2 NOOP hunter2\r\n"),
	}, []string{b64("hunter2"), "hunter2"}, nil},
	{"imap xoauth2 upstream", "imap", []step{C("A1 AUTHENTICATE XOAUTH2 " + b64("user=a@b\x01auth=Bearer ya29.tok\x01\x01") + "\r\n"), S("+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"), C("\r\n"), S("A1 NO [AUTHENTICATIONFAILED]\r\n")}, []string{"ya29.tok", b64("user=a@b\x01auth=Bearer ya29.tok\x01\x01")}, []string{"XOAUTH2 ***"}},
	{"imap other commands untouched", "imap", []step{C("a1 SELECT INBOX\r\n"), C("a2 FETCH 1 (FLAGS)\r\n")}, nil, []string{"a1 SELECT INBOX\r\n", "a2 FETCH 1 (FLAGS)\r\n"}},
	{"pop3 user pass", "pop3", []step{C("USER alice\r\n"), S("+OK\r\n"), C("PASS hunter2 with spaces\r\n"), S("+OK\r\n"), C("STAT\r\n")}, []string{"hunter2", "with spaces"}, []string{"USER alice", "PASS ***", "STAT"}},
	{"pop3 pass lower case", "pop3", []step{C("pass hunter2\r\n")}, []string{"hunter2"}, []string{"pass ***"}},
	{"pop3 apop", "pop3", []step{C("APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n")}, []string{"c4c9334bac560ecc979e58001b3e22fb"}, []string{"APOP alice ***"}},
	{"pop3 auth plain ir", "pop3", []step{C("AUTH PLAIN " + b64("\x00alice\x00hunter2") + "\r\n"), S("+OK\r\n")}, []string{b64("\x00alice\x00hunter2")}, []string{"AUTH PLAIN ***"}},
	{"pop3 auth login", "pop3", []step{C("AUTH LOGIN\r\n"), S("+ VXNlcm5hbWU6\r\n"), C(b64("alice") + "\r\n"), S("+ UGFzc3dvcmQ6\r\n"), C(b64("hunter2") + "\r\n"), S("+OK\r\n"), C("STAT\r\n")}, []string{b64("hunter2")}, []string{"AUTH LOGIN", "STAT"}},
	{"pop3 xoauth2 two-step", "pop3", []step{C("AUTH XOAUTH2\r\n"), S("+ \r\n"), C(b64("user=a@b\x01auth=Bearer ya29.tok\x01\x01") + "\r\n"), S("+OK\r\n")}, []string{"ya29.tok", b64("user=a@b\x01auth=Bearer ya29.tok\x01\x01")}, nil},
	{"pop3 auth list", "pop3", []step{C("AUTH\r\n"), S("+OK\r\n"), C("CAPA\r\n")}, nil, []string{"AUTH\r\n", "CAPA\r\n"}},
	{"smtp auth plain ir", "smtp", []step{C("AUTH PLAIN " + b64("\x00alice\x00hunter2") + "\r\n"), S("235 2.7.0 ok\r\n"), C("MAIL FROM:<a@b>\r\n")}, []string{b64("\x00alice\x00hunter2")}, []string{"AUTH PLAIN ***", "MAIL FROM:<a@b>"}},
	{"smtp auth login with ir", "smtp", []step{C("AUTH LOGIN " + b64("alice") + "\r\n"), S("334 UGFzc3dvcmQ6\r\n"), C(b64("hunter2") + "\r\n"), S("235 ok\r\n"), C("MAIL FROM:<a@b>\r\n")}, []string{b64("hunter2")}, []string{"AUTH LOGIN ***", "MAIL FROM:<a@b>"}},
	{"smtp auth login", "smtp", []step{C("auth login\r\n"), S("334 VXNlcm5hbWU6\r\n"), C(b64("alice") + "\r\n"), S("334 UGFzc3dvcmQ6\r\n"), C(b64("p@ss") + "\r\n"), S("535 5.7.8 no\r\n"), C("QUIT\r\n")}, []string{b64("p@ss")}, []string{"auth login", "QUIT"}},
	{"smtp cancel", "smtp", []step{C("AUTH LOGIN\r\n"), S("334 VXNlcm5hbWU6\r\n"), C("*\r\n"), S("501 cancelled\r\n"), C("EHLO x\r\n")}, nil, []string{"EHLO x"}},
	{"smtp xoauth2 upstream", "smtp", []step{C("AUTH XOAUTH2 " + b64("user=a@b\x01auth=Bearer ya29.tok\x01\x01") + "\r\n"), S("334 eyJzdGF0dXMiOiI0MDEifQ==\r\n"), C("\r\n"), S("535 5.7.8\r\n")}, []string{"ya29.tok", b64("user=a@b\x01auth=Bearer ya29.tok\x01\x01")}, []string{"AUTH XOAUTH2 ***"}},
	{"bare plain payload without state", "smtp", []step{C(b64("\x00alice\x00hunter2") + "\r\n")}, []string{b64("\x00alice\x00hunter2")}, nil},
	{"raw bearer text", "imap", []step{C("x auth=Bearer ya29.tok\r\n")}, []string{"ya29.tok"}, nil},
	{"unknown proto", "", []step{C("AUTH PLAIN " + b64("\x00a\x00hunter2") + "\r\n"), C("a1 LOGIN alice hunter2\r\n")}, []string{"hunter2", b64("\x00a\x00hunter2")}, nil},
}

func TestRedactor(t *testing.T) {
	for _, tt := range redactCases {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRedactor(tt.proto)
			var out strings.Builder
			for _, s := range tt.steps {
				in := []byte(s.line)
				var got []byte
				if s.server {
					got = r.Server(in)
					if !bytes.Equal(got, in) {
						t.Fatalf("server line changed: %q -> %q", s.line, got)
					}
					continue
				}
				got = r.Client(in)
				if !bytes.HasSuffix(got, []byte("\n")) && bytes.HasSuffix(in, []byte("\n")) {
					t.Errorf("line ending lost: %q -> %q", in, got)
				}
				out.Write(got)
				out.WriteString("|")
			}
			for _, sec := range tt.secrets {
				if strings.Contains(out.String(), sec) {
					t.Errorf("secret %q leaked: %q", sec, out.String())
				}
			}
			for _, k := range tt.keep {
				if !strings.Contains(out.String(), k) {
					t.Errorf("%q missing from %q", k, out.String())
				}
			}
		})
	}
}

func TestRedactClientLineStateless(t *testing.T) {
	tests := []struct{ proto, in, want string }{
		{"imap", "a LOGIN bob pw\r\n", "a LOGIN bob ***\r\n"},
		{"pop3", "PASS pw\r\n", "PASS ***\r\n"},
		{"smtp", "AUTH PLAIN AGJvYgBwdw==\r\n", "AUTH PLAIN ***\r\n"},
		{"smtp", "AGJvYgBwdw==\r\n", "***\r\n"},
		{"smtp", "EHLO client.example\r\n", "EHLO client.example\r\n"},
	}
	for _, tt := range tests {
		if got := string(RedactClientLine(tt.proto, []byte(tt.in))); got != tt.want {
			t.Errorf("RedactClientLine(%s, %q) = %q, want %q", tt.proto, tt.in, got, tt.want)
		}
	}
}

func TestRedactXOAUTH2(t *testing.T) {
	payload := b64("user=alice@gmail.com\x01auth=Bearer ya29.SECRET\x01\x01")
	tests := []struct{ in, want string }{
		{"A1 AUTHENTICATE XOAUTH2 " + payload + "\r\n", "A1 AUTHENTICATE XOAUTH2 ***\r\n"},
		{"AUTH XOAUTH2 " + payload + "\r\n", "AUTH XOAUTH2 ***\r\n"},
		{"auth xoauth2 " + payload, "auth xoauth2 ***"},
		{payload + "\r\n", "***\r\n"},
		{"user=alice@gmail.com\x01auth=Bearer ya29.SECRET\x01\x01", "user=alice@gmail.com\x01auth=Bearer ***"},
		{"AUTH XOAUTH2\r\n", "AUTH XOAUTH2\r\n"},
		{"A2 SELECT INBOX\r\n", "A2 SELECT INBOX\r\n"},
		{"\r\n", "\r\n"},
	}
	for _, tt := range tests {
		if got := string(RedactXOAUTH2([]byte(tt.in))); got != tt.want {
			t.Errorf("RedactXOAUTH2(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzRedactor feeds arbitrary transcripts: no panic, line endings kept,
// and a password given with LOGIN/PASS/AUTH on its own line never
// survives.
func FuzzRedactor(f *testing.F) {
	for _, tt := range redactCases {
		var b strings.Builder
		for _, s := range tt.steps {
			if s.server {
				b.WriteString("S:")
			}
			b.WriteString(s.line)
		}
		f.Add(tt.proto, b.String(), "hunter2")
	}
	f.Add("imap", "a LOGIN {99999999999999999999}\r\n", "x")
	f.Add("imap", "a LOGIN {4294967295}\r\nS:+\r\n", "x")
	f.Fuzz(func(t *testing.T, proto, transcript, secret string) {
		r := NewRedactor(proto)
		for _, line := range strings.SplitAfter(transcript, "\n") {
			if s, ok := strings.CutPrefix(line, "S:"); ok {
				r.Server([]byte(s))
				continue
			}
			out := r.Client([]byte(line))
			if strings.HasSuffix(line, "\n") && !bytes.HasSuffix(out, []byte("\n")) {
				t.Fatalf("line ending lost: %q -> %q", line, out)
			}
			RedactXOAUTH2([]byte(line))
			RedactClientLine(proto, []byte(line))
		}
		// A fresh session: the password must not survive whatever it is.
		if len(secret) < 4 || strings.ContainsAny(secret, "\r\n\t \"{}\\") || strings.Contains("***", secret) {
			return
		}
		for _, line := range []string{
			"a1 LOGIN alice " + secret + "\r\n",
			"PASS " + secret + "\r\n",
			"AUTH PLAIN " + b64("\x00alice\x00"+secret) + "\r\n",
		} {
			for _, p := range []string{"imap", "pop3", "smtp"} {
				if !strings.HasPrefix(line, "a1") && p == "imap" || strings.HasPrefix(line, "a1") && p != "imap" {
					continue
				}
				if strings.HasPrefix(line, "PASS") && p != "pop3" {
					continue
				}
				out := string(NewRedactor(p).Client([]byte(line)))
				if strings.Contains(strings.TrimPrefix(out, "a1 LOGIN alice"), secret) || strings.Contains(out, b64("\x00alice\x00"+secret)) {
					t.Fatalf("%s: %q leaked in %q", p, secret, out)
				}
			}
		}
	})
}

func BenchmarkRedactorClient(b *testing.B) {
	line := []byte("a17 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)])\r\n")
	r := NewRedactor("imap")
	b.ReportAllocs()
	for b.Loop() {
		r.Client(line)
	}
}
