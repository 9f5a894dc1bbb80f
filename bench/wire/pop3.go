package wire

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// POP3 is one POP3 connection, one command at a time. Multi-line bodies
// are scanned in bulk for their terminator and counted, never stored.
type POP3 struct {
	conn    net.Conn
	r       *bufio.Reader
	Timeout time.Duration
}

// ErrERR is a "-ERR" reply.
var ErrERR = errors.New("wire: -ERR reply")

// DialPOP3 connects (with TLS when cfg is not nil) and reads the "+OK"
// greeting.
func DialPOP3(addr string, cfg *tls.Config, bufSize int) (*POP3, error) {
	conn, err := dial(addr, cfg)
	if err != nil {
		return nil, err
	}
	c := &POP3{conn: conn, r: bufio.NewReaderSize(conn, bufSize)}
	c.conn.SetDeadline(time.Now().Add(c.timeout()))
	if _, err := c.status(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("wire: pop3 greeting from %s: %w", addr, err)
	}
	return c, nil
}

func (c *POP3) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Close closes the connection at once.
func (c *POP3) Close() error { return c.conn.Close() }

// Cmd sends line and reads a one-line status reply, returning its text.
func (c *POP3) Cmd(line string) (string, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout()))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		return "", err
	}
	return c.status()
}

func (c *POP3) status() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	switch {
	case len(l) >= 3 && l[:3] == "+OK":
		return l, nil
	case len(l) >= 1 && l[0] == '+':
		return l, nil // continuation ("+ " challenge)
	case len(l) >= 4 && l[:4] == "-ERR":
		return l, fmt.Errorf("%w: %q", ErrERR, l)
	}
	return l, fmt.Errorf("%w: %q", ErrProtocol, l)
}

// Login runs USER and PASS.
func (c *POP3) Login(user, password string) error {
	if _, err := c.Cmd("USER " + user); err != nil {
		return err
	}
	_, err := c.Cmd("PASS " + password)
	return err
}

// AuthXOAuth2 runs AUTH XOAUTH2 in the two-step form (RFC 5034 §4; the
// one-line form would exceed RFC 2449's 255-octet command limit with a
// real token). A failure's challenge is answered with an empty line.
func (c *POP3) AuthXOAuth2(user, token string) error {
	l, err := c.Cmd("AUTH XOAUTH2")
	if err != nil {
		return err
	}
	if len(l) < 1 || l[0] != '+' || (len(l) >= 3 && l[:3] == "+OK") {
		return fmt.Errorf("%w: AUTH XOAUTH2: %q", ErrProtocol, l)
	}
	l, err = c.Cmd(base64.StdEncoding.EncodeToString(XOAuth2(user, token)))
	if err == nil && l[:3] != "+OK" {
		_, err = c.Cmd("") // the error challenge; the -ERR follows
		if err == nil {
			err = fmt.Errorf("%w: XOAUTH2 not accepted", ErrProtocol)
		}
	}
	return err
}

// Retr runs RETR n and returns the octets of the body through its
// terminating ".CRLF".
func (c *POP3) Retr(n int) (int64, error) {
	if _, err := c.Cmd(fmt.Sprintf("RETR %d", n)); err != nil {
		return 0, err
	}
	return DrainMultiline(c.r)
}

var terminator = []byte("\r\n.\r\n")

// DrainMultiline consumes a multi-line body (RFC 1939 §3) whose status
// line was already read, through its terminator, and returns its length
// including the terminator. It looks at buffered data in bulk instead of
// line by line, so the client's cost stays small next to what is
// measured.
func DrainMultiline(r *bufio.Reader) (int64, error) {
	var n int64
	// The status line ended with CRLF, so a body that is only ".CRLF"
	// is the terminator right away; keep the last 4 octets seen to find a
	// terminator split across reads.
	tail := append(make([]byte, 0, 8), '\r', '\n')
	for {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
		}
		buf, _ := r.Peek(r.Buffered())
		probe := append(tail, buf[:min(len(buf), len(terminator)-1)]...)
		if i := bytes.Index(probe, terminator); i >= 0 {
			end := i + len(terminator) - len(tail)
			r.Discard(end)
			return n + int64(end), nil
		}
		if i := bytes.Index(buf, terminator); i >= 0 {
			r.Discard(i + len(terminator))
			return n + int64(i+len(terminator)), nil
		}
		if len(buf) >= 4 {
			tail = append(tail[:0], buf[len(buf)-4:]...)
		} else {
			tail = append(tail, buf...)
			tail = tail[max(0, len(tail)-4):]
		}
		n += int64(len(buf))
		r.Discard(len(buf))
	}
}
