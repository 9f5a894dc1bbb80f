package pop3

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
	"golang.org/x/oauth2"
)

// upstreamBufSize is the upstream connection's reader size. The relay
// copies multi-line responses straight out of this buffer, so it is the
// unit of bulk transfer: 32 KiB holds two full TLS records.
const upstreamBufSize = 32 << 10

// retireTimeout bounds the polite RSET + QUIT when an upstream session is
// let go.
const retireTimeout = 5 * time.Second

// upstream is one authenticated upstream POP3 session.
type upstream struct {
	conn    net.Conn
	r       *bufio.Reader // the connection's only reader
	timeout time.Duration // wait for upstream bytes
	s       *session      // for transcripts and byte counters
	// idle is true when no command is outstanding: every response sent so
	// far has been read completely. Only then may retire send RSET and
	// QUIT, because only then is the next line it reads their answer.
	idle bool
}

var (
	errUpstreamLine     = errors.New("pop3: upstream line too long")
	errUpstreamProtocol = errors.New("pop3: unexpected upstream response")
	errNoUIDL           = errors.New("pop3: upstream refused UIDL")
)

// cutError is an upstream session lost while serving a command: EOF, a
// read or write error, a timeout, or an unsolicited close announced with
// -ERR. touched reports whether part of the response already reached the
// client (then the command cannot be replayed).
type cutError struct {
	reason  string // metrics and log word: bye, eof, timeout, error
	touched bool
	err     error
}

func (e *cutError) Error() string {
	return "pop3: upstream connection lost (" + e.reason + "): " + e.err.Error()
}

func (e *cutError) Unwrap() error { return e.err }

// newCut classifies an upstream I/O error.
func newCut(err error, touched bool) *cutError {
	reason := "error"
	var ne net.Error
	switch {
	case errors.Is(err, errUpstreamClosed):
		reason = "bye" // an -ERR announcing the end, then a close
	case errors.As(err, &ne) && ne.Timeout():
		reason = "timeout"
	case isEOF(err):
		reason = "eof"
	}
	return &cutError{reason: reason, touched: touched, err: err}
}

// errUpstreamClosed marks an -ERR that turned out to be the upstream
// ending the session (see upstreamGone).
var errUpstreamClosed = errors.New("pop3: upstream ended the session")

// connect opens an authenticated upstream session for acct, refreshing the
// token once if the upstream refuses it (proxy.AuthenticateUpstream). The
// whole exchange ends by deadline. It returns the token the session logged
// in with, whose expiry bounds the session.
func (s *session) connect(ctx context.Context, acct *proxy.Account, deadline time.Time) (*upstream, *oauth2.Token, error) {
	start := time.Now()
	var up *upstream
	src := proxy.TokenSource(acct.Tokens)
	if p := acct.Session; p.Lifetime == 0 && p.RotateBefore > 0 {
		src = freshTokens{TokenSource: src, margin: p.RotateBefore}
	}
	tok, err := proxy.AuthenticateUpstream(ctx, src, func(token string) error {
		u, err := s.dialLogin(ctx, acct, token, deadline)
		up = u
		return err
	})
	s.srv.Metrics.UpstreamConnect("pop3", time.Since(start), err == nil)
	if err != nil {
		return nil, nil, err
	}
	return up, tok, nil
}

// freshTokens is the account's token source for a session whose end is
// its token's expiry: a token that expires within margin (the rotation
// margin) would make the session due for rotation at once, so it is
// refreshed first. A failed refresh falls back to the token in hand,
// which is still valid.
type freshTokens struct {
	proxy.TokenSource
	margin time.Duration
}

func (f freshTokens) Token(ctx context.Context) (*oauth2.Token, error) {
	tok, err := f.TokenSource.Token(ctx)
	if err != nil || tok.Expiry.IsZero() || time.Until(tok.Expiry) > f.margin {
		return tok, err
	}
	if fresh, err := f.TokenSource.ForceRefresh(ctx, tok.AccessToken); err == nil {
		return fresh, nil
	}
	return tok, nil
}

