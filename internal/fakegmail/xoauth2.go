package fakegmail

import (
	"bytes"
	"errors"

	"github.com/emersion/go-sasl"
)

// Gmail's XOAUTH2 error challenges, sent (base64) before the final
// failure; the client must answer with an empty response. 401 is an
// invalid or expired token, 400 a payload Gmail cannot read.
const (
	challenge401 = `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`
	challenge400 = `{"status":"400","schemes":"bearer","scope":"https://mail.google.com/"}`
)

var (
	errBadCredentials = errors.New("fakegmail: invalid credentials")
	errMalformed      = errors.New("fakegmail: malformed xoauth2 payload")
	errUnknownUser    = errors.New("fakegmail: unknown user")
)

// parseXOAuth2 reads "user=" USER ^A "auth=Bearer " TOKEN ^A ^A. It is
// written here, not imported from the bridge, so that a shared encoding
// bug cannot hide.
func parseXOAuth2(b []byte) (user, token string, err error) {
	if !bytes.HasSuffix(b, []byte("\x01\x01")) {
		return "", "", errMalformed
	}
	fields := bytes.Split(b[:len(b)-2], []byte("\x01"))
	for _, f := range fields {
		k, v, ok := bytes.Cut(f, []byte("="))
		if !ok {
			return "", "", errMalformed
		}
		switch string(k) {
		case "user":
			user = string(v)
		case "auth":
			t, ok := bytes.CutPrefix(v, []byte("Bearer "))
			if !ok {
				return "", "", errMalformed
			}
			token = string(t)
		}
	}
	if user == "" || token == "" {
		return "", "", errMalformed
	}
	return user, token, nil
}

// authXOAuth2 checks a token for user and, when it is good, records the
// login on sess (attach runs first, to connect the mail store). It returns
// errBadCredentials, errTooManyConns, or nil.
func (s *Server) authXOAuth2(sess *session, user, token string, attach func(user string) error) error {
	if !s.hasUser(user) || !s.tokens.Validate(user, token) {
		s.log.Info("login failed", "proto", sess.proto, "session", sess.id, "account", normUser(user), "client_ip", sess.remote)
		return errBadCredentials
	}
	if err := sess.login(user, token); err != nil {
		s.log.Info("login refused", "proto", sess.proto, "session", sess.id, "account", normUser(user), "err", err)
		return err
	}
	if attach != nil {
		if err := attach(normUser(user)); err != nil {
			return err
		}
	}
	return nil
}

// xoauth2Server is the server side of SASL XOAUTH2 as Gmail runs it: a
// bad token gets an error challenge, and only the client's (empty) answer
// to it gets the final failure. Microsoft fails at once.
type xoauth2Server struct {
	microsoft bool
	// check returns nil, errBadCredentials, errMalformed, or an error to
	// return as is (already in the protocol's terms).
	check func(user, token string) error
	// fail is the protocol's final failure.
	fail  error
	state int // 0 start, 1 waiting for the payload, 2 challenge sent
}

var _ sasl.Server = (*xoauth2Server)(nil)

func newXOAuth2Server(microsoft bool, check func(user, token string) error, fail error) *xoauth2Server {
	return &xoauth2Server{microsoft: microsoft, check: check, fail: fail}
}

func (x *xoauth2Server) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch x.state {
	case 0:
		if resp == nil {
			// No initial response: an empty challenge asks for it.
			x.state = 1
			return nil, false, nil
		}
	case 2:
		return nil, false, x.fail
	}
	user, token, err := parseXOAuth2(resp)
	if err == nil {
		err = x.check(user, token)
	}
	switch {
	case err == nil:
		return nil, true, nil
	case errors.Is(err, errBadCredentials), errors.Is(err, errMalformed), errors.Is(err, errUnknownUser):
		if x.microsoft {
			return nil, false, x.fail
		}
		x.state = 2
		if errors.Is(err, errMalformed) {
			return []byte(challenge400), false, nil
		}
		return []byte(challenge401), false, nil
	}
	return nil, false, err
}
