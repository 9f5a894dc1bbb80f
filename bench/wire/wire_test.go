package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestLiteralSize(t *testing.T) {
	tests := []struct {
		line string
		n    int64
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {52428800}", 52428800, true},
		{"* 1 FETCH (BODY[] {0}", 0, true},
		{"a LOGIN {5+}", 5, true},
		{"* OK done", 0, false},
		{"* 1 FETCH (X {})", 0, false},
		{"{}", 0, false},
		{"* {12a}", 0, false},
		{"* {1234567890123}", 0, false}, // more than 12 digits
		{"}", 0, false},
		{"x{+}", 0, false},
	}
	for _, tt := range tests {
		n, ok := LiteralSize([]byte(tt.line))
		if n != tt.n || ok != tt.ok {
			t.Errorf("LiteralSize(%q) = %d, %v; want %d, %v", tt.line, n, ok, tt.n, tt.ok)
		}
	}
}

// scripted serves one IMAP connection: a greeting, then for each command
// line read the next canned response. It returns the client address.
func scripted(t *testing.T, greeting string, responses ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, greeting)
		r := bufio.NewReader(c)
		for _, resp := range responses {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			io.WriteString(c, resp)
		}
		io.Copy(io.Discard, r)
	}()
	return ln.Addr().String()
}