// dialLogin connects to acct.POP3, reads the greeting, upgrades with STLS
// for a STARTTLS endpoint, and logs in with XOAUTH2 and token. On any
// failure the connection is closed.
func (s *session) dialLogin(ctx context.Context, acct *proxy.Account, token string, deadline time.Time) (*upstream, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	d := s.srv.dialer()
	ep := acct.POP3
	conn, err := d.DialEndpoint(ctx, ep)
	if err != nil {
		return nil, err
	}
	u := &upstream{conn: conn, r: bufio.NewReaderSize(conn, upstreamBufSize), timeout: s.srv.upstreamTimeout(), s: s}
	// One deadline for the whole handshake (config timeouts.upstream).
	conn.SetDeadline(deadline)
	if err := u.handshake(ctx, d, ep, acct.UpstreamUser, token); err != nil {
		u.conn.Close()
		return nil, err
	}
	u.conn.SetDeadline(time.Time{})
	u.idle = true
	return u, nil
}

func (u *upstream) handshake(ctx context.Context, d *proxy.Dialer, ep proxy.Endpoint, user, token string) error {
	line, err := u.readLine()
	if err != nil {
		return fmt.Errorf("pop3: upstream greeting: %w", err)
	}
	if !isOK(line) {
		return fmt.Errorf("pop3: upstream greeting %q: %w", truncate(line), errUpstreamProtocol)
	}
	if ep.TLS == proxy.UpstreamStartTLS {
		if err := u.stls(ctx, d, ep); err != nil {
			return err
		}
	}
	return u.authXOAuth2(user, token)
}

// stls upgrades the connection (RFC 2595 §4). Nothing may be buffered
// from before the upgrade: plaintext bytes after "+OK" would be a
// response injected by someone on the path.
func (u *upstream) stls(ctx context.Context, d *proxy.Dialer, ep proxy.Endpoint) error {
	if err := u.send([]byte("STLS")); err != nil {
		return fmt.Errorf("pop3: upstream STLS: %w", err)
	}
	line, err := u.readLine()
	if err != nil {
		return fmt.Errorf("pop3: upstream STLS: %w", err)
	}
	if !isOK(line) {
		return fmt.Errorf("pop3: upstream refused STLS: %q: %w", truncate(line), errUpstreamProtocol)
	}
	if u.r.Buffered() > 0 {
		return fmt.Errorf("pop3: upstream sent data after STLS: %w", errUpstreamProtocol)
	}
	tc, err := d.UpgradeTLS(ctx, u.conn, ep)
	if err != nil {
		return err
	}
	u.conn = tc
	u.r.Reset(tc)
	return nil
}

// authXOAuth2 logs in with SASL XOAUTH2 (RFC 5034 framing), always in the
// two-step form: "AUTH XOAUTH2", the server's "+ ", then the response on
// its own line. The one-line form "AUTH XOAUTH2 <initial response>" would
// have to fit the 255-octet command limit of RFC 2449 §4, which no real
// token does (Microsoft requires the two-step form), and servers holding
// arguments to RFC 1939's 40 characters refuse it even then; RFC 5034 §4
// obliges every server to accept the two-step form. A failing server
// (Gmail) then sends a challenge with a base64 JSON error, which is
// answered with an empty line before the final -ERR (FACTS.md).
func (u *upstream) authXOAuth2(user, token string) error {
	ir := base64.StdEncoding.EncodeToString(proxy.XOAuth2Payload(user, token))
	if err := u.send([]byte("AUTH XOAUTH2")); err != nil {
		return fmt.Errorf("pop3: upstream AUTH: %w", err)
	}
	line, err := u.readLine()
	if err != nil {
		return fmt.Errorf("pop3: upstream AUTH: %w", err)
	}
	if !isContinuation(line) {
		return u.authFailure(nil, line)
	}
	if err := u.sendSecret(ir); err != nil {
		return fmt.Errorf("pop3: upstream AUTH: %w", err)
	}
	if line, err = u.readLine(); err != nil {
		return fmt.Errorf("pop3: upstream AUTH: %w", err)
	}
	var challenge []byte
	if isContinuation(line) {
		challenge, _ = base64.StdEncoding.DecodeString(string(bytes.TrimSpace(line[1:])))
		if err := u.send(nil); err != nil {
			return fmt.Errorf("pop3: upstream AUTH: %w", err)
		}
		if line, err = u.readLine(); err != nil {
			return fmt.Errorf("pop3: upstream AUTH: %w", err)
		}
	}
	if isOK(line) {
		return nil
	}
	return u.authFailure(challenge, line)
}

