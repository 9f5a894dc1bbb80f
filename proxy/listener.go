package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
)

// ErrListenerClosed is returned by Serve after Shutdown or Close.
var ErrListenerClosed = errors.New("proxy: listener closed")

// DefaultHandshakeTimeout bounds the implicit-TLS handshake and the write
// of a Reject line when ListenerConfig.HandshakeTimeout is zero. Generous
// because old devices doing RSA on slow CPUs are the reason TLS 1.0 is
// supported at all.
const DefaultHandshakeTimeout = 15 * time.Second

// ListenerConfig configures a Listener.
type ListenerConfig struct {
	// Info is handed to every Conn. Info.TLSConfig is required for
	// TLSStartTLS and TLSImplicit.
	Info ListenerInfo
	// Allow lists the client networks served. Connections from anywhere
	// else are closed before a byte is read or written. Empty means
	// loopback only (127.0.0.0/8 and ::1), the config default: an empty
	// list never opens a listener to the world.
	Allow []netip.Prefix
	// Limiter caps connections in total and per client address
	// (AcquireConn); nil means no caps. The protocol handlers use the same
	// Limiter for the per-account cap.
	Limiter *Limiter
	// Logger receives connection-level lines; nil discards.
	Logger *slog.Logger
	// Metrics: the Listener owns oauthbridge_sessions_open (SessionOpened
	// before ServeConn, SessionClosed after it returns), so handlers must
	// not count sessions themselves. Nil disables.
	Metrics *metrics.Metrics
	// HandshakeTimeout bounds the implicit-TLS handshake and the write of
	// a Reject line (zero: DefaultHandshakeTimeout). A client that never
	// sends a ClientHello is closed after it.
	HandshakeTimeout time.Duration
}

// Listener accepts client connections for one configured listen address,
// filters them by allow list and connection caps, terminates implicit TLS,
// and hands each to a Handler on its own goroutine.
//
// Lifecycle: Listen (or NewListener), then Serve on a goroutine, then
// Shutdown (graceful) or Close (immediate). Serve returns
// ErrListenerClosed after either.
type Listener struct {
	ln      net.Listener
	info    *ListenerInfo // shared by every Conn; never modified after construction
	allow   []netip.Prefix
	limiter *Limiter
	log     *slog.Logger
	metrics *metrics.Metrics
	hsTime  time.Duration

	handler atomic.Pointer[handlerBox]

	// ctx is passed to ServeConn; cancel is called by Shutdown and Close
	// (the "drain now" signal).
	ctx    context.Context
	cancel context.CancelFunc
	// forced is handed to connections as Conn.Forced; force is called
	// by forceClose.
	forced context.Context
	force  context.CancelFunc
	// stopping is closed by Shutdown and Close; it ends the accept loop's
	// backoff sleeps and makes late connections get ErrShuttingDown.
	stopping chan struct{}
	stopOnce sync.Once

	mu sync.Mutex // guards the fields below
	// conns are the raw connections of running connection goroutines, for
	// force-closing them.
	conns     map[net.Conn]struct{}
	forcedAll bool          // force-close happened: close newly tracked conns at once
	serving   bool          // Serve was called
	loopEnd   chan struct{} // closed when the accept loop has returned

	// wg counts connection goroutines. Add is only called by the accept
	// loop, and Shutdown/Close wait for the loop to end before Wait.
	wg sync.WaitGroup
}

type handlerBox struct{ h Handler }

// Listen opens a TCP listener on cfg.Info.Addr and returns a Listener
// serving it with h. Call Serve to start accepting.
func Listen(cfg ListenerConfig, h Handler) (*Listener, error) {
	if err := checkConfig(cfg, h); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Info.Addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen %s %s: %w", cfg.Info.Protocol, cfg.Info.Addr, err)
	}
	return newListener(ln, cfg, h), nil
}

// NewListener returns a Listener serving connections accepted from ln (a
// socket from systemd socket activation, or a test's listener). The
// Listener owns ln and closes it on Shutdown and Close. cfg.Info.Addr is
// informational here.
func NewListener(ln net.Listener, cfg ListenerConfig, h Handler) (*Listener, error) {
	if err := checkConfig(cfg, h); err != nil {
		return nil, err
	}
	return newListener(ln, cfg, h), nil
}

