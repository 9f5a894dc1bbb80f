package fakegmail

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// The TRANSACTION and UPDATE states (RFC 1939 §5, §6) over the maildrop
// snapshot taken at login.

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
