package fakegmail

import (
	"bytes"
	"strconv"
	"strings"
)

// smtpFramer follows go-smtp's conversation: commands, SASL exchanges,
// DATA bodies and BDAT chunks, for the faults, and rewrites the greeting
// and the EHLO banner as Gmail writes them.
type smtpFramer struct {
	srv             *Server
	swallowGreeting bool // STARTTLS: the client was greeted before TLS

	// Guarded by wireConn.mu: serverLine runs under it, clientLine takes it.
	greeted    bool
	expectData bool // DATA was passed on; a 354 starts the body
	inData     bool // the client is sending a DATA body
	inAuth     bool // AUTH was passed on; 334 lines are its challenges
	cutOnBody  *armedFault
}

func (f *smtpFramer) clientLine(c *wireConn, line []byte, _ bool) (readAction, int64) {
	c.mu.Lock()
	inData, inAuth := f.inData, f.inAuth
	c.mu.Unlock()
	if inData {
		return f.dataLine(c, line)
	}
	if inAuth {
		return actPass, 0 // a SASL response, not a command
	}
	verb, rest, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
	verb = strings.ToUpper(verb)
	var lit int64
	last := false
	if verb == "BDAT" {
		// RFC 3030: "BDAT size [LAST]", then size octets of message.
		args := strings.Fields(rest)
		if len(args) > 0 {
			if n, err := strconv.ParseInt(args[0], 10, 64); err == nil && n >= 0 {
				lit = n
			}
			last = len(args) > 1 && strings.EqualFold(args[1], "LAST")
		}
	}
	if fault, ok := c.sess.takeFault(verb); ok {
		if verb == "DATA" && fault.Kick == KickMidResponse {
			// The 354 goes out; the cut comes with the body.
			c.mu.Lock()
			f.expectData, f.cutOnBody = true, fault
			c.mu.Unlock()
			return actPass, 0
		}
		if c.applyFault(fault, "") == actCut {
			return actCut, 0
		}
	}
	if last {
		if fault, ok := c.sess.takeFault("DATA-END"); ok && c.applyFault(fault, "") == actCut {
			return actCut, 0
		}
	}
	c.mu.Lock()
	switch verb {
	case "DATA":
		f.expectData = true
	case "AUTH":
		f.inAuth = true
	}
	c.mu.Unlock()
	return actPass, lit
}

func (f *smtpFramer) longLineEnd(*wireConn, []byte) int64 { return 0 }

// dataLine handles a line of a DATA body (RFC 5321 §4.5.2).
func (f *smtpFramer) dataLine(c *wireConn, line []byte) (readAction, int64) {
	c.mu.Lock()
	cut := f.cutOnBody
	f.cutOnBody = nil
	c.mu.Unlock()
	if cut != nil {
		c.bareClose()
		cut.fire()
		return actCut, 0
	}
	if !bytes.Equal(line, []byte(".\r\n")) && !bytes.Equal(line, []byte(".\n")) {
		return actPass, 0
	}
	c.mu.Lock()
	f.inData = false
	c.mu.Unlock()
	if fault, ok := c.sess.takeFault("DATA-END"); ok && c.applyFault(fault, "") == actCut {
		return actCut, 0
	}
	return actPass, 0
}

func (f *smtpFramer) serverLine(c *wireConn, line []byte) ([]byte, int64, bool) {
	final := len(line) < 4 || line[3] != '-'
	if !f.greeted {
		f.greeted = true
		if f.swallowGreeting {
			return nil, 0, true
		}
		return []byte(smtpGreeting(c.sess.id)), 0, true
	}
	if bytes.HasPrefix(line, []byte("250-Hello ")) {
		return []byte("250-smtp.gmail.com at your service, [" + c.sess.remote + "]\r\n"), 0, false
	}
	if f.expectData && final {
		f.expectData = false
		f.inData = bytes.HasPrefix(line, []byte("354"))
	}
	if f.inAuth && final && !bytes.HasPrefix(line, []byte("334")) {
		f.inAuth = false
	}
	return line, 0, final
}

func smtpGreeting(id string) string {
	return "220 smtp.gmail.com ESMTP " + id + " - gsmtp\r\n"
}