func checkConfig(cfg ListenerConfig, h Handler) error {
	if h == nil {
		return errors.New("proxy: listener needs a handler")
	}
	if cfg.Info.TLS != TLSNone && cfg.Info.TLSConfig == nil {
		return fmt.Errorf("proxy: listener %s with tls %s needs a TLS config", cfg.Info.Addr, cfg.Info.TLS)
	}
	return nil
}

func newListener(ln net.Listener, cfg ListenerConfig, h Handler) *Listener {
	info := cfg.Info
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		// A fact about the socket: nothing off this host can reach it.
		info.Loopback = true
	}
	if info.Addr == "" {
		info.Addr = ln.Addr().String()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("proto", info.Protocol, "listen", info.Addr)
	hs := cfg.HandshakeTimeout
	if hs <= 0 {
		hs = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithCancel(WithProto(context.Background(), info.Protocol))
	forced, force := context.WithCancel(context.Background())
	l := &Listener{
		ln:       ln,
		info:     &info,
		allow:    append([]netip.Prefix(nil), cfg.Allow...),
		limiter:  cfg.Limiter,
		log:      log,
		metrics:  cfg.Metrics,
		hsTime:   hs,
		ctx:      ctx,
		cancel:   cancel,
		forced:   forced,
		force:    force,
		stopping: make(chan struct{}),
		conns:    make(map[net.Conn]struct{}),
		loopEnd:  make(chan struct{}),
	}
	l.handler.Store(&handlerBox{h})
	return l
}

// Addr returns the address the listener is bound to (with the real port
// when the configured one was 0).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Info returns the ListenerInfo every Conn of this listener carries.
func (l *Listener) Info() *ListenerInfo { return l.info }

// SetHandler swaps the handler (config reload): connections accepted from
// now on are served by h; running ones keep the handler they started with.
func (l *Listener) SetHandler(h Handler) {
	if h != nil {
		l.handler.Store(&handlerBox{h})
	}
}

// Serve accepts connections until Shutdown or Close (then it returns
// ErrListenerClosed) or a permanent accept error. Temporary errors (out of
// file descriptors, aborted connections) are retried with a backoff from
// 5ms doubling to 1s, as net/http does. Serve may be called once.
func (l *Listener) Serve() error {
	l.mu.Lock()
	if l.serving {
		l.mu.Unlock()
		return errors.New("proxy: Serve called twice")
	}
	l.serving = true
	l.mu.Unlock()
	defer close(l.loopEnd)

	select {
	case <-l.stopping:
		return ErrListenerClosed
	default:
	}
	l.log.Info("listening", "addr", l.ln.Addr().String(), "tls", l.info.TLS.String())
	var backoff time.Duration
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.stopping:
				return ErrListenerClosed
			default:
			}
			if !isTemporary(err) {
				return fmt.Errorf("proxy: accept on %s: %w", l.info.Addr, err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed, retrying", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.stopping:
				t.Stop()
				return ErrListenerClosed
			}
			continue
		}
		backoff = 0
		l.wg.Add(1)
		go l.serveConn(raw)
	}
}