// authFailure turns the upstream's refusal into an error proxy.Classify
// understands. RFC 2449 §8 / RFC 3206 codes say when the refusal is not
// about the token: [IN-USE] (the maildrop is locked by another session)
// and [SYS/TEMP] or [LOGIN-DELAY] (try later) must not make the bridge
// blame the OAuth grant.
func (u *upstream) authFailure(challenge, line []byte) error {
	if !isERR(line) {
		return fmt.Errorf("pop3: upstream AUTH reply %q: %w", truncate(line), errUpstreamProtocol)
	}
	text := string(replyText(line))
	switch code := respCodeOf(line); {
	case strings.EqualFold(code, "IN-USE"):
		return fmt.Errorf("pop3: upstream maildrop in use: %s: %w", text, proxy.ErrTooManySessions)
	case strings.EqualFold(code, "SYS/TEMP"), strings.EqualFold(code, "LOGIN-DELAY"):
		return fmt.Errorf("pop3: upstream login failed temporarily: %s", text)
	}
	return proxy.NewAuthError(challenge, text)
}

// send writes one command line (CRLF appended) with the write deadline.
// The transcript masks XOAUTH2 material should a caller ever pass some.
func (u *upstream) send(line []byte) error {
	if u.s.debug {
		u.s.trace("U>", string(proxy.RedactXOAUTH2(line)))
	}
	return u.write(line)
}

// sendSecret is send for a line that is a credential (the XOAUTH2
// response): the transcript shows proxy.Redacted, whatever it looks like.
func (u *upstream) sendSecret(line string) error {
	if u.s.debug {
		u.s.trace("U>", proxy.Redacted)
	}
	return u.write([]byte(line))
}

func (u *upstream) write(line []byte) error {
	b := make([]byte, 0, len(line)+2)
	b = append(append(b, line...), "\r\n"...)
	u.conn.SetWriteDeadline(time.Now().Add(u.timeout))
	u.idle = false
	n, err := u.conn.Write(b)
	if u.s.acct != nil {
		u.s.bytesUp += int64(n)
		metrics.AddBytes(u.s.toUp, n)
	}
	return err
}

// readLine reads and consumes one line (without its terminator).
func (u *upstream) readLine() ([]byte, error) {
	line, err := u.readLineQuiet()
	if err == nil && u.s.debug {
		u.s.trace("U<", string(line))
	}
	return line, err
}

// readLineQuiet is readLine without the transcript, for listing bodies.
func (u *upstream) readLineQuiet() ([]byte, error) {
	u.conn.SetReadDeadline(time.Now().Add(u.timeout))
	line, err := u.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxUpstreamLine {
		return nil, errUpstreamLine
	}
	if err != nil {
		return nil, err
	}
	return trimEOL(line), nil
}

