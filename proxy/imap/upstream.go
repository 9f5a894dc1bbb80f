package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// upstream is one connection to the account's IMAP server. Its reader is
// owned by one goroutine at a time: the handshake, then the session's
// upstream loop. Writers take wmu.
type upstream struct {
	conn net.Conn
	br   *connReader
	addr string

	wmu sync.Mutex // guards bw
	bw  *connWriter

	caps    upstreamCaps // after login
	capLine []byte       // after login, filtered, for clients
	token   *oauth2.Token
	loginAt time.Time

	scratch []byte // long-line buffer of the reading goroutine
	tagN    atomic.Uint64

	// retired is set when a rotation replaced this connection: whatever it
	// still sends is dropped, and its end starts no resume.
	retired  atomic.Bool
	dead     chan struct{} // closed when its reader has stopped
	deadOnce sync.Once

	closeOnce sync.Once
}

func (u *upstream) markDead() { u.deadOnce.Do(func() { close(u.dead) }) }

func (u *upstream) isDead() bool {
	select {
	case <-u.dead:
		return true
	default:
		return false
	}
}

// Tags of the bridge's own commands start with tagPrefix. A client tag with
// this prefix is refused (BAD) so replies can never be misrouted.
const tagPrefix = "_ob"

func (u *upstream) nextTag() string {
	return tagPrefix + strconv.FormatUint(u.tagN.Add(1), 10)
}

func (u *upstream) close() {
	u.closeOnce.Do(func() { u.conn.Close() })
}

// write sends p and flushes, under wmu.
func (u *upstream) write(p []byte) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	u.bw.Write(p)
	return u.bw.Flush()
}

// handshakeError is a protocol failure during connect/login that is not an
// authentication refusal (greeting BYE, no XOAUTH2, garbage).
type handshakeError struct{ msg string }

func (e *handshakeError) Error() string { return "imap: upstream handshake: " + e.msg }

// dialUpstream connects to the account's IMAP endpoint and logs in with
// XOAUTH2, refreshing the token once if the upstream rejects it.
func dialUpstream(ctx context.Context, d *proxy.Dialer, acct *proxy.Account) (*upstream, error) {
	if d == nil {
		d = &proxy.Dialer{}
	}
	conn, err := d.DialEndpoint(ctx, acct.IMAP)
	if err != nil {
		return nil, err
	}
	u := &upstream{
		conn: conn,
		addr: acct.IMAP.Addr,
		br:   newConnReader(conn),
		bw:   newConnWriter(conn),
		dead: make(chan struct{}),
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := u.login(ctx, d, acct); err != nil {
		u.close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return u, nil
}

func (u *upstream) login(ctx context.Context, d *proxy.Dialer, acct *proxy.Account) error {
	greeting, err := u.readSimpleLine()
	if err != nil {
		return fmt.Errorf("imap: upstream greeting: %w", err)
	}
	var caps []byte
	switch {
	case hasPrefixFold(greeting, "* OK"):
		caps = capsFromCode(greeting)
	case hasPrefixFold(greeting, "* BYE"):
		return &handshakeError{"server refused the connection: " + string(trimEOL(greeting))}
	default:
		return &handshakeError{fmt.Sprintf("unexpected greeting %q", trimEOL(greeting))}
	}
	if acct.IMAP.TLS == proxy.UpstreamStartTLS {
		if _, _, err := u.simpleCommand("STARTTLS"); err != nil {
			return err
		}
		tc, err := d.UpgradeTLS(ctx, u.conn, acct.IMAP)
		if err != nil {
			return err
		}
		u.conn = tc
		u.br.Reset(tc)
		u.bw.Reset(tc)
		caps = nil // RFC 3501 §6.2.1: capabilities may differ after TLS
	}
	// Without capabilities in the greeting (Gmail sends none) the bridge
	// does not spend a round trip asking: it sends AUTHENTICATE with the
	// initial response (RFC 4959), which Gmail, Microsoft and Dovecot all
	// take, and falls back to asking when the server says BAD.
	saslIR, guessed := true, caps == nil
	if !guessed {
		saslIR = parseCaps(caps)["SASL-IR"]
	}
	var postCaps []byte
	tok, err := proxy.AuthenticateUpstream(ctx, acct.Tokens, func(token string) error {
		c, err := u.xoauth2(acct.UpstreamUser, token, saslIR)
		if errors.Is(err, errSASLIRRefused) && guessed {
			guessed = false
			if c, _, err = u.simpleCommand("CAPABILITY"); err != nil {
				return err
			}
			saslIR = parseCaps(c)["SASL-IR"]
			c, err = u.xoauth2(acct.UpstreamUser, token, saslIR)
		}
		postCaps = c
		return err
	})
	if err != nil {
		return err
	}
	if postCaps == nil {
		if postCaps, _, err = u.simpleCommand("CAPABILITY"); err != nil {
			return err
		}
	}
	u.token = tok
	u.loginAt = time.Now()
	pc := parseCaps(postCaps)
	u.caps = upstreamCaps{enable: pc["ENABLE"], condstore: pc["CONDSTORE"]}
	u.capLine = filterCaps(postCaps)
	return nil
}

// upstreamCaps is what the bridge itself needs to know of an upstream's
// capabilities after login.
type upstreamCaps struct {
	enable    bool // RFC 5161
	condstore bool // RFC 7162
}

// errSASLIRRefused: the server answered an AUTHENTICATE with an initial
// response with BAD (it does not do RFC 4959).
var errSASLIRRefused = errors.New("imap: upstream refused SASL-IR")

// xoauth2 runs AUTHENTICATE XOAUTH2 and returns the capability list the
// server sent with its OK, if any. A refusal is a *proxy.AuthError. The
// failure challenge is answered with an empty line (FACTS.md: Gmail waits
// for it before its NO).
func (u *upstream) xoauth2(user, token string, saslIR bool) ([]byte, error) {
	sc := &proxy.XOAuth2{User: user, Token: token}
	_, ir, _ := sc.Start()
	payload := base64.StdEncoding.EncodeToString(ir)
	tag := u.nextTag()
	var cmd []byte
	if saslIR {
		cmd = fmt.Appendf(nil, "%s AUTHENTICATE XOAUTH2 %s\r\n", tag, payload)
	} else {
		cmd = fmt.Appendf(nil, "%s AUTHENTICATE XOAUTH2\r\n", tag)
	}
	if err := u.write(cmd); err != nil {
		return nil, err
	}
	sentIR := saslIR
	var caps []byte
	for {
		line, err := u.readSimpleLine()
		if err != nil {
			return nil, fmt.Errorf("imap: upstream AUTHENTICATE: %w", err)
		}
		switch {
		case line[0] == '+':
			if !sentIR {
				sentIR = true
				if err := u.write(append([]byte(payload), '\r', '\n')); err != nil {
					return nil, err
				}
				continue
			}
			ch, _ := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(line[1:])))
			resp, _ := sc.Next(ch)
			enc := base64.StdEncoding.EncodeToString(resp)
			if err := u.write(append([]byte(enc), '\r', '\n')); err != nil {
				return nil, err
			}
		case line[0] == '*':
			if c := untaggedCaps(line); c != nil {
				caps = append([]byte(nil), c...)
			}
		default:
			t, rest := splitWord(trimEOL(line))
			if string(t) != tag {
				continue
			}
			status, text := splitWord(rest)
			if hasPrefixFold(status, "OK") && len(status) == 2 {
				if c := capsFromCode(text); c != nil {
					caps = append([]byte(nil), c...)
				}
				return caps, nil
			}
			if saslIR && sc.Challenge == nil && hasPrefixFold(status, "BAD") && len(status) == 3 {
				return nil, errSASLIRRefused
			}
			return nil, proxy.NewAuthError(sc.Challenge, string(rest))
		}
	}
}

