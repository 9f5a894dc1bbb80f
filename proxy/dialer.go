package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// Dialer opens upstream connections. Its dial function is injectable so
// tests can point the well-known hosts at 127.0.0.1 or inject faults;
// Endpoint.TLSConfig carries the roots.
type Dialer struct {
	// Dial opens the TCP connection; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds connect plus TLS handshake when ctx has no earlier
	// deadline; zero means 30s.
	Timeout time.Duration
}

// DialEndpoint connects to ep. With UpstreamImplicitTLS the returned
// connection is a *tls.Conn whose handshake (with verification) is done;
// with UpstreamStartTLS it is the plain connection, to be upgraded with
// UpgradeTLS after the protocol's STARTTLS exchange.
func (d *Dialer) DialEndpoint(ctx context.Context, ep Endpoint) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	dial := d.Dial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	conn, err := dial(ctx, "tcp", ep.Addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: connect to %s: %w", ep.Addr, err)
	}
	if ep.TLS == UpstreamStartTLS {
		return conn, nil
	}
	tc, err := d.handshake(ctx, conn, ep)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// UpgradeTLS runs the client TLS handshake on conn (after STARTTLS was
// accepted) and returns the TLS connection.
func (d *Dialer) UpgradeTLS(ctx context.Context, conn net.Conn, ep Endpoint) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	return d.handshake(ctx, conn, ep)
}

func (d *Dialer) handshake(ctx context.Context, conn net.Conn, ep Endpoint) (*tls.Conn, error) {
	cfg := UpstreamTLSConfig(ep)
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("proxy: TLS with %s: %w", ep.Addr, err)
	}
	return tc, nil
}

// UpstreamTLSConfig returns the client TLS config for ep: its TLSConfig
// cloned, ServerName defaulting to the host of Addr, TLS 1.2 at least.
// Verification is never disabled.
func UpstreamTLSConfig(ep Endpoint) *tls.Config {
	var cfg *tls.Config
	if ep.TLSConfig != nil {
		cfg = ep.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(ep.Addr)
		if err != nil {
			host = ep.Addr
		}
		cfg.ServerName = host
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.InsecureSkipVerify = false
	return cfg
}

func (d *Dialer) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 30 * time.Second
}
