package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// lineHandler greets with "hello <name> <session>", then echoes lines until
// the client closes or ctx is cancelled; on cancellation it answers the
// next line with "bye" (a command boundary) and returns.
type lineHandler struct {
	name    string
	served  atomic.Int64
	started chan string // receives the session ID of each served conn, when not nil
	// ignoreCtx makes it keep reading after cancellation, to test
	// force-close; panicOn makes it panic when a line equals it.
	ignoreCtx bool
	panicOn   string
	returned  chan struct{} // receives one value when ServeConn returns, when not nil
}

func (h *lineHandler) ServeConn(ctx context.Context, c *proxy.Conn) {
	h.served.Add(1)
	if h.returned != nil {
		defer func() { h.returned <- struct{}{} }()
	}
	if c.ID == "" || !c.Remote.IsValid() || c.Listener == nil {
		fmt.Fprintf(c, "bad conn %+v\r\n", c)
		return
	}
	fmt.Fprintf(c, "hello %s %s\r\n", h.name, c.ID)
	if h.started != nil {
		h.started <- c.ID
	}
	// Cancellation interrupts the blocked read: a real handler does the
	// same with a deadline or by closing at a command boundary.
	stop := context.AfterFunc(ctx, func() {
		if !h.ignoreCtx {
			c.SetReadDeadline(time.Now())
		}
	})
	defer stop()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil && !h.ignoreCtx {
				fmt.Fprintf(c, "bye\r\n")
			}
			return
		}
		line = strings.TrimSpace(line)
		if h.panicOn != "" && line == h.panicOn {
			panic("test panic: " + line)
		}
		fmt.Fprintf(c, "echo %s\r\n", line)
	}
}

func (h *lineHandler) Reject(c *proxy.Conn, err error) {
	fmt.Fprintf(c, "reject %s: %v\r\n", h.name, err)
}

var loopbackAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// client is a test connection with a line reader.
type client struct {
	net.Conn
	r *bufio.Reader
}

func dialFrom(t *testing.T, addr, from string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &client{Conn: c, r: bufio.NewReader(c)}
}

func (c *client) line(t *testing.T) string {
	t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// closedSilently asserts the server closed without sending a byte.
func (c *client) closedSilently(t *testing.T) {
	t.Helper()
	b, err := io.ReadAll(c.r)
	if len(b) != 0 {
		t.Fatalf("server sent %q before closing", b)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v, want EOF or reset", err)
	}
}

func TestListenerAllowList(t *testing.T) {
	tests := []struct {
		name   string
		allow  []netip.Prefix
		from   string
		served bool
	}{
		{"allowed exact", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "127.0.0.1", true},
		{"outside list", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "127.0.0.2", false},
		{"inside wider list", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "127.0.0.2", true},
		{"empty list is loopback", nil, "127.0.0.2", true},
		{"unrelated list", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("::1/128")}, "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxytest.VerifyNoLeaks(t)
			logs := proxytest.NewLogBuffer()
			h := &lineHandler{name: "a"}
			allow := tt.allow
			if allow == nil {
				allow = []netip.Prefix{} // proxytest.Start treats nil as loopback itself
			}
			l := proxytest.Start(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}, Allow: allow, Logger: logs.Logger()}, h)
			c := dialFrom(t, l.Addr().String(), tt.from)
			if tt.served {
				if got := c.line(t); !strings.HasPrefix(got, "hello a ") {
					t.Fatalf("greeting %q", got)
				}
				return
			}
			c.closedSilently(t)
			if n := h.served.Load(); n != 0 {
				t.Fatalf("handler served %d connections from outside the allow list", n)
			}
			if got := logs.Lines("level=INFO", "not allowed", "client_ip="+tt.from); len(got) != 1 {
				t.Fatalf("want one info line with client_ip=%s, logs:\n%s", tt.from, logs)
			}
		})
	}
}

func TestListenerCaps(t *testing.T) {
	tests := []struct {
		name   string
		limits proxy.Limits
		from   []string // the held connections
		extra  string   // the connection that must be rejected
		other  string   // a connection that must still be served, "" for none
	}{
		{"total", proxy.Limits{MaxConnections: 2}, []string{"127.0.0.1", "127.0.0.2"}, "127.0.0.3", ""},
		{"per address", proxy.Limits{PerAddress: 1}, []string{"127.0.0.1"}, "127.0.0.1", "127.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxytest.VerifyNoLeaks(t)
			lim := proxy.NewLimiter(tt.limits)
			h := &lineHandler{name: "a"}
			l := proxytest.Start(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "pop3"}, Limiter: lim}, h)
			addr := l.Addr().String()
			var held []*client
			for _, from := range tt.from {
				c := dialFrom(t, addr, from)
				if got := c.line(t); !strings.HasPrefix(got, "hello") {
					t.Fatalf("greeting %q", got)
				}
				held = append(held, c)
			}
			c := dialFrom(t, addr, tt.extra)
			if got, want := c.line(t), "reject a: "+proxy.ErrTooManySessions.Error(); !strings.HasPrefix(got, want) {
				t.Fatalf("over the cap got %q, want prefix %q", got, want)
			}
			c.closedSilently(t)
			if tt.other != "" {
				if got := dialFrom(t, addr, tt.other).line(t); !strings.HasPrefix(got, "hello") {
					t.Fatalf("other address got %q", got)
				}
			}
			// Releasing a slot lets the next connection in.
			n := lim.Conns()
			held[0].Close()
			waitFor(t, "slot release", func() bool { return lim.Conns() == n-1 })
			if got := dialFrom(t, addr, tt.extra).line(t); !strings.HasPrefix(got, "hello") {
				t.Fatalf("after release got %q", got)
			}
		})
	}
}