func isTemporary(err error) bool {
	var te interface{ Temporary() bool }
	if errors.As(err, &te) && te.Temporary() {
		return true // EMFILE, ENFILE, ECONNABORTED, ... (net.OpError)
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// serveConn runs one connection: allow list, caps, TLS, then the handler.
// It owns raw and closes it on every path; a panic anywhere below is
// logged and ends only this connection.
func (l *Listener) serveConn(raw net.Conn) {
	defer l.wg.Done()
	remote := remoteAddr(raw)
	if !l.allowed(remote) {
		// Closed before any byte is read or written: nothing tells a
		// scanner from outside the allow list what listens here.
		l.log.Info("connection refused: address not allowed", "client_ip", addrString(remote))
		raw.Close()
		return
	}
	if !l.track(raw) {
		raw.Close()
		return
	}
	c := &Conn{Conn: raw, Remote: remote, Listener: l.info, ID: newSessionID(), Forced: l.forced}
	log := l.log.With("session", c.ID, "client_ip", remote.String())
	defer func() {
		if r := recover(); r != nil {
			log.Error("panic serving connection", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
		c.Conn.Close()
		if c.Conn != raw {
			raw.Close()
		}
		l.untrack(raw)
	}()
	h := l.handler.Load().h

	release, limitErr := l.limiter.AcquireConn(remote)
	if limitErr == nil {
		defer release()
	}
	// The handshake (implicit TLS) and any Reject line share one deadline,
	// so a client that sends nothing, or reads nothing, is dropped in time.
	if l.info.TLS == TLSImplicit || limitErr != nil {
		raw.SetDeadline(time.Now().Add(l.hsTime))
	}
	if l.info.TLS == TLSImplicit {
		tc := tls.Server(raw, l.info.TLSConfig)
		if err := tc.Handshake(); err != nil {
			log.Debug("TLS handshake failed", "err", err)
			return
		}
		c.Conn = tc
	}
	switch {
	case limitErr != nil:
		log.Info("connection refused", "reason", "too_many_sessions", "err", limitErr)
		h.Reject(c, limitErr)
		return
	case l.isStopping():
		h.Reject(c, ErrShuttingDown)
		return
	}
	if l.info.TLS == TLSImplicit {
		raw.SetDeadline(time.Time{})
	}

	log.Debug("connection accepted")
	start := time.Now()
	l.metrics.SessionOpened(l.info.Protocol)
	defer l.metrics.SessionClosed(l.info.Protocol)
	h.ServeConn(WithSession(l.ctx, c.ID), c)
	log.Debug("connection closed", "duration", time.Since(start).Round(time.Millisecond))
}

func (l *Listener) allowed(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	if len(l.allow) == 0 {
		return a.IsLoopback()
	}
	for _, p := range l.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *Listener) isStopping() bool {
	select {
	case <-l.stopping:
		return true
	default:
		return false
	}
}

// track records raw for force-closing; false when a force-close already
// happened (the caller closes raw).
func (l *Listener) track(raw net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.forcedAll {
		return false
	}
	l.conns[raw] = struct{}{}
	return true
}

func (l *Listener) untrack(raw net.Conn) {
	l.mu.Lock()
	delete(l.conns, raw)
	l.mu.Unlock()
}

// stop stops accepting: marks the listener stopping, closes the socket and
// cancels the handlers' ctx. It returns the socket's close error the first
// time.
func (l *Listener) stop() error {
	var err error
	l.stopOnce.Do(func() {
		close(l.stopping)
		err = l.ln.Close()
		l.cancel()
	})
	return err
}

// waitLoop waits for the accept loop to return, so no wg.Add can race
// with wg.Wait.
func (l *Listener) waitLoop() {
	l.mu.Lock()
	serving := l.serving
	l.mu.Unlock()
	if serving {
		<-l.loopEnd
	}
}

func (l *Listener) forceClose() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forcedAll = true
	l.force()
	n := len(l.conns)
	for c := range l.conns {
		c.Close()
	}
	return n
}

// Shutdown stops accepting, cancels the ctx handed to ServeConn so
// handlers finish at a command boundary and say goodbye, and waits for
// them. When ctx ends first it force-closes the remaining connections,
// still waits for their handlers to return, and returns ctx's error.
// Connections accepted while Shutdown runs get Reject(ErrShuttingDown).
func (l *Listener) Shutdown(ctx context.Context) error {
	start := time.Now()
	l.stop()
	l.waitLoop()
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		l.log.Info("listener stopped", "duration", time.Since(start).Round(time.Millisecond))
		return nil
	case <-ctx.Done():
		n := l.forceClose()
		<-done
		l.log.Warn("listener stopped, sessions force-closed", "closed", n, "duration", time.Since(start).Round(time.Millisecond))
		return ctx.Err()
	}
}

// Close stops accepting, closes every connection at once and waits for
// the handlers to return (their reads and writes fail immediately).
func (l *Listener) Close() error {
	err := l.stop()
	l.waitLoop()
	l.forceClose()
	l.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

var sessionEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// newSessionID returns 8 random characters (40 bits): short enough for
// log lines, unique enough to follow one session through them.
func newSessionID() string {
	var b [5]byte
	rand.Read(b[:])
	return sessionEncoding.EncodeToString(b[:])
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}

var _ io.Closer = (*Listener)(nil)
