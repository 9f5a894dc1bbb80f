package imap

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// bytesConn is a net.Conn that reads from a fixed input and discards
// writes: a peer whose every byte is chosen by the fuzzer.
type bytesConn struct {
	r io.Reader
	w bytes.Buffer
}

func (c *bytesConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error)        { return c.w.Write(p) }
func (c *bytesConn) Close() error                       { return nil }
func (c *bytesConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *bytesConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *bytesConn) SetDeadline(t time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzPreauth runs the whole pre-auth dialogue over client bytes: the
// command framer (lines, literals), tags, LOGIN/AUTHENTICATE arguments and
// SASL decoding. It must never panic or hang.
func FuzzPreauth(f *testing.F) {
	for _, s := range []string{
		"a CAPABILITY\r\nb NOOP\r\nc LOGOUT\r\n",
		"a LOGIN alice secret\r\n",
		"a LOGIN \"al\\\"ice\" {6}\r\nsecret\r\n",
		"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n",
		"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
		"a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n",
		"a AUTHENTICATE LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n",
		"a AUTHENTICATE PLAIN\r\n*\r\n",
		"a LOGIN {99999999999999}\r\n",
		"a LOGIN ~{3}\r\nabc x\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"a ID (\"name\" NIL)\r\na STARTTLS\r\n",
	} {
		f.Add([]byte(s))
	}
	auth := proxytest.NewAuthenticator()
	srv := &Server{Auth: auth, Logger: quietLogger(), LoginTimeout: time.Second}
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &bytesConn{r: bytes.NewReader(in)}
		pc := &proxy.Conn{Conn: conn, Remote: netip.MustParseAddr("127.0.0.1"), Listener: &proxy.ListenerInfo{Protocol: "imap", Loopback: true}}
		cl := newClientConn(pc, time.Second)
		lg, err := srv.preauth(context.Background(), cl, quietLogger())
		if lg != nil || err == nil {
			t.Fatalf("pre-auth ended with a login (%v) or without an error on fuzz input", lg)
		}
	})
}

// FuzzUpstreamResponses feeds upstream bytes through the relay with a
// selected mailbox, lagging or not: framing, literals, tracking of
// EXISTS/EXPUNGE/FETCH, translation, capability filtering.
func FuzzUpstreamResponses(f *testing.F) {
	for _, s := range []string{
		"* 3 EXISTS\r\n* 1 EXPUNGE\r\n* 2 FETCH (UID 9 FLAGS (\\Seen))\r\n",
		"* 1 FETCH (BODY[] {5}\r\nhello UID 4)\r\n",
		"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2 COMPRESS=DEFLATE IDLE\r\n",
		"* OK [UIDVALIDITY 7] x\r\n* SEARCH 4 5 6 (MODSEQ 9)\r\n",
		"+ idling\r\n* BYE bye\r\n",
		"a1 OK [CAPABILITY IMAP4rev1 STARTTLS] done\r\n",
		"* 4294967295 EXISTS\r\n",
		"* 0 EXPUNGE\r\n* 99 FETCH (UID 1)\r\n",
		"* 1 FETCH (BODY[] {99999999999}\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, lag bool) {
		cconn := &bytesConn{r: bytes.NewReader(nil)}
		pc := &proxy.Conn{Conn: cconn, Listener: &proxy.ListenerInfo{Protocol: "imap"}}
		uconn := &bytesConn{r: bytes.NewReader(in)}
		u := &upstream{conn: uconn, br: newConnReader(uconn), bw: newConnWriter(uconn), dead: make(chan struct{})}
		lg := &login{acct: &proxy.Account{Name: "fuzz"}, up: u, release: func() {}}
		s := newSession(&Server{Logger: quietLogger()}, newClientConn(pc, time.Second), lg, quietLogger())
		s.learning = true // no background tasks in a fuzz run
		s.mbox = &mailbox{uidValidity: 7, up: []uint32{2, 4, 6, 8}}
		if lag {
			s.mbox.cl = []uint32{2, 3, 4, 6, 8}
		}
		s.inflight = []*command{{tag: "a1", name: "SEARCH", class: classify("SEARCH"), translated: lag}}
		s.readResponses(u)
	})
}

// FuzzTranslate covers the pure parsers of the lagging-view translation.
func FuzzTranslate(f *testing.F) {
	f.Add([]byte("1:3,5,7:*"), []byte("CHARSET UTF-8 OR (1:2 UNSEEN) HEADER X y MODSEQ \"/flags/\\\\draft\" all 5"))
	f.Add([]byte("*"), []byte("NOT 3 LARGER 100"))
	f.Fuzz(func(t *testing.T, set, crit []byte) {
		m := &mailbox{up: []uint32{1, 5, 9}, cl: []uint32{1, 3, 5, 9}}
		if r, ok := parseSeqSet(set); ok {
			uidSetFor(m, r)
		}
		translateSearch(m, crit)
		translateCommand(m, "t", "FETCH", append(append([]byte{}, set...), " (FLAGS)"...))
		fetchUID(crit)
		translateSearchResult(m, append([]byte("* SEARCH "), crit...))
		rewriteCapabilityCode(crit)
		rewriteEnable(append([]byte("t ENABLE "), crit...))
	})
}
