package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// login is the outcome of a successful pre-auth dialogue: the account and
// its logged-in upstream connection.
type login struct {
	acct    *proxy.Account
	up      *upstream
	release func() // frees the per-account session slot
}

var errLogout = errors.New("imap: client logged out")

// preauthCaps is what the bridge offers before login (RFC 3501 §6.1.1).
// After login the client gets the upstream's filtered list in the OK.
func preauthCaps(c *proxy.Conn) string {
	caps := "IMAP4rev1 LITERAL+ SASL-IR ID"
	if c.Listener != nil && c.Listener.TLS == proxy.TLSStartTLS && !c.IsTLS() {
		caps += " STARTTLS"
	}
	if c.PlaintextAuthAllowed() {
		caps += " AUTH=PLAIN AUTH=LOGIN"
	} else {
		// RFC 3501 §6.2.3 / §11.1: no cleartext passwords before TLS.
		caps += " LOGINDISABLED"
	}
	return caps
}

// preauth runs the not-authenticated state until a login succeeds.
func (s *Server) preauth(ctx context.Context, cl *clientConn, log *slog.Logger) (*login, error) {
	c := cl.pc
	c.SetReadDeadline(s.now().Add(s.loginTimeout()))
	if err := cl.writeLine("* OK [CAPABILITY " + preauthCaps(c) + "] oauthbridge ready"); err != nil {
		return nil, err
	}
	bad := 0
	for {
		if ctx.Err() != nil {
			cl.writeLine("* BYE [UNAVAILABLE] Server shutting down")
			return nil, proxy.ErrShuttingDown
		}
		segs, err := readPreauthCommand(cl)
		if err != nil {
			var be *badCommand
			if !errors.As(err, &be) {
				return nil, err
			}
			if bad++; bad > maxBadCommands {
				cl.writeLine("* BYE Too many invalid commands")
				return nil, err
			}
			if err := cl.writeLine(be.reply()); err != nil {
				return nil, err
			}
			if be.fatal {
				return nil, err
			}
			continue
		}
		tag, name, args := splitCommand(segs[0].text)
		if tag == "" || name == "" {
			bad++
			if err := cl.writeLine("* BAD Invalid command"); err != nil || bad > maxBadCommands {
				return nil, errors.Join(err, errors.New("imap: too many invalid commands"))
			}
			continue
		}
		sc := newArgScanner(segs, args)
		var lg *login
		switch name {
		case "CAPABILITY":
			err = cl.writeLine("* CAPABILITY " + preauthCaps(c) + "\r\n" + tag + " OK CAPABILITY completed")
		case "NOOP":
			err = cl.writeLine(tag + " OK NOOP completed")
		case "ID":
			// RFC 2971 §3.1: the server may answer NIL.
			err = cl.writeLine("* ID NIL\r\n" + tag + " OK ID completed")
		case "LOGOUT":
			cl.writeLine("* BYE Logging out\r\n" + tag + " OK LOGOUT completed")
			return nil, errLogout
		case "STARTTLS":
			err = s.startTLS(cl, tag)
		case "LOGIN":
			lg, err = s.loginCommand(ctx, cl, log, tag, sc)
		case "AUTHENTICATE":
			lg, err = s.authenticateCommand(ctx, cl, log, tag, sc)
		default:
			bad++
			err = cl.writeLine(tag + " BAD Command not valid before login")
		}
		if err != nil || lg != nil {
			return lg, err
		}
		if bad > maxBadCommands {
			cl.writeLine("* BYE Too many invalid commands")
			return nil, errors.New("imap: too many invalid commands")
		}
	}
}

// badCommand is a client command the pre-auth reader refused. reply is the
// tagged (or untagged) BAD to send; fatal closes the connection after it
// (the client is about to send literal bytes the bridge will not read).
type badCommand struct {
	tag   string
	text  string
	fatal bool
}

func (e *badCommand) Error() string { return "imap: bad command: " + e.text }

func (e *badCommand) reply() string {
	if e.fatal {
		return "* BYE " + e.text
	}
	if e.tag == "" {
		return "* BAD " + e.text
	}
	return e.tag + " BAD " + e.text
}

