package smtp

import (
	"errors"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

func TestParsePlain(t *testing.T) {
	tests := []struct {
		in                string
		authz, user, pass string
		ok                bool
	}{
		{"\x00alice\x00pw", "", "alice", "pw", true},
		{"alice\x00alice\x00pw", "alice", "alice", "pw", true},
		{"\x00alice\x00p w\x01", "", "alice", "p w\x01", true},
		{"", "", "", "", false},
		{"\x00\x00pw", "", "", "", false},          // empty authcid
		{"\x00alice\x00", "", "", "", false},       // empty password
		{"alice\x00pw", "", "", "", false},         // one NUL
		{"\x00a\x00b\x00c", "", "", "", false},     // NUL inside the password
		{"\x00alice\x00pw\x00", "", "", "", false}, // trailing NUL
	}
	for _, tt := range tests {
		z, u, p, err := parsePlain([]byte(tt.in))
		if (err == nil) != tt.ok || z != tt.authz || u != tt.user || p != tt.pass {
			t.Errorf("parsePlain(%q) = %q %q %q %v", tt.in, z, u, p, err)
		}
	}
}

type loginCall struct{ authz, user, pass string }

func recordLogin(calls *[]loginCall, err error) func(string, string, string) error {
	return func(z, u, p string) error {
		*calls = append(*calls, loginCall{z, u, p})
		return err
	}
}

func TestPlainServer(t *testing.T) {
	var calls []loginCall
	p := &plainServer{login: recordLogin(&calls, nil)}
	ch, done, err := p.Next(nil) // no initial response: empty challenge
	if ch == nil || len(ch) != 0 || done || err != nil {
		t.Fatalf("Next(nil) = %q %v %v", ch, done, err)
	}
	if _, done, err := p.Next([]byte("\x00bob\x00secret")); !done || err != nil {
		t.Fatalf("Next(resp) = %v %v", done, err)
	}
	if len(calls) != 1 || calls[0] != (loginCall{"", "bob", "secret"}) {
		t.Fatalf("calls %q", calls)
	}
	if _, _, err := p.Next([]byte("x")); !errors.Is(err, errBadSASL) {
		t.Fatalf("Next after done = %v", err)
	}
	q := &plainServer{login: recordLogin(&calls, nil)}
	if _, _, err := q.Next([]byte("garbage")); err != errBadSASL {
		t.Fatalf("malformed: %v", err)
	}
}

func TestLoginServer(t *testing.T) {
	var calls []loginCall
	refused := &gosmtp.SMTPError{Code: 535}
	l := &loginServer{login: recordLogin(&calls, refused)}
	steps := []struct {
		resp []byte
		want string
		done bool
	}{
		{nil, "Username:", false},
		{[]byte("bob"), "Password:", false},
		{[]byte("pw"), "", true},
	}
	for i, st := range steps {
		ch, done, err := l.Next(st.resp)
		if string(ch) != st.want || done != st.done {
			t.Fatalf("step %d: %q %v %v", i, ch, done, err)
		}
		if done && err != refused {
			t.Fatalf("login error not passed on: %v", err)
		}
	}
	if len(calls) != 1 || calls[0] != (loginCall{"", "bob", "pw"}) {
		t.Fatalf("calls %q", calls)
	}
	// Initial response = user name.
	calls = nil
	l = &loginServer{login: recordLogin(&calls, nil)}
	if ch, _, _ := l.Next([]byte("carol")); string(ch) != "Password:" {
		t.Fatalf("with IR: %q", ch)
	}
	if _, done, err := l.Next([]byte("pw2")); !done || err != nil || calls[0].user != "carol" {
		t.Fatalf("with IR: %v %v %q", done, err, calls)
	}
	// Empty password never reaches the authenticator.
	calls = nil
	l = &loginServer{login: recordLogin(&calls, nil)}
	l.Next([]byte("dave"))
	if _, _, err := l.Next([]byte{}); err != errBadSASL || len(calls) != 0 {
		t.Fatalf("empty password: %v %q", err, calls)
	}
}

// FuzzParsePlain: any bytes give either an error or three parts that
// rebuild the input.
func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{"\x00alice\x00pw", "a\x00b\x00c", "", "\x00", "\x00\x00", "x\x00y", "\x00\x00\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		z, u, p, err := parsePlain(b)
		if err != nil {
			return
		}
		if u == "" || p == "" || z+"\x00"+u+"\x00"+p != string(b) {
			t.Fatalf("parsePlain(%q) = %q %q %q", b, z, u, p)
		}
	})
}

// FuzzSASLServers drives both mechanisms with arbitrary response
// sequences: they never panic, never call login more than once, and only
// return *SMTPError errors.
func FuzzSASLServers(f *testing.F) {
	f.Add(true, []byte("\x00a\x00b"), []byte("x"), []byte("y"))
	f.Add(false, []byte("user"), []byte("pass"), []byte("more"))
	f.Add(false, []byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, plain bool, r1, r2, r3 []byte) {
		n := 0
		login := func(z, u, p string) error {
			n++
			if u == "" || p == "" {
				t.Fatalf("login with empty user or password: %q %q", u, p)
			}
			return nil
		}
		var srv interface {
			Next([]byte) ([]byte, bool, error)
		}
		if plain {
			srv = &plainServer{login: login}
		} else {
			srv = &loginServer{login: login}
		}
		for _, r := range [][]byte{nil, r1, r2, r3} {
			_, done, err := srv.Next(r)
			if err != nil {
				var se *gosmtp.SMTPError
				if !errors.As(err, &se) {
					t.Fatalf("non-SMTPError %T %v", err, err)
				}
			}
			if done {
				break
			}
		}
		if n > 1 {
			t.Fatalf("login called %d times", n)
		}
	})
}
