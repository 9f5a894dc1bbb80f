package pop3

import (
	"bytes"
	"encoding/base64"
	"errors"
)

// Local SASL (RFC 5034): the bridge accepts PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login) from clients. Both carry a user name and an
// app password; everything else about them is framing.

var (
	errBadBase64   = errors.New("pop3: invalid base64 in SASL response")
	errBadPlain    = errors.New("pop3: malformed SASL PLAIN message")
	errAuthzid     = errors.New("pop3: SASL authorization identity differs from the user")
	errSASLCancel  = errors.New("pop3: SASL exchange cancelled by the client")
	errEmptySecret = errors.New("pop3: empty user name or password")
)

// LOGIN's challenges, base64 of "Username:" and "Password:" as every
// client of the mechanism expects them.
const (
	loginUserChallenge = "VXNlcm5hbWU6"
	loginPassChallenge = "UGFzc3dvcmQ6"
)

// decodeSASL decodes one client SASL response (an AUTH initial response or
// a continuation line) per RFC 5034 §4: "*" cancels, "=" is an empty
// initial response, anything else is base64. Unpadded base64 is accepted
// too, because some clients strip the padding.
func decodeSASL(b []byte) ([]byte, error) {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "*":
		return nil, errSASLCancel
	case "=":
		return []byte{}, nil
	}
	// RawStdEncoding's bound is the larger one (no padding to subtract).
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(b))+3)
	n, err := base64.StdEncoding.Decode(out, b)
	if err != nil {
		n, err = base64.RawStdEncoding.Decode(out, b)
		if err != nil {
			return nil, errBadBase64
		}
	}
	return out[:n], nil
}

// decodePlain splits a SASL PLAIN message, authzid NUL authcid NUL passwd
// (RFC 4616 §2). The bridge logs users in as themselves only, so a
// non-empty authzid must equal authcid.
func decodePlain(msg []byte) (user, pass string, err error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", errBadPlain
	}
	authzid, authcid, passwd := parts[0], parts[1], parts[2]
	if len(authcid) == 0 || len(passwd) == 0 {
		return "", "", errEmptySecret
	}
	if len(authzid) > 0 && !bytes.EqualFold(authzid, authcid) {
		return "", "", errAuthzid
	}
	return string(authcid), string(passwd), nil
}