// waitFor polls cond: used only where no event exists (a slot released
// after a handler returned).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startListener(t *testing.T, cfg proxy.ListenerConfig, h proxy.Handler) (*proxy.Listener, chan error) {
	t.Helper()
	if cfg.Info.Addr == "" {
		cfg.Info.Addr = "127.0.0.1:0"
	}
	l, err := proxy.Listen(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	t.Cleanup(func() { l.Close() })
	return l, served
}

func sessionsOpen(t *testing.T, m *metrics.Metrics, proto string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "oauthbridge_sessions_open" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "proto" && lp.GetValue() == proto {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func TestListenerShutdownDrains(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	m := metrics.New()
	h := &lineHandler{name: "a", started: make(chan string, 2), returned: make(chan struct{}, 2)}
	l, served := startListener(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}, Allow: loopbackAllow, Metrics: m}, h)
	c1 := dialFrom(t, l.Addr().String(), "")
	c2 := dialFrom(t, l.Addr().String(), "")
	for _, c := range []*client{c1, c2} {
		c.line(t)
		<-h.started
	}
	if got := sessionsOpen(t, m, "imap"); got != 2 {
		t.Fatalf("sessions_open = %v, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Shutdown returned, so both handlers have returned, each after
	// saying goodbye at a command boundary.
	if len(h.returned) != 2 {
		t.Fatalf("%d handlers returned before Shutdown did", len(h.returned))
	}
	for _, c := range []*client{c1, c2} {
		if got := c.line(t); got != "bye" {
			t.Fatalf("got %q, want bye", got)
		}
	}
	if err := <-served; !errors.Is(err, proxy.ErrListenerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if got := sessionsOpen(t, m, "imap"); got != 0 {
		t.Fatalf("sessions_open = %v after shutdown", got)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("listener still accepts after Shutdown")
	}
}

func TestListenerShutdownForceCloses(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	h := &lineHandler{name: "a", ignoreCtx: true, started: make(chan string, 1), returned: make(chan struct{}, 1)}
	l, _ := startListener(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}, Allow: loopbackAllow}, h)
	c := dialFrom(t, l.Addr().String(), "")
	c.line(t)
	<-h.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if len(h.returned) != 1 {
		t.Fatal("Shutdown returned before the handler")
	}
	c.closedSilently(t)
}

// forcedHandler blocks on nothing but c.Forced, as a handler does that
// holds a command back while waiting for its upstream.
type forcedHandler struct{ started, returned chan struct{} }

func (h *forcedHandler) ServeConn(_ context.Context, c *proxy.Conn) {
	defer close(h.returned)
	close(h.started)
	<-c.Forced.Done()
}

func (h *forcedHandler) Reject(*proxy.Conn, error) {}

func TestListenerShutdownSignalsForced(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	h := &forcedHandler{started: make(chan struct{}), returned: make(chan struct{})}
	l, _ := startListener(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}, Allow: loopbackAllow}, h)
	dialFrom(t, l.Addr().String(), "")
	<-h.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	select {
	case <-h.returned:
	default:
		t.Fatal("Shutdown returned before the handler")
	}
}

func TestListenerClose(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	h := &lineHandler{name: "a", ignoreCtx: true, started: make(chan string, 1), returned: make(chan struct{}, 1)}
	l, served := startListener(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "smtp"}, Allow: loopbackAllow}, h)
	c := dialFrom(t, l.Addr().String(), "")
	c.line(t)
	<-h.started
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(h.returned) != 1 {
		t.Fatal("Close returned before the handler")
	}
	if err := <-served; !errors.Is(err, proxy.ErrListenerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Serve(); err == nil {
		t.Fatal("second Serve succeeded")
	}
}

func TestListenerSurvivesPanic(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	logs := proxytest.NewLogBuffer()
	h := &lineHandler{name: "a", panicOn: "boom"}
	l := proxytest.Start(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}, Logger: logs.Logger()}, h)
	c := dialFrom(t, l.Addr().String(), "")
	c.line(t)
	fmt.Fprintf(c, "boom\r\n")
	c.closedSilently(t)
	if got := logs.Lines("level=ERROR", "panic serving connection", "test panic: boom", "goroutine"); len(got) != 1 {
		t.Fatalf("want one error line with the panic and its stack, logs:\n%s", logs)
	}
	c2 := dialFrom(t, l.Addr().String(), "")
	c2.line(t)
	fmt.Fprintf(c2, "still there\r\n")
	if got := c2.line(t); got != "echo still there" {
		t.Fatalf("after a panic got %q", got)
	}
}