// peekLine waits until a whole line is buffered and returns it with its
// terminator, without consuming it: the relay forwards it from the buffer
// together with the data behind it.
func (u *upstream) peekLine() ([]byte, error) {
	u.conn.SetReadDeadline(time.Now().Add(u.timeout))
	for {
		buf, _ := u.r.Peek(u.r.Buffered())
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			if i >= maxUpstreamLine {
				return nil, errUpstreamLine
			}
			if u.s.debug {
				u.s.trace("U<", string(trimEOL(buf[:i+1])))
			}
			return buf[:i+1], nil
		}
		if len(buf) >= maxUpstreamLine {
			return nil, errUpstreamLine
		}
		if _, err := u.r.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// readMulti reads the body of a multi-line response (after its +OK) up to
// the terminating ".", undoing dot-stuffing. At most max lines are kept;
// more is an error (a listing that large is not one the bridge can hold).
func (u *upstream) readMulti(max int) ([][]byte, error) {
	var lines [][]byte
	for {
		line, err := u.readLineQuiet()
		if err != nil {
			return nil, err
		}
		if len(line) == 1 && line[0] == '.' {
			u.idle = true
			return lines, nil
		}
		if len(lines) >= max {
			return nil, fmt.Errorf("pop3: upstream listing longer than %d lines: %w", max, errUpstreamProtocol)
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		lines = append(lines, append([]byte(nil), line...))
	}
}

// simple sends a command expecting a single-line answer and reports
// whether it was +OK; a -ERR is not an error.
func (u *upstream) simple(line []byte) (ok bool, reply []byte, err error) {
	if err := u.send(line); err != nil {
		return false, nil, err
	}
	reply, err = u.readLine()
	if err != nil {
		return false, nil, err
	}
	u.idle = true
	// A copy: the reader's buffer moves on with the next read.
	return isOK(reply), bytes.Clone(reply), nil
}

// errGraceClose is how long the bridge waits, after an unexpected -ERR,
// for the upstream to close the connection. Servers that end a session
// say so with an -ERR and close at once (Dovecot: "-ERR [SYS/TEMP] Server
// shutting down."), and an -ERR that was sitting in the socket when a
// command went out reads like that command's answer.
const errGraceClose = 50 * time.Millisecond

// ended reports whether the -ERR status line is the upstream ending the
// session: it carries [SYS/TEMP] (RFC 3206, how servers announce a
// shutdown; not [SYS/PERM], which Gmail-like servers use for "no such
// message"), or, for a command that should have succeeded (unexpected),
// the connection closes within errGraceClose.
func (u *upstream) ended(status []byte, unexpected bool) bool {
	if respCodeOf(status) == "SYS/TEMP" {
		return true
	}
	return unexpected && u.closedWithin(errGraceClose)
}

// closedWithin reports whether the upstream closes the connection (or
// sends anything at all) within d, with the current response still
// unconsumed in the buffer. A live POP3 server sends nothing unasked, so
// either means the session is over.
func (u *upstream) closedWithin(d time.Duration) bool {
	u.conn.SetReadDeadline(time.Now().Add(d))
	_, err := u.r.Peek(u.r.Buffered() + 1)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// close drops the connection: a POP3 session that ends without QUIT never
// enters the UPDATE state, so nothing is deleted (RFC 1939 §6).
func (u *upstream) close() { u.conn.Close() }

// retire ends a session politely without committing anything: RSET
// unmarks every DELE, then QUIT releases the maildrop lock at once rather
// than when the server notices the dead connection. QUIT is sent only
// after RSET was confirmed, and only when the upstream is between
// commands; otherwise the connection is just closed (which commits
// nothing either).
func (u *upstream) retire() {
	defer u.conn.Close()
	if !u.idle {
		return
	}
	u.timeout = retireTimeout
	if ok, _, err := u.simple([]byte("RSET")); err != nil || !ok {
		return
	}
	u.simple([]byte("QUIT"))
}

// Status line helpers (RFC 1939 §3: "+OK" or "-ERR", then optional text).

func isOK(line []byte) bool  { return hasStatus(line, "+OK") }
func isERR(line []byte) bool { return hasStatus(line, "-ERR") }

func hasStatus(line []byte, st string) bool {
	if len(line) < len(st) || !bytes.EqualFold(line[:len(st)], []byte(st)) {
		return false
	}
	rest := line[len(st):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\r' || rest[0] == '\n'
}

// isContinuation reports an RFC 5034 server challenge: "+" SP [base64].
func isContinuation(line []byte) bool {
	return len(line) > 0 && line[0] == '+' && !isOK(line)
}

// replyText is a status line's text after "+OK " / "-ERR ".
func replyText(line []byte) []byte {
	line = trimEOL(line)
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		return line[i+1:]
	}
	return nil
}

// respCodeOf returns the RFC 2449 §8 response code of a status line
// ("-ERR [IN-USE] ..." gives "IN-USE"), or "".
func respCodeOf(line []byte) string {
	t := replyText(line)
	if len(t) == 0 || t[0] != '[' {
		return ""
	}
	end := bytes.IndexByte(t, ']')
	if end < 0 {
		return ""
	}
	return string(t[1:end])
}

// truncate shortens an upstream line for an error message.
func truncate(b []byte) string {
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

func isEOF(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
