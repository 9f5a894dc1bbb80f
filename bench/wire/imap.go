package wire

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// IMAP is one IMAP connection driven one command at a time: no pipelining,
// no parsing beyond what finding the end of a response needs (lines,
// RFC 3501 §4.3 literals, the tagged status). Literal bytes are counted and
// skipped, never stored.
type IMAP struct {
	conn    net.Conn
	r       *bufio.Reader
	tag     uint64
	out     []byte // the command being written, reused
	line    []byte // scratch for lines longer than the reader's buffer
	Timeout time.Duration
}

// Errors a command can end with; match them with errors.Is.
var (
	ErrNo       = errors.New("wire: NO response")
	ErrBad      = errors.New("wire: BAD response")
	ErrBye      = errors.New("wire: server said BYE")
	ErrProtocol = errors.New("wire: unexpected response")
)

// DefaultTimeout bounds one command (write plus the whole response) when
// IMAP.Timeout and POP3.Timeout are zero.
const DefaultTimeout = time.Minute

// DialIMAP connects to addr (with TLS when cfg is not nil) and reads the
// greeting, which must be "* OK". bufSize is the read buffer: small for
// many idle sessions, large for bulk transfers.
func DialIMAP(addr string, cfg *tls.Config, bufSize int) (*IMAP, error) {
	conn, err := dial(addr, cfg)
	if err != nil {
		return nil, err
	}
	c, err := dialConn(conn, bufSize)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("wire: imap greeting from %s: %w", addr, err)
	}
	return c, nil
}

// dialConn reads the greeting on an open connection.
func dialConn(conn net.Conn, bufSize int) (*IMAP, error) {
	c := &IMAP{conn: conn, r: bufio.NewReaderSize(conn, bufSize)}
	c.conn.SetDeadline(time.Now().Add(c.timeout()))
	line, err := c.readLine()
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(line, []byte("* OK")) {
		return nil, fmt.Errorf("%q: %w", line, ErrProtocol)
	}
	return c, nil
}

func dial(addr string, cfg *tls.Config) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	if cfg != nil {
		return tls.DialWithDialer(&d, "tcp", addr, cfg)
	}
	return d.Dial("tcp", addr)
}

func (c *IMAP) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Close closes the connection at once.
func (c *IMAP) Close() error { return c.conn.Close() }

// Result is what a command's response held.
type Result struct {
	Untagged     int   // untagged lines (a line with literals counts once)
	LiteralBytes int64 // octets of all literals skipped
}

// Do sends one command (without tag and CRLF) and reads its response up to
// the tagged status. Each untagged response line (its text before the
// first literal) is passed to onUntagged when that is not nil; the slice is
// only valid during the call. A NO, BAD or an untagged BYE is an error.
func (c *IMAP) Do(cmd string, onUntagged func(line []byte)) (Result, error) {
	c.tag++
	c.out = append(c.out[:0], 't')
	c.out = strconv.AppendUint(c.out, c.tag, 10)
	tagLen := len(c.out)
	c.out = append(c.out, ' ')
	c.out = append(c.out, cmd...)
	c.out = append(c.out, '\r', '\n')
	c.conn.SetDeadline(time.Now().Add(c.timeout()))
	if _, err := c.conn.Write(c.out); err != nil {
		return Result{}, err
	}
	return c.readResponse(c.out[:tagLen], onUntagged, false)
}

// Logout sends LOGOUT and reads its response: the BYE, then the tagged OK
// (RFC 3501 §6.1.3).
func (c *IMAP) Logout() error {
	c.tag++
	tag := "t" + strconv.FormatUint(c.tag, 10)
	c.conn.SetDeadline(time.Now().Add(c.timeout()))
	if _, err := c.conn.Write([]byte(tag + " LOGOUT\r\n")); err != nil {
		return err
	}
	_, err := c.readResponse([]byte(tag), nil, true)
	return err
}

