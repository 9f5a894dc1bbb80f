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
	"strconv"
	"strings"
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

func (c *pop3Conn) authFailure() string {
	if c.srv.opts.Microsoft {
		return "-ERR Logon failure: unknown user name or bad password."
	}
	return "-ERR [AUTH] Username and password not accepted."
}

// pop3Error is a SASL failure already worded for the client.
type pop3Error struct{ line string }

func (e *pop3Error) Error() string { return "fakegmail: pop3: " + e.line }

// auth runs AUTH (RFC 5034): the initial response is optional, "=" is an
// empty one, "*" cancels.
func (c *pop3Conn) auth(cmd pop3Command) ([]byte, bool) {
	if len(cmd.Args) == 0 || len(cmd.Args) > 2 {
		return line("-ERR Syntax error"), true
	}
	var mech interface {
		Next([]byte) ([]byte, bool, error)
	}
	fail := &pop3Error{c.authFailure()}
	switch strings.ToUpper(cmd.Args[0]) {
	case "XOAUTH2":
		mech = newXOAuth2Server(c.srv.opts.Microsoft, c.checkXOAuth2, fail)
	case "PLAIN":
		mech = &refusePlain{fail: fail}
	default:
		return line("-ERR [AUTH] Unsupported mechanism"), true
	}
	var resp []byte
	if len(cmd.Args) == 2 {
		var ok bool
		if resp, ok = decodeSASL(cmd.Args[1]); !ok {
			return line("-ERR Invalid base64 data"), true
		}
	}
	for {
		challenge, done, err := mech.Next(resp)
		var perr *pop3Error
		switch {
		case errors.As(err, &perr):
			return line(perr.line), true
		case err != nil:
			return line("-ERR [SYS/TEMP] " + err.Error()), true
		case done:
			return c.loggedIn()
		}
		if !c.reply("+ " + base64.StdEncoding.EncodeToString(challenge)) {
			return nil, false
		}
		l, err := c.readLine(pop3MaxSASL)
		if errors.Is(err, errPOP3LineTooLong) {
			return line("-ERR SASL response too long"), true
		}
		if err != nil {
			return nil, false
		}
		s := string(bytes.TrimRight(l, "\r\n"))
		if s == "*" {
			return line("-ERR [AUTH] Authentication cancelled"), true
		}
		var ok bool
		if resp, ok = decodeSASL(s); !ok {
			return line("-ERR Invalid base64 data"), true
		}
	}
}

func decodeSASL(s string) ([]byte, bool) {
	if s == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	if b == nil {
		b = []byte{}
	}
	return b, true
}

// refusePlain is SASL PLAIN that accepts nothing (the fake has no
// passwords), after reading the credentials as a real server would.
type refusePlain struct{ fail error }

func (p *refusePlain) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil
	}
	return nil, false, p.fail
}

func (c *pop3Conn) checkXOAuth2(user, token string) error {
	err := c.srv.authXOAuth2(c.sess, user, token, func(u string) error {
		c.user = u
		return nil
	})
	return err
}

// loggedIn takes the maildrop snapshot: INBOX as it is now.
func (c *pop3Conn) loggedIn() ([]byte, bool) {
	msgs, uidValidity, err := c.srv.store.messages(c.user, "INBOX")
	if err != nil {
		c.srv.log.Error("pop3 maildrop", "session", c.sess.id, "account", c.user, "err", err)
		return line("-ERR [SYS/TEMP] Maildrop unavailable"), false
	}
	c.drop = make([]pop3Msg, len(msgs))
	for i, m := range msgs {
		c.drop[i] = pop3Msg{
			uid:  m.UID,
			uidl: fmt.Sprintf("GmailId%08x%08x", uidValidity, uint32(m.UID)),
			data: m.Data,
			size: crlfSize(m.Data),
		}
	}
	c.deleted = make([]bool, len(msgs))
	if c.srv.opts.Microsoft {
		return line("+OK User successfully authenticated."), true
	}
	return line("+OK Welcome."), true
}

func (c *pop3Conn) stat() (n, size int) {
	for i, m := range c.drop {
		if !c.deleted[i] {
			n++
			size += m.size
		}
	}
	return n, size
}

// msg resolves a message-number argument to a live message.
func (c *pop3Conn) msg(arg string) (int, []byte) {
	n, ok := msgNumber(arg)
	if !ok || n > len(c.drop) {
		return 0, line("-ERR [SYS/PERM] No such message")
	}
	if c.deleted[n-1] {
		return 0, line("-ERR [SYS/PERM] Message already deleted")
	}
	return n, nil
}

func (c *pop3Conn) list(cmd pop3Command) []byte {
	item := func(i int) string {
		if cmd.Verb == "UIDL" {
			return strconv.Itoa(i+1) + " " + c.drop[i].uidl
		}
		return strconv.Itoa(i+1) + " " + strconv.Itoa(c.drop[i].size)
	}
	switch len(cmd.Args) {
	case 0:
	case 1:
		n, errLine := c.msg(cmd.Args[0])
		if errLine != nil {
			return errLine
		}
		return line("+OK " + item(n-1))
	default:
		return line("-ERR Syntax error")
	}
	n, size := c.stat()
	var b bytes.Buffer
	if cmd.Verb == "UIDL" {
		b.WriteString("+OK\r\n")
	} else {
		fmt.Fprintf(&b, "+OK %d messages (%d octets)\r\n", n, size)
	}
	for i := range c.drop {
		if !c.deleted[i] {
			b.WriteString(item(i) + "\r\n")
		}
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

func (c *pop3Conn) retr(cmd pop3Command) []byte {
	if len(cmd.Args) != 1 {
		return line("-ERR Syntax error")
	}
	n, errLine := c.msg(cmd.Args[0])
	if errLine != nil {
		return errLine
	}
	m := c.drop[n-1]
	out := fmt.Appendf(nil, "+OK %d octets\r\n", m.size)
	return dotStuff(out, m.data)
}

func (c *pop3Conn) top(cmd pop3Command) []byte {
	if len(cmd.Args) != 2 {
		return line("-ERR Syntax error")
	}
	n, errLine := c.msg(cmd.Args[0])
	if errLine != nil {
		return errLine
	}
	k, err := strconv.Atoi(cmd.Args[1])
	if err != nil || k < 0 {
		return line("-ERR Syntax error")
	}
	return dotStuff(line("+OK"), topLines(c.drop[n-1].data, k))
}

func (c *pop3Conn) dele(cmd pop3Command) []byte {
	if len(cmd.Args) != 1 {
		return line("-ERR Syntax error")
	}
	n, errLine := c.msg(cmd.Args[0])
	if errLine != nil {
		return errLine
	}
	c.deleted[n-1] = true
	return line(fmt.Sprintf("+OK message %d deleted", n))
}

// quit enters the UPDATE state (RFC 1939 §6): deletions are committed
// now, and only now, by expunging them from INBOX.
func (c *pop3Conn) quit() []byte {
	if c.user == "" {
		return line("+OK Farewell.")
	}
	var uids []imap.UID
	for i, m := range c.drop {
		if c.deleted[i] {
			uids = append(uids, m.uid)
		}
	}
	if len(uids) > 0 {
		if _, err := c.srv.store.expunge(c.user, "INBOX", uids); err != nil {
			c.srv.log.Error("pop3 update", "session", c.sess.id, "account", c.user, "err", err)
			return line("-ERR [SYS/TEMP] Some deleted messages were not removed")
		}
	}
	return line("+OK Farewell.")
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
