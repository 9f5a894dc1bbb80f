package fakegmail

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
)

const (
	// RFC 1939 §3: an autologout timer of at least 10 minutes.
	pop3ReadTimeout  = 10 * time.Minute
	pop3WriteTimeout = time.Minute
)

// pop3Service is the POP3 listener (implicit TLS, like pop.gmail.com:995).
type pop3Service struct {
	srv *Server
	ln  net.Listener
}

func (s *Server) startPOP3(addr string) error {
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	svc := &pop3Service{srv: s, ln: ln}
	s.pop3 = svc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		acceptLoop(s, ln, s.tlsCfg, svc.serve)
	}()
	return nil
}

func (svc *pop3Service) addr() string { return svc.ln.Addr().String() }
func (svc *pop3Service) close()       { svc.ln.Close() }

// pop3Msg is one message of a maildrop snapshot.
type pop3Msg struct {
	uid  imap.UID
	uidl string
	data []byte
	size int
}

// pop3Conn is one POP3 session (RFC 1939, 2449, 5034).
type pop3Conn struct {
	srv  *Server
	sess *session
	tc   *tls.Conn
	raw  net.Conn
	r    *bufio.Reader

	wmu    sync.Mutex // guards writes to tc and closed; held for a whole reply
	closed bool

	closeOnce sync.Once
	done      chan struct{} // closed when the connection is closed

	// Session state: only the serving goroutine touches it.
	user    string // "" in the AUTHORIZATION state
	drop    []pop3Msg
	deleted []bool
}

// serve runs one session on the acceptLoop goroutine that owns it.
func (svc *pop3Service) serve(tc *tls.Conn, raw net.Conn) {
	s := svc.srv
	c := &pop3Conn{srv: s, tc: tc, raw: raw, r: bufio.NewReaderSize(tc, 4096), done: make(chan struct{})}
	if c.sess = s.newSession(ProtoPOP3, remoteIP(raw), c); c.sess == nil {
		raw.Close()
		return
	}
	defer c.sess.close()
	defer c.closeConn()
	if s.opts.Microsoft {
		c.reply("+OK The Microsoft Exchange POP3 service is ready. [" + base64.StdEncoding.EncodeToString([]byte(c.sess.id)) + "]")
	} else {
		c.reply("+OK Gpop ready for requests from " + c.sess.remote + " " + c.sess.id)
	}
	for {
		line, err := c.readLine(pop3MaxLine)
		if errors.Is(err, errPOP3LineTooLong) {
			c.reply("-ERR Command line too long (RFC 2449: 255 octets)")
			continue
		}
		if err != nil {
			return
		}
		cmd, err := parsePOP3Command(line)
		if err != nil {
			c.reply("-ERR bad command")
			continue
		}
		if !c.command(cmd) {
			return
		}
	}
}

