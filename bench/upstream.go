package bench

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
)

// mailboxSpec is one user's INBOX (which is also its POP3 maildrop):
// messages of these sizes, appended in order.
type mailboxSpec struct {
	User  string
	Sizes []int
}

// upstreamSpec is what the fakegmail child serves.
type upstreamSpec struct {
	Mailboxes []mailboxSpec
}

// upstreamInfo is a running upstream as the parent and the bridge child
// see it: addresses (implicit TLS), its CA, a valid access token per user
// and the UIDs of each user's INBOX messages in mailboxSpec order.
type upstreamInfo struct {
	Name   string
	IMAP   string
	POP3   string
	SMTP   string // implicit TLS, like smtp.gmail.com:465
	CAPEM  []byte
	Tokens map[string]string
	Expiry time.Time
	UIDs   map[string][]uint32
	PID    int // the fakegmail child; 0 for Dovecot (many processes)
}

func (u *upstreamInfo) clientTLS() (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(u.CAPEM) {
		return nil, fmt.Errorf("bench: %s: no CA certificate", u.Name)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// message returns a deterministic RFC 5322 message of exactly size octets
// (at least 200): headers, then 64-octet CRLF lines of printable text.
func message(user string, n, size int) []byte {
	head := fmt.Sprintf("From: bench <%s>\r\nTo: %s\r\nSubject: bench message %d of %d octets\r\nMessage-ID: <bench-%d-%d@bench.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n", user, user, n, size, n, size)
	b := make([]byte, 0, size)
	b = append(b, head...)
	line := []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY\r\n")
	for len(b)+len(line) <= size {
		b = append(b, line...)
	}
	if rest := size - len(b); rest >= 2 {
		b = append(b, bytes.Repeat([]byte("z"), rest-2)...)
		b = append(b, '\r', '\n')
	}
	return b[:size]
}

// tokenLifetime is long enough that no token expires and no proactive
// rotation starts during a run.
const tokenLifetime = 24 * time.Hour

// runUpstreamChild serves a fake Gmail seeded per the spec.
func runUpstreamChild(raw []byte) (any, func(), error) {
	var spec upstreamSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, nil, err
	}
	users := make([]string, len(spec.Mailboxes))
	for i, m := range spec.Mailboxes {
		users[i] = m.User
	}
	fg, err := fakegmail.Start(fakegmail.Options{
		Users:               users,
		TokenLifetime:       tokenLifetime,
		IMAPConnectionLimit: -1, // thousands of sessions per user
	})
	if err != nil {
		return nil, nil, err
	}
	info := upstreamInfo{
		Name: "fakegmail", IMAP: fg.IMAPAddr(), POP3: fg.POP3Addr(), SMTP: fg.SMTPAddr(),
		CAPEM: fg.CACertPEM(), Tokens: map[string]string{}, UIDs: map[string][]uint32{},
		Expiry: time.Now().Add(tokenLifetime - time.Minute), PID: os.Getpid(),
	}
	for _, m := range spec.Mailboxes {
		info.Tokens[m.User] = fg.AccessToken(m.User)
		for i, size := range m.Sizes {
			uid, err := fg.Append(m.User, "INBOX", message(m.User, i, size))
			if err != nil {
				fg.Close()
				return nil, nil, fmt.Errorf("seeding %s: %w", m.User, err)
			}
			info.UIDs[m.User] = append(info.UIDs[m.User], uid)
		}
	}
	return info, func() { fg.Close() }, nil
}

// upstream is a running upstream owned by the parent.
type upstream struct {
	info upstreamInfo
	tls  *tls.Config
	stop func()
}

// startFakeGmail starts the fakegmail child.
func startFakeGmail(spec upstreamSpec, logTo io.Writer) (*upstream, error) {
	var info upstreamInfo
	c, err := startChild(roleUpstream, spec, &info, logTo)
	if err != nil {
		return nil, err
	}
	cfg, err := info.clientTLS()
	if err != nil {
		c.stop()
		return nil, err
	}
	return &upstream{info: info, tls: cfg, stop: func() { c.stop() }}, nil
}

// userName is the i-th benchmark user of a kind.
func userName(kind string, i int) string {
	return kind + strconv.Itoa(i) + "@bench.test"
}
