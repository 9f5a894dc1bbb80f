package imap

import (
	"context"
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/oauth2"

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
