package doctor

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
)

const alice = "alice@gmail.com"

func startGmail(t *testing.T) *fakegmail.Server {
	t.Helper()
	fg, err := fakegmail.Start(fakegmail.Options{Users: []string{alice}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fg.Close() })
	return fg
}

// fgTokens is a token source handing out valid fakegmail tokens; it
// counts forced refreshes.
type fgTokens struct {
	fg     *fakegmail.Server
	forced atomic.Int32
}

func (s *fgTokens) fn() proxy.TokenFunc {
	return func(ctx context.Context, force bool) (*oauth2.Token, error) {
		if force {
			s.forced.Add(1)
		}
		tok := s.fg.AccessToken(alice)
		return &oauth2.Token{AccessToken: tok, Expiry: s.fg.OAuth().Expiry(tok)}, nil
	}
}

// static is a source of a fixed token, for tests that never reach a
// real server's login.
func (s *fgTokens) static() proxy.TokenFunc {
	return func(context.Context, bool) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "static", Expiry: time.Now().Add(time.Hour)}, nil
	}
}

// account points every protocol of alice at fg, trusting its CA: IMAP
// and POP3 implicit TLS, SMTP STARTTLS on the submission port.
func account(fg *fakegmail.Server, src proxy.TokenSource) *proxy.Account {
	cfg := &tls.Config{RootCAs: fg.RootCAs()}
	return &proxy.Account{Name: alice, ConfigName: alice, UpstreamUser: alice, Tokens: src,
		IMAP: proxy.Endpoint{Addr: fg.IMAPAddr(), TLS: proxy.UpstreamImplicitTLS, TLSConfig: cfg},
		POP3: proxy.Endpoint{Addr: fg.POP3Addr(), TLS: proxy.UpstreamImplicitTLS, TLSConfig: cfg},
		SMTP: proxy.Endpoint{Addr: fg.SubmissionAddr(), TLS: proxy.UpstreamStartTLS, TLSConfig: cfg},
	}
}

// verdicts renders steps as "proto/name=verdict" for compact comparison.
func verdicts(steps []Step) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = s.Proto + "/" + s.Name + "=" + s.Verdict()
	}
	return strings.Join(parts, " ")
}

func find(t *testing.T, steps []Step, proto, name string) Step {
	t.Helper()
	for _, s := range steps {
		if s.Proto == proto && s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %s/%s in %s", proto, name, verdicts(steps))
	return Step{}
}

// startPlain runs a plaintext server for the STARTTLS paths: serve runs
// on every accepted connection, until the test ends and waits for it.
func startPlain(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// testCA issues the STARTTLS servers' certificate.
func testCA(t *testing.T) (*fakegmail.CA, *tls.Config) {
	t.Helper()
	ca, err := fakegmail.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	return ca, fakegmail.ServerConfig(leaf)
}
