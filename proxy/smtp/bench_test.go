package smtp

import (
	"crypto/tls"
	"fmt"
	"testing"

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

func benchBridge(b *testing.B) *bridge {
	return startBridge(b, bridgeOpts{configure: func(s *Server) {
		s.Logger = nil // a log line per message is not what is measured
		s.Metrics = nil
	}})
}

// directClient logs in to the fake's implicit TLS port with XOAUTH2, as
// the bridge does.
func (br *bridge) directClient(b *testing.B) *gosmtp.Client {
	c, err := gosmtp.DialTLS(br.fg.SMTPAddr(), &tls.Config{RootCAs: br.fg.RootCAs()})
	if err != nil {
		b.Fatal(err)
	}
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
// and through the bridge (target: bridge >= 0.9 x direct msgs/s).
func BenchmarkSubmission(b *testing.B) {
	msg := testMessage("bench", 20) // ~700 bytes
	for _, mode := range []string{"direct", "bridge"} {
		b.Run(mode, func(b *testing.B) {
			br := benchBridge(b)
			var c *gosmtp.Client
			if mode == "direct" {
				c = br.directClient(b)
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
				c = br.directClient(b)
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