// readResponse reads lines until the one tagged tag. An untagged BYE is an
// error unless byeOK.
func (c *IMAP) readResponse(tag []byte, onUntagged func([]byte), byeOK bool) (Result, error) {
	var res Result
	for {
		line, err := c.readLine()
		if err != nil {
			return res, err
		}
		switch {
		case len(line) > len(tag) && bytes.HasPrefix(line, tag) && line[len(tag)] == ' ':
			return res, status(line[len(tag)+1:])
		case bytes.HasPrefix(line, []byte("* ")):
			res.Untagged++
			if !byeOK && bytes.HasPrefix(line, []byte("* BYE")) {
				return res, fmt.Errorf("%w: %q", ErrBye, line)
			}
			if onUntagged != nil {
				onUntagged(line)
			}
			n, err := c.skipLiterals(line)
			res.LiteralBytes += n
			if err != nil {
				return res, err
			}
		default:
			return res, fmt.Errorf("%w: %q", ErrProtocol, line)
		}
	}
}

// skipLiterals discards the literal announced at the end of line and every
// further literal of the same response (RFC 3501 §4.3: after a literal's
// octets the response line continues).
func (c *IMAP) skipLiterals(line []byte) (int64, error) {
	var total int64
	for {
		n, ok := LiteralSize(line)
		if !ok {
			return total, nil
		}
		if _, err := c.r.Discard(int(n)); err != nil {
			return total, err
		}
		total += n
		var err error
		if line, err = c.readLine(); err != nil {
			return total, err
		}
	}
}

// LiteralSize parses a "{n}" or "{n+}" literal marker at the end of line
// (CRLF already removed).
func LiteralSize(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	digits := line[open+1 : len(line)-1]
	if len(digits) > 0 && digits[len(digits)-1] == '+' {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 || len(digits) > 12 {
		return 0, false
	}
	var n int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// status maps the text after a tag to nil for OK or an error.
func status(rest []byte) error {
	switch {
	case bytes.HasPrefix(rest, []byte("OK")):
		return nil
	case bytes.HasPrefix(rest, []byte("NO")):
		return fmt.Errorf("%w: %q", ErrNo, rest)
	case bytes.HasPrefix(rest, []byte("BAD")):
		return fmt.Errorf("%w: %q", ErrBad, rest)
	}
	return fmt.Errorf("%w: tagged %q", ErrProtocol, rest)
}

// readLine returns the next line without its CRLF. The slice is valid
// until the next read.
func (c *IMAP) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.line = append(c.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.r.ReadSlice('\n')
			c.line = append(c.line, line...)
		}
		line = c.line
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// Login runs LOGIN with quoted user name and password.
func (c *IMAP) Login(user, password string) error {
	_, err := c.Do("LOGIN "+Quote(user)+" "+Quote(password), nil)
	return err
}

// AuthXOAuth2 runs AUTHENTICATE XOAUTH2 with the initial response on the
// command line (RFC 4959 SASL-IR). On failure the server's error challenge
// is answered with an empty line, as Gmail expects, and the final NO is
// returned.
func (c *IMAP) AuthXOAuth2(user, token string) error {
	ir := base64.StdEncoding.EncodeToString(XOAuth2(user, token))
	c.tag++
	tag := "t" + strconv.FormatUint(c.tag, 10)
	c.conn.SetDeadline(time.Now().Add(c.timeout()))
	if _, err := c.conn.Write([]byte(tag + " AUTHENTICATE XOAUTH2 " + ir + "\r\n")); err != nil {
		return err
	}
	peek, err := c.r.Peek(1)
	if err != nil {
		return err
	}
	if peek[0] == '+' {
		if _, err := c.readLine(); err != nil {
			return err
		}
		if _, err := c.conn.Write([]byte("\r\n")); err != nil {
			return err
		}
	}
	_, err = c.readResponse([]byte(tag), nil, false)
	return err
}

// XOAuth2 is the XOAUTH2 initial response before base64 (written here
// rather than taken from the bridge, so a shared bug cannot hide).
func XOAuth2(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// Quote makes s an RFC 3501 quoted string.
func Quote(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(append(b, '"'))
}
