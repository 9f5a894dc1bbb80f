package fakegmail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is a message the SMTP server accepted.
type Message struct {
	From string
	To   []string
	Data []byte
}

// smtpState is the Server's SMTP bookkeeping, guarded by Server.mu.
type smtpState struct {
	sent        []Message
	sentChanged chan struct{} // closed and replaced when sent grows
	rejects     map[string]*smtp.SMTPError
}

func (st *smtpState) init() {
	st.sentChanged = make(chan struct{})
	st.rejects = map[string]*smtp.SMTPError{}
}

// smtpService runs go-smtp behind two listeners: implicit TLS (like :465)
// and STARTTLS (like :587; the plaintext part until STARTTLS is answered
// here, see smtp_starttls.go).
type smtpService struct {
	srv      *Server
	implicit net.Listener
	starttls net.Listener
	lib      *smtp.Server
	feed     *chanListener
	served   chan struct{} // closed when lib.Serve has returned
}

func (s *Server) startSMTP(implicitAddr, starttlsAddr string) error {
	implicit, err := listen(implicitAddr)
	if err != nil {
		return err
	}
	starttls, err := listen(starttlsAddr)
	if err != nil {
		implicit.Close()
		return err
	}
	svc := &smtpService{srv: s, implicit: implicit, starttls: starttls, feed: newChanListener(implicit.Addr()), served: make(chan struct{})}
	lib := smtp.NewServer(smtp.BackendFunc(svc.newSession))
	lib.Domain = "smtp.gmail.com"
	lib.MaxMessageBytes = s.opts.MaxMessageBytes
	lib.MaxRecipients = 100
	lib.EnableSMTPUTF8 = true
	// The library sees a wireConn, not a *tls.Conn: it always is TLS.
	lib.AllowInsecureAuth = true
	lib.ReadTimeout = 10 * time.Minute
	lib.WriteTimeout = time.Minute
	lib.ErrorLog = slogPrintf{s.log.With("proto", ProtoSMTP)}
	svc.lib = lib
	s.smtp = svc
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		defer close(svc.served)
		if err := lib.Serve(svc.feed); err != nil {
			s.log.Error("smtp serve", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		acceptLoop(s, implicit, s.tlsCfg, func(tc *tls.Conn, raw net.Conn) { svc.handoff(tc, raw, false) })
	}()
	go func() {
		defer s.wg.Done()
		svc.acceptPlain()
	}()
	return nil
}

func (svc *smtpService) implicitAddr() string { return svc.implicit.Addr().String() }
func (svc *smtpService) starttlsAddr() string { return svc.starttls.Addr().String() }

func (svc *smtpService) closeListeners() {
	svc.implicit.Close()
	svc.starttls.Close()
}

func (svc *smtpService) close() {
	svc.feed.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Shutdown waits for go-smtp's connection goroutines; Close already
	// dropped their connections.
	svc.lib.Shutdown(ctx)
	<-svc.served
}

// handoff gives a TLS connection to go-smtp. afterSTARTTLS: the client
// has been greeted already, so go-smtp's greeting is swallowed.
func (svc *smtpService) handoff(tc *tls.Conn, raw net.Conn, afterSTARTTLS bool) {
	svc.srv.handoff(tc, raw, ProtoSMTP, &smtpFramer{srv: svc.srv, swallowGreeting: afterSTARTTLS}, svc.feed)
}

func (svc *smtpService) newSession(conn *smtp.Conn) (smtp.Session, error) {
	c, ok := conn.Conn().(*wireConn)
	if !ok {
		return nil, errors.New("fakegmail: unexpected connection type")
	}
	return &smtpSession{srv: svc.srv, sess: c.sess}, nil
}

// smtpSession is one SMTP session. go-smtp does not require AUTH before
// MAIL (FACTS.md); the session does, as Gmail does.
type smtpSession struct {
	srv    *Server
	sess   *session
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*smtpSession)(nil)

// gsmtp is the tail of Gmail's SMTP reply lines.
func (ss *smtpSession) gsmtp() string { return ss.sess.id + " - gsmtp" }

func (ss *smtpSession) AuthMechanisms() []string { return []string{"LOGIN", "PLAIN", "XOAUTH2"} }

func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	fail := ss.authFailure()
	switch mech {
	case "XOAUTH2":
		return newXOAuth2Server(ss.srv.opts.Microsoft, ss.checkXOAuth2, fail), nil
	case "PLAIN":
		return sasl.NewPlainServer(func(_, _, _ string) error { return fail }), nil
	case "LOGIN":
		return &refuseLogin{fail: fail}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authFailure is the final XOAUTH2 failure. go-smtp prints the enhanced
// code only on the last line, so Gmail's first line carries it in its
// text.
func (ss *smtpSession) authFailure() error {
	if ss.srv.opts.Microsoft {
		return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}
	}
	return &smtp.SMTPError{
		Code:         535,
		EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message:      "5.7.8 Username and Password not accepted. For more information, go to\n https://support.google.com/mail/?p=BadCredentials " + ss.gsmtp(),
	}
}

func (ss *smtpSession) checkXOAuth2(user, token string) error {
	return ss.srv.authXOAuth2(ss.sess, user, token, func(string) error {
		ss.authed = true
		return nil
	})
}

func (ss *smtpSession) Mail(from string, opts *smtp.MailOptions) error {
	if !ss.authed {
		return &smtp.SMTPError{
			Code:         530,
			EnhancedCode: smtp.EnhancedCode{5, 7, 0},
			Message:      "5.7.0 Authentication Required. For more information, go to\n https://support.google.com/mail/?p=WantAuthError " + ss.gsmtp(),
		}
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *smtpSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.srv.mu.Lock()
	rej := ss.srv.rejects[strings.ToLower(to)]
	ss.srv.mu.Unlock()
	if rej != nil {
		return rej
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		// go-smtp's size limit error is an *smtp.SMTPError; pass it on.
		var serr *smtp.SMTPError
		if errors.As(err, &serr) {
			return serr
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not received"}
	}
	msg := Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data}
	s := ss.srv
	s.mu.Lock()
	s.sent = append(s.sent, msg)
	close(s.sentChanged)
	s.sentChanged = make(chan struct{})
	s.mu.Unlock()
	s.log.Info("smtp accepted", "session", ss.sess.id, "account", ss.sess.User(), "rcpts", len(msg.To), "octets", len(data))
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK  " + ss.gsmtp()}
}

func (ss *smtpSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *smtpSession) Logout() error { return nil }

// refuseLogin is SASL LOGIN that reads the credentials and refuses them
// (the fake has no passwords).
type refuseLogin struct {
	fail error
	step int
}

func (l *refuseLogin) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil && l.step == 0 {
		l.step = 1
		return []byte("Username:"), false, nil
	}
	if l.step <= 1 {
		l.step = 2
		return []byte("Password:"), false, nil
	}
	return nil, false, l.fail
}

// Sent is every message the SMTP servers accepted, oldest first.
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.sent...)
}

