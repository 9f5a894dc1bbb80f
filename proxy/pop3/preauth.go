package pop3

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"golang.org/x/oauth2"
)

// The AUTHORIZATION state (RFC 1939 §4) is served locally: CAPA (RFC
// 2449), USER/PASS (RFC 1939 §7), AUTH PLAIN and LOGIN (RFC 5034), STLS
// (RFC 2595) and QUIT. The upstream is contacted only once a local login
// succeeded, so a wrong password never touches tokens.

// Limits of the AUTHORIZATION state: a client that keeps sending unknown
// commands or failing to log in is not a mail client.
const (
	maxBadCommands   = 10
	maxLoginFailures = 3
)

// tlsRecordHandshake is the first byte of a TLS ClientHello record.
const tlsRecordHandshake = 0x16

// authorization runs the AUTHORIZATION state until a login succeeds
// (true) or the connection is to be closed (false).
func (s *session) authorization() bool {
	var user string // from USER, waiting for PASS
	bad, failures := 0, 0
	for {
		if err := s.checkTLSHello(); err != nil {
			return s.preauthReadFailed(err)
		}
		line, err := s.readLine(maxPreauthLine, s.loginD)
		if err != nil {
			return s.preauthReadFailed(err)
		}
		cmd, err := parseCommand(line)
		if err != nil {
			bad++
			if !s.reply("-ERR Empty command") || bad >= maxBadCommands {
				return false
			}
			continue
		}
		if s.debug {
			s.trace("C", redactCommand(cmd, line))
		}
		var login loginResult
		switch cmd.Keyword {
		case "CAPA":
			if s.writeMulti(capaStatus, s.localCaps()) != nil {
				return false
			}
			continue
		case "QUIT":
			s.reply("+OK Bye")
			return false
		case "STLS":
			if !s.stls() {
				return false
			}
			user = "" // RFC 2595 §4: the state is reset after STLS
			continue
		case "USER":
			name := strings.TrimSpace(cmd.Rest)
			switch {
			case !s.c.PlaintextAuthAllowed():
				user = ""
				s.reply(plaintextRefusal)
			case name == "":
				bad++
				s.reply("-ERR Missing user name")
			default:
				user = name
				s.reply("+OK Send PASS")
			}
		case "PASS":
			switch {
			case !s.c.PlaintextAuthAllowed():
				s.reply(plaintextRefusal)
			case user == "":
				bad++
				s.reply("-ERR Send USER first")
			default:
				// RFC 1939 §7: the password is the rest of the line,
				// spaces included.
				login = s.login(user, cmd.Rest, "USER")
				user = ""
			}
		case "AUTH":
			user = ""
			login = s.auth(cmd)
		case "APOP":
			s.reply("-ERR APOP is not supported, use USER/PASS or AUTH")
		case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL":
			bad++
			s.reply("-ERR Log in first")
		default:
			bad++
			s.reply("-ERR Unknown command")
		}
		switch login {
		case loginOK:
			return true
		case loginFailed:
			failures++
		case loginClose:
			return false
		}
		if s.writeErr != nil || bad >= maxBadCommands || failures >= maxLoginFailures {
			return false
		}
	}
}

// plaintextRefusal answers USER, PASS and AUTH where a password may not
// travel in the clear (proxy.Conn.PlaintextAuthAllowed).
const plaintextRefusal = "-ERR [AUTH] Plaintext authentication disallowed on non-TLS connections: use STLS first"

// reply writes a line, remembering a write error; it reports success.
func (s *session) reply(line string) bool {
	if s.writeErr != nil {
		return false
	}
	s.writeErr = s.writeLine(line)
	return s.writeErr == nil
}

