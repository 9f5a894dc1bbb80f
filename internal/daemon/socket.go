package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
)

// socket is a bound TCP listen socket. The daemon owns it, not the
// proxy.Listener serving it, so that a reload can change what a
// proxy.Listener fixes at construction (allow list, TLS mode,
// allow_plaintext_auth, protocol) without closing the port: the old
// Listener's accept loop is detached (its running sessions go on
// untouched), and a new Listener accepts from the same socket. Clients
// connecting meanwhile wait in the kernel's backlog; none is refused.
type socket struct {
	ln *net.TCPListener

	mu    sync.Mutex // guards owner
	owner *socketView
}

func bindSocket(addr string) (*socket, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &socket{ln: ln.(*net.TCPListener)}, nil
}

// newView returns a view that does not own the socket yet: a Listener
// can be built on it before the swap, and handOff makes it the owner.
func (s *socket) newView() *socketView {
	return &socketView{s: s, done: make(chan struct{})}
}

// handOff makes v the owner and detaches the previous owner, if any: the
// old view's Accept returns net.ErrClosed from now on, and handOff waits
// for the old accept loop to have returned (oldServed) before v is used,
// so two loops never accept from one socket.
func (s *socket) handOff(v *socketView, oldServed <-chan struct{}) {
	s.mu.Lock()
	old := s.owner
	s.owner = v
	s.mu.Unlock()
	if old == nil {
		return
	}
	old.detach()
	// A deadline in the past wakes an Accept blocked in the old loop; it
	// sees its view detached and reports the socket closed.
	s.ln.SetDeadline(time.Now())
	<-oldServed
	s.ln.SetDeadline(time.Time{})
}

// close closes the socket itself (daemon Close, or cleanup of a socket
// bound for a reload that then failed).
func (s *socket) close() error { return s.ln.Close() }

// socketView is the net.Listener one proxy.Listener gets.
type socketView struct {
	s        *socket
	done     chan struct{} // closed when detached or closed
	doneOnce sync.Once
}

var _ net.Listener = (*socketView)(nil)

func (v *socketView) detach() { v.doneOnce.Do(func() { close(v.done) }) }

func (v *socketView) detached() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

func (v *socketView) Accept() (net.Conn, error) {
	if v.detached() {
		return nil, net.ErrClosed
	}
	c, err := v.s.ln.Accept()
	if err != nil && v.detached() {
		return nil, net.ErrClosed
	}
	return c, err
}

// Close is called by the proxy.Listener on Shutdown or Close. The socket is
// closed only while this view still owns it; a view that handed the socket
// on leaves it to its successor.
func (v *socketView) Close() error {
	v.detach()
	v.s.mu.Lock()
	owner := v.s.owner == v
	if owner {
		v.s.owner = nil
	}
	v.s.mu.Unlock()
	if owner {
		return v.s.ln.Close()
	}
	return nil
}

func (v *socketView) Addr() net.Addr { return v.s.ln.Addr() }

// sameSocket reports whether a listener configured as b can take over the
// socket of one configured as a: the same address (port 0 asks for a fresh
// port each time, so there the same text and protocol), compared with IPs
// canonical, so "[::ffff:127.0.0.1]:1143" is "127.0.0.1:1143".
func sameSocket(a, b *config.Listener) bool {
	ha, pa, err1 := net.SplitHostPort(a.Listen)
	hb, pb, err2 := net.SplitHostPort(b.Listen)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	if pa == "0" {
		return a.Listen == b.Listen && a.Protocol == b.Protocol
	}
	return canonicalHost(ha) == canonicalHost(hb)
}

func canonicalHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		if a.IsUnspecified() {
			return ""
		}
		return a.Unmap().String()
	}
	return strings.ToLower(h)
}

// unmapPrefixes turns IPv4-mapped IPv6 prefixes (::ffff:192.0.2.0/120)
// into IPv4 ones: the listener unmaps client addresses before matching,
// so a mapped prefix would never match anything.
func unmapPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if a := p.Addr(); a.Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				// Wider than the mapped range: it also admits every IPv4
				// client.
				out = append(out, p, netip.PrefixFrom(netip.IPv4Unspecified(), 0))
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), bits).Masked()
		}
		out = append(out, p)
	}
	return out
}

func listenErr(i int, l *config.Listener, err error) error {
	return &config.Error{Path: fmt.Sprintf("listeners[%d].listen", i),
		Msg: fmt.Sprintf("cannot listen on %s: %v", l.Listen, err), Err: err}
}