func TestListenerSetHandler(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	a := &lineHandler{name: "a"}
	b := &lineHandler{name: "b"}
	l := proxytest.Start(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}}, a)
	c1 := dialFrom(t, l.Addr().String(), "")
	if got := c1.line(t); !strings.HasPrefix(got, "hello a ") {
		t.Fatalf("got %q", got)
	}
	l.SetHandler(b)
	c2 := dialFrom(t, l.Addr().String(), "")
	if got := c2.line(t); !strings.HasPrefix(got, "hello b ") {
		t.Fatalf("new connection got %q, want handler b", got)
	}
	fmt.Fprintf(c1, "x\r\n")
	if got := c1.line(t); got != "echo x" || a.served.Load() != 1 || b.served.Load() != 1 {
		t.Fatalf("old connection got %q; served a=%d b=%d", got, a.served.Load(), b.served.Load())
	}
}

func TestListenerSessionIDs(t *testing.T) {
	h := &lineHandler{name: "a", started: make(chan string, 20)}
	l := proxytest.Start(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}}, h)
	seen := map[string]bool{}
	for range 20 {
		c := dialFrom(t, l.Addr().String(), "")
		c.line(t)
		id := <-h.started
		if len(id) != 8 || seen[id] {
			t.Fatalf("session ID %q: want 8 characters, unique", id)
		}
		seen[id] = true
		c.Close()
	}
}

// gatedListener lets a test decide when Accept returns, to make a
// connection arrive after Shutdown began.
type gatedListener struct {
	net.Listener
	gate        chan struct{} // Accept waits for it
	closeCalled chan struct{} // closed by Close
	closeOnce   sync.Once
	handed      bool // only touched by Accept, which the accept loop calls serially
}

func (g *gatedListener) Accept() (net.Conn, error) {
	<-g.gate
	select {
	case <-g.closeCalled:
		if !g.handed {
			// First Accept after Close: hand over the queued
			// connection (the race being tested), then report closed.
			g.handed = true
			return g.Listener.Accept()
		}
		return nil, net.ErrClosed
	default:
	}
	return g.Listener.Accept()
}

func (g *gatedListener) Close() error {
	g.closeOnce.Do(func() { close(g.closeCalled) })
	return nil
}

func TestListenerRejectsDuringShutdown(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	g := &gatedListener{Listener: inner, gate: make(chan struct{}), closeCalled: make(chan struct{})}
	h := &lineHandler{name: "a"}
	l, err := proxy.NewListener(g, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}, Allow: loopbackAllow}, h)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	c := dialFrom(t, inner.Addr().String(), "") // queued in the kernel
	shut := make(chan error, 1)
	go func() { shut <- l.Shutdown(context.Background()) }()
	<-g.closeCalled
	close(g.gate) // the queued connection is accepted after Shutdown began
	if got, want := c.line(t), "reject a: "+proxy.ErrShuttingDown.Error(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, proxy.ErrListenerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if h.served.Load() != 0 {
		t.Fatal("a connection arriving during Shutdown was served")
	}
}

// flakyListener fails Accept with the given errors first.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex // guards errs
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func TestListenerAcceptErrors(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	permanent := errors.New("listener broke")
	t.Run("temporary errors back off and continue", func(t *testing.T) {
		proxytest.VerifyNoLeaks(t)
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		logs := proxytest.NewLogBuffer()
		f := &flakyListener{Listener: inner, errs: []error{emfile, emfile, emfile}}
		l, err := proxy.NewListener(f, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}, Logger: logs.Logger()}, &lineHandler{name: "a"})
		if err != nil {
			t.Fatal(err)
		}
		go l.Serve()
		defer l.Close()
		if got := dialFrom(t, inner.Addr().String(), "").line(t); !strings.HasPrefix(got, "hello a") {
			t.Fatalf("got %q", got)
		}
		if got := logs.Lines("accept failed, retrying"); len(got) != 3 {
			t.Fatalf("want 3 retry lines, logs:\n%s", logs)
		}
	})
	t.Run("permanent error ends Serve", func(t *testing.T) {
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f := &flakyListener{Listener: inner, errs: []error{permanent}}
		l, err := proxy.NewListener(f, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "imap"}}, &lineHandler{name: "a"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Serve(); !errors.Is(err, permanent) {
			t.Fatalf("Serve = %v, want %v", err, permanent)
		}
	})
}

func TestListenConfigErrors(t *testing.T) {
	h := &lineHandler{}
	if _, err := proxy.Listen(proxy.ListenerConfig{Info: proxy.ListenerInfo{Addr: "127.0.0.1:0", TLS: proxy.TLSImplicit}}, h); err == nil {
		t.Error("implicit TLS without a TLS config accepted")
	}
	if _, err := proxy.Listen(proxy.ListenerConfig{Info: proxy.ListenerInfo{Addr: "127.0.0.1:0"}}, nil); err == nil {
		t.Error("nil handler accepted")
	}
	if _, err := proxy.Listen(proxy.ListenerConfig{Info: proxy.ListenerInfo{Addr: "127.0.0.1:99999"}}, h); err == nil {
		t.Error("bad address accepted")
	}
}