// readPreauthCommand reads one command with its literals, answering "+"
// for synchronizing literals, within the pre-auth size limits.
func readPreauthCommand(cl *clientConn) ([]segment, error) {
	var segs []segment
	total := 0
	for {
		line, err := readLine(cl.br, maxPreauthLine, &cl.scratch)
		if err == errLineTooLong {
			return nil, &badCommand{text: "Line too long"}
		}
		if err != nil {
			return nil, err
		}
		cl.traceClient(line)
		text := append([]byte(nil), trimEOL(line)...)
		lit, ok, err := parseLiteral(line)
		if err != nil || (ok && len(segs) >= 3) {
			tag, _, _ := splitCommand(segs0text(segs, text))
			return nil, &badCommand{tag: tag, text: "Invalid literal", fatal: ok && lit.nonSync}
		}
		if !ok {
			return append(segs, segment{text: text}), nil
		}
		total += int(lit.size)
		if lit.size > maxPreauthLiteral || total > 2*maxPreauthLiteral {
			tag, _, _ := splitCommand(segs0text(segs, text))
			// A synchronizing literal was not accepted, so the client will
			// not send it (RFC 3501 §7.5); a non-synchronizing one is
			// already on its way and cannot be skipped safely.
			return nil, &badCommand{tag: tag, text: "Literal too large", fatal: lit.nonSync}
		}
		if !lit.nonSync {
			if err := cl.writeLine("+ Ready for literal data"); err != nil {
				return nil, err
			}
		}
		data := make([]byte, lit.size)
		if _, err := io.ReadFull(cl.br, data); err != nil {
			return nil, err
		}
		if cl.trace != nil {
			cl.trace.Debug(fmt.Sprintf("C: <literal, %d octets>", lit.size))
		}
		segs = append(segs, segment{text: text, lit: data})
	}
}

func segs0text(segs []segment, text []byte) []byte {
	if len(segs) > 0 {
		return segs[0].text
	}
	return text
}

// splitCommand splits the first line of a command into its tag, its
// upper-cased name ("UID FETCH" for UID commands) and the rest. tag is ""
// when it is not a valid tag.
func splitCommand(line []byte) (tag, name string, args []byte) {
	t, rest := splitWord(line)
	if len(t) == 0 {
		return "", "", nil
	}
	for _, c := range t {
		if !isTagChar(c) {
			return "", "", nil
		}
	}
	n, rest := splitWord(rest)
	name = upperASCII(n)
	if name == "UID" {
		sub, r := splitWord(rest)
		name = "UID " + upperASCII(sub)
		rest = r
	}
	return string(t), name, rest
}

func (s *Server) startTLS(cl *clientConn, tag string) error {
	c := cl.pc
	if c.Listener == nil || c.Listener.TLS != proxy.TLSStartTLS || c.IsTLS() {
		return cl.writeLine(tag + " BAD STARTTLS not available")
	}
	if cl.br.Buffered() > 0 {
		// RFC 3501 §6.2.1 / CVE-2011-0411: bytes pipelined after STARTTLS
		// would be taken as if sent over TLS. Refuse rather than guess.
		cl.writeLine("* BYE Data after STARTTLS")
		return errors.New("imap: client pipelined data after STARTTLS")
	}
	if err := cl.writeLine(tag + " OK Begin TLS negotiation now"); err != nil {
		return err
	}
	if err := c.StartTLS(s.loginTimeout()); err != nil {
		return fmt.Errorf("imap: STARTTLS handshake: %w", err)
	}
	cl.rebuffer()
	c.SetReadDeadline(s.now().Add(s.loginTimeout()))
	return nil
}

func (s *Server) loginCommand(ctx context.Context, cl *clientConn, log *slog.Logger, tag string, sc *argScanner) (*login, error) {
	if !cl.pc.PlaintextAuthAllowed() {
		return nil, cl.writeLine(tag + " NO [PRIVACYREQUIRED] Use STARTTLS before LOGIN")
	}
	user, err1 := sc.astring()
	pass, err2 := sc.astring()
	if err1 != nil || err2 != nil || !sc.done() {
		return nil, cl.writeLine(tag + " BAD Usage: LOGIN user password")
	}
	return s.finishLogin(ctx, cl, log, tag, string(user), string(pass))
}