// readLine reads one line of at most max octets (LF included). A longer
// line is consumed to its end and reported as errPOP3LineTooLong.
func (c *pop3Conn) readLine(max int) ([]byte, error) {
	c.tc.SetReadDeadline(time.Now().Add(pop3ReadTimeout))
	var line []byte
	tooLong := false
	for {
		chunk, err := c.r.ReadSlice('\n')
		if !tooLong {
			line = append(line, chunk...)
			if len(line) > max {
				tooLong, line = true, nil
			}
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
	if tooLong {
		return nil, errPOP3LineTooLong
	}
	return line, nil
}

// reply writes one response line.
func (c *pop3Conn) reply(line string) bool { return c.write([]byte(line + "\r\n")) }

// write writes a whole reply under wmu with a deadline.
func (c *pop3Conn) write(b []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return false
	}
	c.tc.SetWriteDeadline(time.Now().Add(pop3WriteTimeout))
	_, err := c.tc.Write(b)
	return err == nil
}

// command runs one command; false ends the session.
func (c *pop3Conn) command(cmd pop3Command) bool {
	if f, ok := c.sess.takeFault(cmd.Verb); ok {
		defer f.fire()
		switch f.Kick {
		case KickMidResponse, KickNoReply:
			return c.faultedCommand(cmd, f.Kick)
		}
		c.endWith(f.Kick)
		return false
	}
	out, keep := c.run(cmd)
	if !c.write(out) {
		return false
	}
	return keep
}

// faultedCommand runs cmd, then sends half its reply (KickMidResponse) or
// none (KickNoReply), and closes.
func (c *pop3Conn) faultedCommand(cmd pop3Command, mode KickMode) bool {
	out, _ := c.run(cmd)
	if mode == KickMidResponse {
		// A multi-line reply: its status line and half of the data after
		// it; a single line: half of it. Dovecot's data "just stops".
		cut := len(out) / 2
		if i := bytes.IndexByte(out, '\n'); i >= 0 && i+1 < len(out) {
			cut = i + 1 + (len(out)-i-1)/2
		}
		c.write(out[:cut])
	}
	c.bareClose()
	return false
}

// run executes cmd and returns its reply and whether the session goes on.
func (c *pop3Conn) run(cmd pop3Command) ([]byte, bool) {
	switch cmd.Verb {
	case "CAPA":
		return []byte(c.capa()), true
	case "NOOP":
		return line("+OK"), true
	case "QUIT":
		return c.quit(), false
	}
	if c.user == "" {
		switch cmd.Verb {
		case "USER":
			return line("+OK send PASS"), true
		case "PASS":
			return line(c.authFailure()), true
		case "AUTH":
			return c.auth(cmd)
		}
		return line("-ERR [AUTH] Command not valid before login"), true
	}
	switch cmd.Verb {
	case "STAT":
		n, size := c.stat()
		return line(fmt.Sprintf("+OK %d %d", n, size)), true
	case "LIST", "UIDL":
		return c.list(cmd), true
	case "RETR":
		return c.retr(cmd), true
	case "TOP":
		return c.top(cmd), true
	case "DELE":
		return c.dele(cmd), true
	case "RSET":
		clear(c.deleted)
		n, size := c.stat()
		return line(fmt.Sprintf("+OK %d messages (%d octets)", n, size)), true
	case "USER", "PASS", "AUTH":
		return line("-ERR Already logged in"), true
	}
	return line("-ERR bad command"), true
}

func line(s string) []byte { return []byte(s + "\r\n") }

func (c *pop3Conn) capa() string {
	caps := "+OK Capability list follows\r\n"
	if c.user == "" {
		caps += "USER\r\n"
	}
	// Gmail's list as far as known (FACTS.md: UNVERIFIED). OAUTHBEARER is
	// left out: the fake does not implement it.
	return caps + "RESP-CODES\r\nEXPIRE 0\r\nLOGIN-DELAY 300\r\nTOP\r\nUIDL\r\nX-GOOGLE-RICO\r\nSASL PLAIN XOAUTH2\r\n.\r\n"
}

// end implements ender: the words go out between replies.
func (c *pop3Conn) end(mode KickMode) {
	c.endWith(mode)
	<-c.done
}

func (c *pop3Conn) endWith(mode KickMode) {
	text := byeLine(ProtoPOP3, mode)
	if text == "" {
		c.bareClose()
		return
	}
	// A reply being written holds wmu; wait for it, bounded by its write
	// deadline, then close with close_notify.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	c.tc.SetWriteDeadline(time.Now().Add(kickTimeout))
	io.WriteString(c.tc, text)
	c.closed = true
	c.closeOnce.Do(func() {
		c.tc.Close()
		close(c.done)
	})
}

func (c *pop3Conn) closeNow() { c.bareClose() }

// bareClose drops the TCP connection without close_notify.
func (c *pop3Conn) bareClose() {
	c.closeOnce.Do(func() {
		c.raw.Close()
		close(c.done)
	})
}

// closeConn ends the session normally (after QUIT or a client close).
func (c *pop3Conn) closeConn() {
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	c.closeOnce.Do(func() {
		c.tc.SetDeadline(time.Now().Add(kickTimeout))
		c.tc.Close()
		close(c.done)
	})
}
