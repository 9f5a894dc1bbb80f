package smtp

import (
	"bytes"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// AuthMechanisms lists PLAIN and LOGIN where a password may be sent now;
// before STARTTLS on a listener that requires TLS, none are advertised
// (RFC 4954 §4 leaves it to the server; RFC 3207 §4 has the reply for a
// client that tries anyway).
func (s *session) AuthMechanisms() []string {
	if !s.passwordAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) passwordAllowed() bool {
	return tlsActive(s.conn, s.pc) || s.pc.PlaintextAuthAllowed()
}

// Auth starts a SASL exchange. go-smtp base64-decodes the client's
// responses and handles "*" (cancel); the mechanisms below see bytes.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.passwordAllowed() {
		return nil, errTLSRequired
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &plainServer{login: s.login}, nil
	case sasl.Login:
		return &loginServer{login: s.login}, nil
	}
	return nil, errUnknownMech
}

// login checks the app password and establishes the upstream session, so
// that upstream problems (revoked token, upstream down) are reported at
// AUTH. Only *SMTPError values leave it.
func (s *session) login(authzid, username, password string) error {
	if authzid != "" && !strings.EqualFold(authzid, username) {
		return errAuthzid
	}
	if s.cc.isDraining() || s.cc.isClosing() {
		s.cc.closeAtNextRead()
		return errShutdown
	}
	if !s.mu.TryLock() {
		// Only Data of a BDAT transfer holds mu now (see Logout): a mail
		// transaction is in progress, and waiting would deadlock.
		return errAuthInTx
	}
	defer s.mu.Unlock()
	if s.inTx {
		return errAuthInTx
	}
	// A relay client that sent mail and now authenticates becomes that
	// account instead.
	s.logoutLocked()
	ctx, cancel := s.upstreamCtx()
	defer cancel()
	acct, err := s.srv.Auth.Authenticate(ctx, s.pc.Remote, username, password)
	if err == nil {
		err = s.begin(ctx, acct, false)
	}
	s.srv.Metrics.Login(proto, proxy.LoginOutcome(err))
	s.log.Debug("AUTH", "user", username, "outcome", proxy.LoginOutcome(err))
	if err != nil {
		name := username
		if acct != nil {
			name = acct.Name
		}
		switch proxy.Classify(err) {
		case proxy.FailBadCredentials, proxy.FailThrottled:
			// The authenticator logged the failure (the fail2ban line).
		default:
			s.log.Info("upstream login failed", "account", name, "outcome", proxy.LoginOutcome(err), "err", err)
		}
		return s.loginFailure(err, name)
	}
	return nil
}

// parsePlain splits a PLAIN response (RFC 4616 §2):
// [authzid] NUL authcid NUL passwd, where authcid and passwd are not
// empty and no part contains NUL.
func parsePlain(b []byte) (authzid, user, pass string, err error) {
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || len(parts[2]) == 0 {
		return "", "", "", errMalformedPlain
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}

var errMalformedPlain = errors.New("smtp: malformed PLAIN response")

// plainServer is SASL PLAIN (RFC 4616) for go-smtp. Unlike go-sasl's, its
// errors are *SMTPError values, so go-smtp shows no internal text.
type plainServer struct {
	login func(authzid, user, pass string) error
	done  bool
}

func (p *plainServer) Next(response []byte) ([]byte, bool, error) {
	if p.done {
		return nil, true, errBadSASL
	}
	if response == nil {
		// No initial response: an empty challenge asks for it (RFC 4954
		// §4, "334 " then the client's response).
		return []byte{}, false, nil
	}
	p.done = true
	authzid, user, pass, err := parsePlain(response)
	if err != nil {
		return nil, true, errBadSASL
	}
	return nil, true, p.login(authzid, user, pass)
}

// loginServer is the LOGIN mechanism (draft-murchison-sasl-login): the
// challenges "Username:" and "Password:", each answered with one
// response. An initial response, when given, is the user name.
type loginServer struct {
	login func(authzid, user, pass string) error
	step  int // 0: want user name, 1: want password, 2: done
	user  string
}

var (
	loginUserPrompt = []byte("Username:")
	loginPassPrompt = []byte("Password:")
)

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil {
			return loginUserPrompt, false, nil
		}
		l.user = string(response)
		l.step = 1
		return loginPassPrompt, false, nil
	case 1:
		l.step = 2
		if response == nil || l.user == "" || len(response) == 0 {
			return nil, true, errBadSASL
		}
		return nil, true, l.login("", l.user, string(response))
	}
	return nil, true, errBadSASL
}
