package imap

import (
	"context"
	"crypto/tls"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/internal/testpeers"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// The benchmarks measure the same operation made directly to an upstream
// (imapclient over TLS with XOAUTH2) and through the bridge (imapclient
// over plaintext loopback to the bridge, which speaks TLS upstream), in
// one run, so their ratio is what the bridge costs:
//
//	go test -run '^$' -bench 'Fetch50MiB|Noop' -benchtime 10x ./proxy/imap/

const benchMsgSize = 50 << 20

// benchTarget is one way to reach an upstream with a selected INBOX.
type benchTarget struct {
	name  string
	login func(b *testing.B) *imapclient.Client
	uid   imap.UID
}

func fakegmailTargets(b *testing.B) []benchTarget {
	e := newEnv(b)
	uid, err := e.fg.Append(testUser, "INBOX", bigMessage(benchMsgSize))
	if err != nil {
		b.Fatal(err)
	}
	direct := func(b *testing.B) *imapclient.Client {
		c, err := imapclient.DialTLS(e.fg.IMAPAddr(), &imapclient.Options{TLSConfig: &tls.Config{RootCAs: e.fg.RootCAs()}})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Authenticate(&proxy.XOAuth2{User: testUser, Token: e.fg.AccessToken(testUser)}); err != nil {
			b.Fatal(err)
		}
		return c
	}
	bridge := func(b *testing.B) *imapclient.Client {
		c, err := imapclient.DialInsecure(e.addr, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Login(testUser, testPass).Wait(); err != nil {
			b.Fatal(err)
		}
		return c
	}
	return []benchTarget{{"fakegmail/direct", direct, imap.UID(uid)}, {"fakegmail/bridge", bridge, imap.UID(uid)}}
}

func dovecotTargets(b *testing.B) []benchTarget {
	if _, err := testpeers.LookPath("dovecot"); err != nil {
		b.Logf("skipping Dovecot targets: %v", err)
		return nil
	}
	d := testpeers.StartDovecot(b, testpeers.DovecotOptions{Users: []string{testUser}})
	if err := d.Save(testUser, "INBOX", bigMessage(benchMsgSize)); err != nil {
		b.Fatal(err)
	}
	acct := &proxy.Account{
		Name: testUser, UpstreamUser: testUser,
		Tokens: proxy.TokenFunc(func(ctx context.Context, force bool) (*oauth2.Token, error) {
			return &oauth2.Token{AccessToken: d.Token(testUser), Expiry: time.Now().Add(time.Hour)}, nil
		}),
		IMAP: proxy.Endpoint{Addr: d.IMAPAddr(), TLSConfig: &tls.Config{RootCAs: d.RootCAs()}},
	}
	auth := proxytest.NewAuthenticator()
	auth.Add(testUser, testPass, acct)
	addr := proxytest.Serve(b, &Server{Auth: auth, Dialer: &proxy.Dialer{}}, proxy.ListenerInfo{Protocol: "imap", Loopback: true})
	msgs, err := d.Messages(testUser, "INBOX")
	if err != nil || len(msgs) != 1 {
		b.Fatalf("dovecot INBOX: %v %v", len(msgs), err)
	}
	uid := imap.UID(msgs[0].UID)
	direct := func(b *testing.B) *imapclient.Client {
		c, err := imapclient.DialTLS(d.IMAPAddr(), &imapclient.Options{TLSConfig: &tls.Config{RootCAs: d.RootCAs()}})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Authenticate(&proxy.XOAuth2{User: testUser, Token: d.Token(testUser)}); err != nil {
			b.Fatal(err)
		}
		return c
	}
	bridge := func(b *testing.B) *imapclient.Client {
		c, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Login(testUser, testPass).Wait(); err != nil {
			b.Fatal(err)
		}
		return c
	}
	return []benchTarget{{"dovecot/direct", direct, uid}, {"dovecot/bridge", bridge, uid}}
}

func BenchmarkFetch50MiB(b *testing.B) {
	targets := append(fakegmailTargets(b), dovecotTargets(b)...)
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			c := tg.login(b)
			defer c.Close()
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchMsgSize)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cmd := c.Fetch(imap.UIDSetNum(tg.uid), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
				n := int64(0)
				for m := cmd.Next(); m != nil; m = cmd.Next() {
					for item := m.Next(); item != nil; item = m.Next() {
						if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
							k, err := io.Copy(io.Discard, bs.Literal)
							if err != nil {
								b.Fatal(err)
							}
							n += k
						}
					}
				}
				if err := cmd.Close(); err != nil {
					b.Fatal(err)
				}
				if n < benchMsgSize {
					b.Fatalf("read %d bytes", n)
				}
			}
		})
	}
}

func BenchmarkNoop(b *testing.B) {
	targets := append(fakegmailTargets(b), dovecotTargets(b)...)
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			c := tg.login(b)
			defer c.Close()
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.Noop().Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkResume measures what a client pays for an upstream cut: the
// upstream session is closed (fakegmail KickClose) and the client's next
// NOOP completes on a resumed session. It reports the p50 and p99 of
// that NOOP's latency (cut to completion).
//
//	go test -run '^$' -bench Resume -benchtime 200x ./proxy/imap/
func BenchmarkResume(b *testing.B) {
	e := newEnv(b)
	c := selectedB(b, e.addr)
	defer c.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		e.fg.Kick(testUser, fakegmail.KickClose)
		if err := c.Noop().Wait(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat, "cut-to-next-ok")
}

// BenchmarkRotationCost measures the latency of commands on a busy
// session while the upstream session is rotated every second (1.5 s
// tokens, rotation 0.5 s ahead): p50 and p99 of UID FETCH of one small
// message, to compare with the same benchmark without rotation.
//
//	go test -run '^$' -bench RotationCost -benchtime 5s ./proxy/imap/
func BenchmarkRotationCost(b *testing.B) {
	for _, rotate := range []bool{false, true} {
		name := "steady"
		if rotate {
			name = "rotating"
		}
		b.Run(name, func(b *testing.B) {
			opts := []envOption{}
			if rotate {
				opts = append(opts, func(o *fakegmail.Options, _ *Server, a *proxy.Account) {
					o.TokenLifetime = 1500 * time.Millisecond
					a.Session = proxy.SessionPolicy{RotateBefore: 500 * time.Millisecond, ResumeWithin: 10 * time.Second}
				})
			}
			e := newEnv(b, opts...)
			c := selectedB(b, e.addr)
			defer c.Close()
			stored, _, _ := e.fg.Messages(testUser, "INBOX")
			uid := imap.UID(stored[0].UID)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, lat, "fetch")
			b.ReportMetric(float64(len(e.logs.Lines("rotated upstream session"))), "rotations")
		})
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration, what string) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), what+"-p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), what+"-p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), what+"-max-µs")
}

// selectedB logs in to the bridge at addr and selects INBOX.
func selectedB(b *testing.B, addr string) *imapclient.Client {
	b.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	return c
}