// untaggedCaps returns the list of a "* CAPABILITY ..." line, or nil.
func untaggedCaps(line []byte) []byte {
	body := trimEOL(line)
	const p = "* CAPABILITY "
	if len(body) >= len(p) && hasPrefixFold(body, p) {
		return body[len(p):]
	}
	return nil
}

// simpleCommand sends "TAG name" and reads to its tagged response. It
// returns the capability list seen (untagged CAPABILITY or a code) and the
// tagged line. A NO or BAD is a handshakeError.
func (u *upstream) simpleCommand(name string) (caps, tagged []byte, err error) {
	tag := u.nextTag()
	if err := u.write([]byte(tag + " " + name + "\r\n")); err != nil {
		return nil, nil, err
	}
	for {
		line, err := u.readSimpleLine()
		if err != nil {
			return nil, nil, fmt.Errorf("imap: upstream %s: %w", name, err)
		}
		if c := untaggedCaps(line); c != nil {
			caps = append([]byte(nil), c...)
			continue
		}
		t, rest := splitWord(trimEOL(line))
		if string(t) != tag {
			continue
		}
		status, text := splitWord(rest)
		if !(len(status) == 2 && hasPrefixFold(status, "OK")) {
			return nil, nil, &handshakeError{fmt.Sprintf("%s refused: %s", name, rest)}
		}
		if c := capsFromCode(text); c != nil {
			caps = append([]byte(nil), c...)
		}
		return caps, append([]byte(nil), line...), nil
	}
}

// readSimpleLine reads a response line during the handshake, skipping over
// any literal it announces (none are expected before login).
func (u *upstream) readSimpleLine() ([]byte, error) {
	line, err := readLine(u.br, maxUpstreamLine, &u.scratch)
	if err != nil {
		return nil, err
	}
	if len(trimEOL(line)) == 0 {
		return nil, &handshakeError{"empty line"}
	}
	lit, ok, err := parseLiteral(line)
	if err != nil {
		return nil, err
	}
	if ok {
		line = append([]byte(nil), line...)
		if _, err := io.CopyN(io.Discard, u.br, lit.size); err != nil {
			return nil, err
		}
		rest, err := u.readSimpleLine()
		if err != nil {
			return nil, err
		}
		line = append(line, rest...)
	}
	return line, nil
}

// maxUpstreamLine bounds one upstream response line (literals excluded):
// a "* SEARCH" of a few million UIDs fits, a hostile server cannot make
// the bridge buffer without limit.
const maxUpstreamLine = 32 << 20

var errUpstreamClosed = errors.New("imap: upstream connection closed")
