package daemon

import (
	"crypto/tls"
	"sync/atomic"
)

// tlsHolder gives a listener a server TLS config whose certificate and
// versions a reload can replace: a proxy.Listener keeps the *tls.Config it
// was built with, so that one only delegates (GetConfigForClient) to the
// current config. A renewed cert_file or a changed min_tls_version takes
// effect on SIGHUP for new handshakes without touching the listener.
type tlsHolder struct {
	cur   atomic.Pointer[tls.Config]
	outer *tls.Config
}

func newTLSHolder(inner *tls.Config) *tlsHolder {
	h := &tlsHolder{}
	h.cur.Store(inner)
	// crypto/tls calls GetConfigForClient right after reading the
	// ClientHello, before version and cipher suite negotiation, so every
	// setting of the returned config applies to the handshake.
	h.outer = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return h.cur.Load(), nil
	}}
	return h
}

func (h *tlsHolder) set(inner *tls.Config) { h.cur.Store(inner) }