func TestIMAPDo(t *testing.T) {
	big := strings.Repeat("x", 10000)
	addr := scripted(t, "* OK ready\r\n",
		// Two literals in one response, an untagged line longer than the
		// client's buffer, then OK.
		"* 1 FETCH (BODY[HEADER] {5}\r\nhello BODY[] {11}\r\nhello world)\r\n* "+big+"\r\nt1 OK done\r\n",
		"* SEARCH 1 2 3\r\nt2 OK SEARCH completed\r\n",
		"t3 NO [NONEXISTENT] no such mailbox\r\n",
		"t4 BAD syntax\r\n",
		"* BYE going away\r\nt5 OK\r\n",
	)
	c, err := DialIMAP(addr, nil, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var lines []string
	res, err := c.Do("UID FETCH 1 (BODY[HEADER] BODY[])", func(l []byte) { lines = append(lines, string(l)) })
	if err != nil {
		t.Fatal(err)
	}
	if res.LiteralBytes != 16 || res.Untagged != 2 || len(lines) != 2 || lines[0] != "* 1 FETCH (BODY[HEADER] {5}" || lines[1] != "* "+big {
		t.Fatalf("res %+v, lines %q", res, lines)
	}
	var uids []string
	if _, err := c.Do("UID SEARCH ALL", func(l []byte) { uids = strings.Fields(string(l))[2:] }); err != nil || strings.Join(uids, ",") != "1,2,3" {
		t.Fatalf("search: %v %v", uids, err)
	}
	if _, err := c.Do("SELECT nope", nil); !errors.Is(err, ErrNo) {
		t.Errorf("NO: got %v", err)
	}
	if _, err := c.Do("X", nil); !errors.Is(err, ErrBad) {
		t.Errorf("BAD: got %v", err)
	}
	if _, err := c.Do("NOOP", nil); !errors.Is(err, ErrBye) {
		t.Errorf("BYE: got %v", err)
	}
}

func TestIMAPLogoutAndGreeting(t *testing.T) {
	addr := scripted(t, "* OK ready\r\n", "* BYE logging out\r\nt1 OK LOGOUT completed\r\n")
	c, err := DialIMAP(addr, nil, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Logout(); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if _, err := DialIMAP(scripted(t, "* BYE too many\r\n"), nil, 4096); !errors.Is(err, ErrProtocol) {
		t.Fatalf("BYE greeting: got %v", err)
	}
}

func TestIMAPAuthXOAuth2Failure(t *testing.T) {
	// Gmail's failure: an error challenge, answered by an empty line, then NO.
	addr := scripted(t, "* OK Gimap ready\r\n", "+ eyJzdGF0dXMiOiI0MDAifQ==\r\n", "t1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")
	c, err := DialIMAP(addr, nil, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.AuthXOAuth2("alice@bench.test", "bad"); !errors.Is(err, ErrNo) {
		t.Fatalf("got %v, want a NO", err)
	}
}

func TestQuote(t *testing.T) {
	if got := Quote(`a"b\c`); got != `"a\"b\\c"` {
		t.Fatalf("Quote = %s", got)
	}
}

// drainReference finds the end of a multi-line body line by line, the
// obvious way.
func drainReference(body []byte) (int64, bool) {
	var n int64
	for len(body) > 0 {
		i := bytes.Index(body, []byte("\r\n"))
		if i < 0 {
			return 0, false
		}
		n += int64(i + 2)
		if i == 1 && body[0] == '.' {
			return n, true
		}
		body = body[i+2:]
	}
	return 0, false
}

func TestDrainMultiline(t *testing.T) {
	bodies := []string{
		".\r\n",
		"line\r\n.\r\n",
		"..stuffed\r\nx\r\n.\r\nNEXT",
		"a\r\n.x\r\n..\r\n.\r\n+OK after",
		strings.Repeat("0123456789abcdef\r\n", 1000) + ".\r\n",
	}
	for _, b := range bodies {
		want, _ := drainReference([]byte(b))
		for _, size := range []int{16, 4096} {
			for name, r := range map[string]io.Reader{
				"bulk":    strings.NewReader(b),
				"onebyte": iotest.OneByteReader(strings.NewReader(b)),
				"half":    iotest.HalfReader(strings.NewReader(b)),
			} {
				br := bufio.NewReaderSize(r, size)
				got, err := DrainMultiline(br)
				if err != nil || got != want {
					t.Errorf("%s/%d %q: got %d, %v; want %d", name, size, b[:min(len(b), 20)], got, err, want)
				}
				rest, _ := io.ReadAll(br)
				if string(rest) != b[want:] {
					t.Errorf("%s/%d: left %q, want %q", name, size, rest, b[want:])
				}
			}
		}
	}
	if _, err := DrainMultiline(bufio.NewReader(strings.NewReader("no end\r\n"))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated body: %v", err)
	}
}

// FuzzDrainMultiline checks the bulk scanner against the line-by-line
// reference on arbitrary bytes and read sizes.
func FuzzDrainMultiline(f *testing.F) {
	f.Add([]byte("a\r\n.\r\n"), uint8(0))
	f.Add([]byte("..\r\n.\r\n\r\n.\r\n"), uint8(3))
	f.Add([]byte("\r\n.\r"), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		want, ok := drainReference(body)
		var r io.Reader = bytes.NewReader(body)
		if mode%2 == 1 {
			r = iotest.OneByteReader(r)
		}
		got, err := DrainMultiline(bufio.NewReaderSize(r, 16+int(mode)))
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("got %d, %v; reference %d, %v", got, err, want, ok)
		}
	})
}

// FuzzIMAPResponse feeds arbitrary server bytes to Do: it must return
// (an error or a result), never panic or hang.
func FuzzIMAPResponse(f *testing.F) {
	f.Add([]byte("* 1 FETCH (BODY[] {3}\r\nabc)\r\nt1 OK\r\n"))
	f.Add([]byte("* {99999999}\r\nshort"))
	f.Add([]byte("t1 BAD\r\n"))
	f.Fuzz(func(t *testing.T, resp []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer server.Close()
			io.WriteString(server, "* OK\r\n")
			bufio.NewReader(server).ReadString('\n')
			server.Write(resp)
		}()
		defer func() { client.Close(); <-done }()
		c, err := dialConn(client, 32)
		if err != nil {
			return
		}
		c.Timeout = 5 * time.Second
		c.Do("NOOP", nil)
	})
}
