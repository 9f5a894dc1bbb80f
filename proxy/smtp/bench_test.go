package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// Benchmarks run the bridge in-process against the fake Gmail on
// loopback, next to the same work done directly against the fake:
//
//	go test -run '^$' -bench . -benchtime 1000x ./proxy/smtp   (Submission: 1000 messages)
//	go test -run '^$' -bench Data20MiB -benchtime 5x ./proxy/smtp
//
// Results are in the report and docs/PERFORMANCE.md.

// directClient logs in to the fake's implicit TLS port with XOAUTH2, as
// the bridge does, through the same dialer.
func (br *bridge) directClient(b *testing.B, lag *lagDialer) *gosmtp.Client {
	raw, err := lag.dial(context.Background(), "tcp", br.fg.SMTPAddr())
	if err != nil {
		b.Fatal(err)
	}
	c := gosmtp.NewClient(tls.Client(raw, &tls.Config{RootCAs: br.fg.RootCAs(), ServerName: "127.0.0.1"}))
	b.Cleanup(func() { c.Close() })
	if err := c.Auth(&proxy.XOAuth2{User: alice, Token: br.fg.AccessToken(alice)}); err != nil {
		b.Fatal(err)
	}
	return c
}

func (br *bridge) bridgeClient(b *testing.B) *gosmtp.Client {
	c, err := gosmtp.Dial(br.addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.Auth(sasl.NewPlainClient("", alice, alicePW)); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkSubmission sends b.N small messages over one session, directly
// and through the bridge (target: bridge >= 0.9 x direct msgs/s), with
// the upstream on loopback (rtt=0) and with 1 ms of added upstream round
// trip (rtt=1ms; both modes see the same latency; real providers are
// 10-50 ms away).
//
// On loopback the upstream is as near as the client, the worst case for
// a bridge: go-smtp's client does not pipeline, and MAIL, each RCPT and
// the final dot must wait for the upstream's reply before the local one
// (per-recipient replies, 250 only after the upstream's 250), so every
// message costs three local hops more than direct.
func BenchmarkSubmission(b *testing.B) {
	msg := testMessage("bench", 20) // ~700 bytes
	for _, rtt := range []time.Duration{0, time.Millisecond} {
		for _, mode := range []string{"direct", "bridge"} {
			b.Run(fmt.Sprintf("rtt=%v/%s", rtt, mode), func(b *testing.B) {
				lag := &lagDialer{delay: rtt}
				br := startBridge(b, bridgeOpts{dial: lag.dial, configure: func(s *Server) {
					s.Logger = nil // a log line per message is not what is measured
					s.Metrics = nil
				}})
				var c *gosmtp.Client
				if mode == "direct" {
					c = br.directClient(b, lag)
				} else {
					c = br.bridgeClient(b)
				}
				b.SetBytes(int64(len(msg)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := send(c, alice, []string{"x@example.com"}, msg); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// lagDialer adds delay before every write to the upstream: one way of the
// round trip, for the client's requests (replies come at once).
type lagDialer struct{ delay time.Duration }

func (l *lagDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil || l.delay == 0 {
		return c, err
	}
	return &lagConn{Conn: c, delay: l.delay}, nil
}

type lagConn struct {
	net.Conn
	delay time.Duration
}

func (c *lagConn) Write(p []byte) (int, error) {
	time.Sleep(c.delay) // simulated network latency, not synchronisation
	return c.Conn.Write(p)
}

// BenchmarkData20MiB sends one 20 MiB message per iteration: directly,
// through the bridge streaming while it spools (the default), and through
// the bridge spooling the whole message first (the alternative data.go
// argues against).
func BenchmarkData20MiB(b *testing.B) {
	msg := bigMessage(20 << 20)
	for _, mode := range []string{"direct", "bridge-stream", "bridge-spool-first"} {
		b.Run(mode, func(b *testing.B) {
			br := startBridge(b, bridgeOpts{configure: func(s *Server) {
				s.Logger, s.Metrics = nil, nil
				s.spoolFirst = mode == "bridge-spool-first"
			}})
			var c *gosmtp.Client
			if mode == "direct" {
				c = br.directClient(b, &lagDialer{})
			} else {
				c = br.bridgeClient(b)
			}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := send(c, alice, []string{"x@example.com"}, msg); err != nil {
					b.Fatal(fmt.Errorf("message %d: %w", i, err))
				}
			}
		})
	}
}