// authenticateCommand handles AUTHENTICATE PLAIN (RFC 4616) and LOGIN,
// with an initial response (RFC 4959) or through continuations.
func (s *Server) authenticateCommand(ctx context.Context, cl *clientConn, log *slog.Logger, tag string, sc *argScanner) (*login, error) {
	mech, err := sc.atom()
	if err != nil {
		return nil, cl.writeLine(tag + " BAD Usage: AUTHENTICATE mechanism [initial-response]")
	}
	m := upperASCII(mech)
	if m != "PLAIN" && m != "LOGIN" {
		return nil, cl.writeLine(tag + " NO [CANNOT] Unsupported mechanism, use PLAIN or LOGIN")
	}
	if !cl.pc.PlaintextAuthAllowed() {
		return nil, cl.writeLine(tag + " NO [PRIVACYREQUIRED] Use STARTTLS before AUTHENTICATE")
	}
	var ir []byte
	hasIR := false
	if r := sc.remaining(); len(r) > 0 {
		hasIR = true
		if !bytes.Equal(r, []byte("=")) { // "=" is an empty initial response
			ir = r
		}
	}
	// next returns the client's next SASL response, decoded.
	next := func(challenge string) ([]byte, error) {
		if err := cl.writeLine("+ " + challenge); err != nil {
			return nil, err
		}
		line, err := readLine(cl.br, maxPreauthLine, &cl.scratch)
		if err != nil {
			if err == errLineTooLong {
				return nil, &badCommand{tag: tag, text: "Line too long"}
			}
			return nil, err
		}
		cl.traceClient(line)
		resp := trimEOL(line)
		if len(resp) == 1 && resp[0] == '*' {
			// RFC 3501 §6.2.2: a "*" line cancels; the server answers BAD.
			return nil, &badCommand{tag: tag, text: "AUTHENTICATE cancelled"}
		}
		return decodeB64(resp)
	}
	var user, pass string
	switch m {
	case "PLAIN":
		var resp []byte
		if hasIR {
			resp, err = decodeB64(ir)
		} else {
			resp, err = next("")
		}
		if err == nil {
			user, pass, err = parsePlain(resp)
		}
	case "LOGIN":
		var u, p []byte
		if hasIR {
			u, err = decodeB64(ir)
		} else {
			u, err = next("VXNlcm5hbWU6") // "Username:"
		}
		if err == nil {
			p, err = next("UGFzc3dvcmQ6") // "Password:"
		}
		user, pass = string(u), string(p)
	}
	if err != nil {
		var be *badCommand
		if errors.As(err, &be) {
			return nil, cl.writeLine(be.reply())
		}
		if errors.Is(err, errSASL) {
			return nil, cl.writeLine(tag + " BAD Invalid SASL response")
		}
		return nil, err
	}
	return s.finishLogin(ctx, cl, log, tag, user, pass)
}

var errSASL = errors.New("imap: malformed SASL response")

func decodeB64(b []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	if err != nil {
		return nil, errSASL
	}
	return out[:n], nil
}

// parsePlain splits a SASL PLAIN message authzid NUL authcid NUL passwd
// (RFC 4616 §2). An authorization identity other than the user itself is
// refused: the bridge does not do proxy authorization.
func parsePlain(b []byte) (user, pass string, err error) {
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return "", "", errSASL
	}
	if len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1]) {
		return "", "", errSASL
	}
	return string(parts[1]), string(parts[2]), nil
}

// finishLogin checks the local password, takes a session slot, logs in
// upstream, and answers the client.
func (s *Server) finishLogin(ctx context.Context, cl *clientConn, log *slog.Logger, tag, user, pass string) (*login, error) {
	start := s.now()
	acct, err := s.Auth.Authenticate(ctx, cl.pc.Remote, user, pass)
	if err != nil {
		return nil, s.loginFailed(cl, log, tag, user, err)
	}
	release := func() {}
	if s.Limits != nil {
		if release, err = s.Limits.AcquireAccount("imap", acct.Name); err != nil {
			return nil, s.loginFailed(cl, log, tag, acct.Name, err)
		}
	}
	uctx, cancel := context.WithTimeout(ctx, s.upstreamTimeout())
	up, err := dialUpstream(uctx, s.Dialer, acct)
	cancel()
	s.Metrics.UpstreamConnect("imap", s.now().Sub(start), err == nil)
	if err != nil {
		release()
		log.Warn("upstream login failed", "account", acct.Name, "upstream", acct.IMAP.Addr, "reason", err.Error())
		return nil, s.loginFailed(cl, log, tag, acct.Name, err)
	}
	s.Metrics.Login("imap", "ok")
	log.Info("login", "account", acct.Name, "upstream", up.addr, "duration", s.now().Sub(start).Round(time.Millisecond))
	if err := cl.writeLine(tag + " OK [CAPABILITY " + string(up.capLine) + "] Logged in"); err != nil {
		up.close()
		release()
		return nil, err
	}
	return &login{acct: acct, up: up, release: release}, nil
}

func (s *Server) upstreamTimeout() time.Duration {
	if s.Dialer != nil && s.Dialer.Timeout > 0 {
		return s.Dialer.Timeout
	}
	return 30 * time.Second
}

// loginFailed answers a failed login with the code and text for its kind
// (RFC 5530 response codes) and keeps the connection open for another try.
func (s *Server) loginFailed(cl *clientConn, log *slog.Logger, tag, user string, err error) error {
	s.Metrics.Login("imap", proxy.LoginOutcome(err))
	code := "UNAVAILABLE"
	switch proxy.Classify(err) {
	case proxy.FailBadCredentials, proxy.FailConsent, proxy.FailRefused:
		code = "AUTHENTICATIONFAILED"
	case proxy.FailLimit:
		code = "LIMIT"
	}
	if proxy.Classify(err) == proxy.FailConsent {
		log.Warn("login refused: account needs consent", "account", user)
	}
	return cl.writeLine(tag + " NO [" + code + "] " + proxy.ClientMessage(err, user))
}
