package fakegmail

import (
	"bufio"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The plaintext part of a submission session (like smtp.gmail.com:587),
// answered here rather than by go-smtp: go-smtp would run STARTTLS on the
// connection it was given, and the fake's wireConn must sit above TLS to
// see commands. After STARTTLS the TLS connection goes to go-smtp like an
// implicit-TLS one, its greeting swallowed (RFC 3207 §4.2: no greeting
// after the handshake).

const plainTimeout = 5 * time.Minute

// acceptPlain accepts submission connections until the listener closes.
func (svc *smtpService) acceptPlain() { acceptRaw(svc.srv, svc.starttls, svc.plain) }

// plain runs the dialogue up to STARTTLS.
func (svc *smtpService) plain(raw net.Conn) {
	s := svc.srv
	if !s.hold(raw) {
		raw.Close()
		return
	}
	handedOff := false
	defer func() {
		s.release(raw)
		if !handedOff {
			raw.Close()
		}
	}()
	id := strings.ToLower(rand.Text()[:16])
	r := bufio.NewReaderSize(raw, 1024)
	w := func(s string) bool {
		raw.SetWriteDeadline(time.Now().Add(time.Minute))
		_, err := io.WriteString(raw, s)
		return err == nil
	}
	if !w(smtpGreeting(id)) {
		return
	}
	for {
		raw.SetReadDeadline(time.Now().Add(plainTimeout))
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				w("500 5.5.2 Line too long\r\n")
			}
			return
		}
		verb, _, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
		var ok bool
		switch strings.ToUpper(verb) {
		case "EHLO":
			ok = w("250-smtp.gmail.com at your service, [" + remoteIP(raw) + "]\r\n" +
				"250-SIZE " + strconv.FormatInt(s.opts.MaxMessageBytes, 10) + "\r\n" +
				"250-8BITMIME\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n" +
				"250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n")
		case "HELO":
			ok = w("250 smtp.gmail.com at your service\r\n")
		case "NOOP":
			ok = w("250 2.0.0 OK  " + id + " - gsmtp\r\n")
		case "RSET":
			ok = w("250 2.1.5 Flushed " + id + " - gsmtp\r\n")
		case "QUIT":
			w("221 2.0.0 closing connection " + id + " - gsmtp\r\n")
			return
		case "STARTTLS":
			if r.Buffered() > 0 {
				// RFC 3207 §5: nothing may follow STARTTLS before the
				// handshake; buffered bytes would be a command injection.
				w("501 5.5.4 Syntax error, no pipelining after STARTTLS\r\n")
				return
			}
			if !w("220 2.0.0 Ready to start TLS\r\n") {
				return
			}
			raw.SetDeadline(time.Time{})
			s.release(raw)
			tc, ok := handshake(s, raw, s.tlsCfg)
			handedOff = true // handshake closed it on failure
			if ok {
				svc.handoff(tc, raw, true)
			}
			return
		default:
			ok = w("530 5.7.0 Must issue a STARTTLS command first. " + id + " - gsmtp\r\n")
		}
		if !ok {
			return
		}
	}
}
