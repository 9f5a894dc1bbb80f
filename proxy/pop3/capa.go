package pop3

import (
	"strings"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// Capabilities (RFC 2449 §5).
//
// Before login the bridge answers CAPA from a fixed local set, without an
// upstream connection (it does not know the account yet, so it could not
// pick one): the lines describing what the bridge itself accepts, plus TOP
// and UIDL, which every upstream the bridge is built for (Gmail, Microsoft
// 365, Dovecot) implements and which the bridge's session continuity
// depends on (UIDL). After login CAPA is forwarded upstream and merged:
// the bridge's own lines again (RFC 2449 §5: capabilities of the
// AUTHORIZATION state MUST be announced in both states, so TOP and UIDL
// are always there too), then the upstream's lines that are safe to pass
// (allowedUpstreamCaps); the upstream's USER, SASL, STLS, PIPELINING and
// response-code lines are replaced by the bridge's, and anything the relay
// cannot frame is dropped.

// capaStatus is the status line of every CAPA answer.
const capaStatus = "+OK Capability list follows"

// localCaps is the bridge's own capability lines for a connection in its
// current state.
func (s *session) localCaps() []string {
	caps := make([]string, 0, 8)
	// USER and SASL only when a password would be accepted now (RFC 2595
	// §4 lets a server withhold them before STLS), so a client never
	// offers one in the clear just to be refused.
	if s.c.PlaintextAuthAllowed() {
		caps = append(caps, "USER", "SASL PLAIN LOGIN")
	}
	if s.stlsAvailable() {
		caps = append(caps, "STLS")
	}
	// RESP-CODES and AUTH-RESP-CODE: the bridge's -ERR replies carry RFC
	// 2449 / RFC 3206 codes. PIPELINING: the bridge processes commands
	// strictly in order from its buffer, so a pipelining client is served
	// correctly in both states.
	return append(caps, "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING")
}

// stlsAvailable reports whether STLS (RFC 2595 §4) can be used now.
func (s *session) stlsAvailable() bool {
	l := s.c.Listener
	return l != nil && l.TLS == proxy.TLSStartTLS && l.TLSConfig != nil && !s.c.IsTLS()
}

// allowedUpstreamCaps are the upstream capability tags passed to clients
// after login. Each is either an advisory (EXPIRE, LOGIN-DELAY,
// IMPLEMENTATION: RFC 2449 §6) or a command the relay frames; TOP and
// UIDL are in localCaps already.
var allowedUpstreamCaps = map[string]bool{
	"EXPIRE":         true,
	"LOGIN-DELAY":    true,
	"IMPLEMENTATION": true,
}

// mergeCaps builds the post-login capability list from the upstream's
// CAPA lines (nil when the upstream gave none).
func (s *session) mergeCaps(upstream []string) []string {
	caps := s.localCaps()
	for _, line := range upstream {
		tag, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if allowedUpstreamCaps[strings.ToUpper(tag)] {
			caps = append(caps, line)
		}
	}
	return caps
}
