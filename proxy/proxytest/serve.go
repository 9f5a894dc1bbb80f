package proxytest

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// Serve runs a real proxy.Listener for h on 127.0.0.1:0 (unless info.Addr
// says otherwise), allowing loopback clients, and returns its address. The
// listener is shut down in t.Cleanup (10s grace), which fails the test if
// a handler did not return in time.
func Serve(t testing.TB, h proxy.Handler, info proxy.ListenerInfo) string {
	t.Helper()
	l := Start(t, proxy.ListenerConfig{Info: info}, h)
	return l.Addr().String()
}

// Start is Serve with a full ListenerConfig (limiter, logger, metrics,
// allow list) and returns the running Listener. Empty cfg.Info.Addr means
// 127.0.0.1:0; empty cfg.Allow means loopback.
func Start(t testing.TB, cfg proxy.ListenerConfig, h proxy.Handler) *proxy.Listener {
	t.Helper()
	if cfg.Info.Addr == "" {
		cfg.Info.Addr = "127.0.0.1:0"
	}
	if cfg.Allow == nil {
		cfg.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	l, err := proxy.Listen(cfg, h)
	if err != nil {
		t.Fatalf("proxytest: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("proxytest: listener shutdown: %v (a handler ignored ctx cancellation)", err)
		}
		if err := <-served; !errors.Is(err, proxy.ErrListenerClosed) {
			t.Errorf("proxytest: Serve returned %v, want ErrListenerClosed", err)
		}
	})
	return l
}
