package fakegmail

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// chanListener is a net.Listener fed by the fake's own accept loop, so
// the library gets connections whose TLS handshake is already done.
type chanListener struct {
	addrv net.Addr
	ch    chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(a net.Addr) *chanListener {
	return &chanListener{addrv: a, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// deliver hands c to the library; false when the listener is closed.
func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addrv }

// acceptLoop accepts TCP connections on ln until it is closed, completes
// each TLS handshake in its own goroutine (bounded by a deadline), and
// calls handle with the result.
func acceptLoop(s *Server, ln net.Listener, cfg *tls.Config, handle func(*tls.Conn, net.Conn)) {
	acceptRaw(s, ln, func(raw net.Conn) {
		if tc, ok := handshake(s, raw, cfg); ok {
			handle(tc, raw)
		}
	})
}

// acceptRaw accepts TCP connections on ln until it is closed and serves
// each in its own goroutine, tracked by s.wg.
func acceptRaw(s *Server, ln net.Listener, serve func(net.Conn)) {
	for {
		raw, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("accept", "err", err)
			}
			return
		}
		if !s.track() {
			raw.Close()
			return
		}
		go func() {
			defer s.wg.Done()
			serve(raw)
		}()
	}
}

// handshake runs a server TLS handshake on raw, bounded by a deadline and
// by Close.
func handshake(s *Server, raw net.Conn, cfg *tls.Config) (*tls.Conn, bool) {
	if !s.hold(raw) {
		raw.Close()
		return nil, false
	}
	defer s.release(raw)
	tc := tls.Server(raw, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		s.log.Debug("tls handshake", "client_ip", remoteIP(raw), "err", err)
		raw.Close()
		return nil, false
	}
	tc.SetDeadline(time.Time{})
	return tc, true
}

// slogPrintf adapts slog to the Printf loggers of go-imap and go-smtp.
// Their messages never hold credentials: they log errors, not commands.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, v ...any) {
	p.l.Debug("library", "msg", fmt.Sprintf(format, v...))
}

func (p slogPrintf) Println(v ...any) { p.l.Debug("library", "msg", fmt.Sprintln(v...)) }

// listen opens a TCP listener on addr.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakegmail: listen %s: %w", addr, err)
	}
	return ln, nil
}

// handoff wraps an accepted TLS connection with the protocol's framer (the
// fault and kick machinery), registers its session, and gives it to the
// library server that reads from feed.
func (s *Server) handoff(tc *tls.Conn, raw net.Conn, proto string, fr framer, feed *chanListener) {
	c := newWireConn(tc, raw, proto, fr)
	if c.sess = s.newSession(proto, remoteIP(raw), c); c.sess == nil {
		raw.Close()
		return
	}
	s.conns.Add(1)
	c.onClose = func() {
		c.sess.close()
		s.conns.Done()
	}
	if !feed.deliver(c) {
		c.Close()
	}
}