// WaitSent waits until at least n messages have been accepted and returns
// them all.
func (s *Server) WaitSent(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.sent) >= n {
			out := append([]Message(nil), s.sent...)
			s.mu.Unlock()
			return out, nil
		}
		changed := s.sentChanged
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("fakegmail: waiting for %d sent messages: %w", n, ctx.Err())
		case <-s.closing:
			return nil, fmt.Errorf("fakegmail: waiting for sent messages: %w", net.ErrClosed)
		}
	}
}

// RejectRecipient makes RCPT TO addr fail with code and text, like
// RejectRecipient("x@gmail.com", 550, "5.1.1 The email account that you
// tried to reach does not exist."). A leading enhanced status code in text
// is used as such; "\n" makes a multi-line reply. Code 0 lifts the
// rejection.
func (s *Server) RejectRecipient(addr string, code int, text string) {
	addr = strings.ToLower(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.rejects, addr)
		return
	}
	s.rejects[addr] = &smtp.SMTPError{Code: code, EnhancedCode: enhancedCode(code, &text), Message: text}
}

// enhancedCode takes a leading "x.y.z " off *text (RFC 3463), or returns
// the generic class code for code.
func enhancedCode(code int, text *string) smtp.EnhancedCode {
	first, rest, _ := strings.Cut(*text, " ")
	parts := strings.Split(first, ".")
	if len(parts) == 3 {
		var ec smtp.EnhancedCode
		ok := true
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v < 0 || v > 999 {
				ok = false
				break
			}
			ec[i] = v
		}
		if ok && !strings.Contains(first, "\n") {
			*text = rest
			return ec
		}
	}
	return smtp.EnhancedCode{code / 100, 0, 0}
}