// preauthReadFailed handles a failed read before login: shutdown and
// too-long lines get a last word, everything else (EOF, the login
// deadline) just ends the connection.
func (s *session) preauthReadFailed(err error) bool {
	s.endReason = readErrReason(err)
	switch {
	case errors.Is(err, errShutdown):
		s.reply("-ERR [SYS/TEMP] " + proxy.ClientMessage(proxy.ErrShuttingDown, ""))
	case errors.Is(err, errLineTooLong):
		s.reply("-ERR Line too long")
	case errors.Is(err, errTLSHello):
		s.reply("-ERR TLS handshake on a plaintext port: use STLS, or the implicit-TLS port")
	}
	s.log.Debug("connection ended before login", "reason", s.endReason, "err", err)
	return false
}

var errTLSHello = errors.New("pop3: TLS ClientHello on a plaintext connection")

// checkTLSHello waits for the next command's first byte and refuses a TLS
// ClientHello: a client configured for implicit TLS on a plaintext port
// would otherwise wait for a ServerHello until the login timeout.
func (s *session) checkTLSHello() error {
	if s.c.IsTLS() {
		return nil
	}
	s.c.SetReadDeadline(s.loginD)
	if s.ctx.Err() != nil {
		return errShutdown
	}
	b, err := s.r.Peek(1)
	if err != nil {
		return s.readErr(err)
	}
	if b[0] == tlsRecordHandshake {
		return errTLSHello
	}
	return nil
}

// stls runs STLS (RFC 2595 §4); false means the connection is to be
// closed.
func (s *session) stls() bool {
	switch {
	case s.c.IsTLS():
		return s.reply("-ERR Already using TLS")
	case !s.stlsAvailable():
		return s.reply("-ERR STLS not available on this port")
	}
	// RFC 2595 §4: the client must not pipeline past STLS; anything it
	// sent after the command is dropped with the reader's buffer below,
	// so no plaintext can be injected into the TLS session.
	if !s.reply("+OK Begin TLS negotiation") {
		return false
	}
	timeout := time.Until(s.loginD)
	if timeout <= 0 {
		return false
	}
	if err := s.c.StartTLS(timeout); err != nil {
		s.endReason = "tls_failed"
		s.log.Debug("STLS handshake failed", "err", err)
		return false
	}
	s.r.Reset(s.c)
	return true
}

// auth runs AUTH (RFC 5034) for PLAIN and LOGIN. "AUTH" alone lists the
// mechanisms, as many servers do for clients that predate CAPA.
func (s *session) auth(cmd command) loginResult {
	if len(cmd.Args) == 0 {
		if s.writeMulti("+OK", []string{"PLAIN", "LOGIN"}) != nil {
			return loginClose
		}
		return loginNone
	}
	mech := upperASCII([]byte(cmd.Args[0]))
	switch {
	case len(cmd.Args) > 2:
		s.reply("-ERR Invalid arguments")
		return loginNone
	case mech != "PLAIN" && mech != "LOGIN":
		s.reply("-ERR Unsupported authentication mechanism")
		return loginNone
	case !s.c.PlaintextAuthAllowed():
		s.reply(plaintextRefusal)
		return loginNone
	}
	var ir []byte
	hasIR := len(cmd.Args) == 2
	if hasIR {
		ir = []byte(cmd.Args[1])
	}
	user, pass, err := s.saslExchange(mech, ir, hasIR)
	switch {
	case err == nil:
		return s.login(user, pass, mech)
	case errors.Is(err, errSASLCancel):
		// RFC 5034 §4: a cancelled exchange is answered with -ERR.
		s.reply("-ERR Authentication cancelled")
		return loginNone
	case errors.Is(err, errBadBase64), errors.Is(err, errBadPlain), errors.Is(err, errEmptySecret):
		s.reply("-ERR Malformed SASL response")
		return loginFailed
	case errors.Is(err, errAuthzid):
		s.reply("-ERR [AUTH] Authorization identity must be empty or the user name")
		return loginFailed
	}
	// A read or write failed mid-exchange (EOF, deadline, a line too
	// long): the connection ends.
	s.preauthReadFailed(err)
	return loginClose
}

