package fakegmail

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

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