// saslExchange collects user name and password for mech, sending
// challenges as needed (RFC 5034 §4: "+ " and base64).
func (s *session) saslExchange(mech string, ir []byte, hasIR bool) (user, pass string, err error) {
	if mech == "PLAIN" {
		var msg []byte
		if hasIR {
			msg, err = decodeSASL(ir)
		} else {
			msg, err = s.saslStep("")
		}
		if err != nil {
			return "", "", err
		}
		return decodePlain(msg)
	}
	// LOGIN: the user name may come as the initial response.
	var u []byte
	if hasIR {
		u, err = decodeSASL(ir)
	} else {
		u, err = s.saslStep(loginUserChallenge)
	}
	if err != nil {
		return "", "", err
	}
	p, err := s.saslStep(loginPassChallenge)
	if err != nil {
		return "", "", err
	}
	if len(u) == 0 || len(p) == 0 {
		return "", "", errEmptySecret
	}
	return string(u), string(p), nil
}

// saslStep sends one challenge (already base64) and decodes the client's
// response line. The response is a credential and is never traced.
func (s *session) saslStep(challenge string) ([]byte, error) {
	if s.debug {
		s.trace("S", "+ "+challenge)
	}
	if err := s.write([]byte("+ " + challenge + "\r\n")); err != nil {
		s.writeErr = err
		return nil, err
	}
	line, err := s.readLine(maxPreauthLine, s.loginD)
	if err != nil {
		return nil, err
	}
	if s.debug {
		s.trace("C", proxy.Redacted)
	}
	return decodeSASL(line)
}

type loginResult int

const (
	loginNone   loginResult = iota // no login was attempted
	loginOK                        // logged in: on to the TRANSACTION state
	loginFailed                    // refused; the client may try again
	loginClose                     // the connection is to be closed
)

// login checks the app password, takes a per-account session slot, and
// logs in upstream. Every failure is answered with an RFC 2449 / RFC 3206
// response code and proxy.ClientMessage's text.
func (s *session) login(user, pass, mech string) loginResult {
	start := time.Now()
	// The login is the command in progress: graceful shutdown lets it
	// finish (proxy.Handler), bounded by the upstream timeout.
	ctx := context.WithoutCancel(s.ctx)
	acct, err := s.srv.Auth.Authenticate(ctx, s.c.Remote, user, pass)
	var release func()
	if err == nil {
		release, err = s.srv.Limits.AcquireAccount("pop3", acct.Name)
	}
	if err == nil {
		var up *upstream
		var tok *oauth2.Token
		up, tok, err = s.connect(ctx, acct, time.Now().Add(s.srv.upstreamTimeout()))
		if err == nil {
			s.acct, s.mech, s.loginAt, s.release, s.up = acct, mech, time.Now(), release, up
			s.setRotation(tok, start)
		} else {
			release()
		}
	}
	s.srv.Metrics.Login("pop3", proxy.LoginOutcome(err))
	if err != nil {
		name := user
		if acct != nil {
			name = acct.Name
		}
		if f := proxy.Classify(err); f != proxy.FailBadCredentials && f != proxy.FailThrottled {
			// Bad credentials and throttling are logged by the
			// Authenticator, once, as the "login failed" line fail2ban
			// matches; this line must not look like it, since what
			// failed here is not the client's password.
			msg := "upstream login failed"
			if f == proxy.FailLimit {
				msg = "login refused: session limit"
			}
			s.log.Warn(msg, "user", name, "mech", mech,
				"outcome", proxy.LoginOutcome(err), "duration", time.Since(start).Round(time.Millisecond), "err", err)
		}
		if !s.reply("-ERR " + respCode(err) + " " + proxy.ClientMessage(err, name)) {
			return loginClose
		}
		return loginFailed
	}
	s.log = s.log.With("account", acct.Name, "upstream", acct.POP3.Addr)
	if !s.reply("+OK Logged in") {
		s.endReason = "client_gone"
		return loginClose
	}
	s.log.Info("login", "mech", mech, "duration", time.Since(start).Round(time.Millisecond))
	return loginOK
}
