package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/internal/fakegmail/fakeoauth"
	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// sentMessage is one message the upstream accepted by SMTP.
type sentMessage struct {
	From string
	To   []string
	Data []byte
}

// upstream is what the tests need of an upstream mail service: where it
// listens, who issues its tokens, and its mail as the upstream itself
// sees it (the oracle the clients' results are compared with).
type upstream interface {
	// user is the address of one of the accounts the upstream was started
	// with ("sync" -> "sync@gmail.com").
	user(local string) string
	// provider is the bridge's provider entry for this upstream.
	provider() *config.Provider
	// oauth issues the bridge's tokens and validates them for the upstream.
	oauth() *fakeoauth.Server
	// seed appends msgs to user's INBOX (not necessarily in order).
	seed(t testing.TB, user string, msgs [][]byte)
	// mailbox is user's INBOX, in UID order, CRLF line ends.
	mailbox(t testing.TB, user string) [][]byte
	// uids are the UIDs of user's INBOX, in order.
	uids(t testing.TB, user string) []uint32
	// waitSent waits until n messages in total were accepted by SMTP.
	waitSent(t testing.TB, n int) []sentMessage
	// kick ends every upstream session of user now, as the upstream itself
	// would, and fails t if there was none.
	kick(t testing.TB, user string)
}

// accounts are the local parts of the users every upstream starts with;
// each test works on its own account so that tests cannot see each
// other's mail (the sync account's mailbox is read-only for its tests).
var accounts = []string{"sync", "pop-fetchmail", "pop-getmail", "mutt", "submit", "curl"}

// gmailScope is what the bridge asks the token endpoint for.
const gmailScope = "https://mail.google.com/"

// ---- fakegmail ----

type fakeGmail struct{ fg *fakegmail.Server }

func startFakeGmail(t *testing.T) upstream {
	t.Helper()
	users := make([]string, len(accounts))
	for i, a := range accounts {
		users[i] = a + "@gmail.com"
	}
	fg, err := fakegmail.Start(fakegmail.Options{Users: users})
	if err != nil {
		t.Fatalf("fakegmail: %v", err)
	}
	t.Cleanup(func() { fg.Close() })
	return &fakeGmail{fg: fg}
}

func (f *fakeGmail) user(local string) string { return local + "@gmail.com" }
func (f *fakeGmail) oauth() *fakeoauth.Server { return f.fg.OAuth() }
func (f *fakeGmail) provider() *config.Provider {
	oa := f.fg.OAuth()
	return &config.Provider{
		IMAP: f.fg.IMAPAddr(), POP3: f.fg.POP3Addr(), SMTP: f.fg.SMTPAddr(), SMTPTLS: config.SMTPImplicit,
		AuthURL: oa.AuthURL(), TokenURL: oa.TokenURL(), Scopes: []string{gmailScope},
		CAPEM: f.fg.CACertPEM(),
	}
}

func (f *fakeGmail) seed(t testing.TB, user string, msgs [][]byte) {
	t.Helper()
	for i, m := range msgs {
		if _, err := f.fg.Append(user, "INBOX", m); err != nil {
			t.Fatalf("fakegmail: append message %d: %v", i+1, err)
		}
	}
}

func (f *fakeGmail) mailbox(t testing.TB, user string) [][]byte {
	t.Helper()
	msgs, _, err := f.fg.Messages(user, "INBOX")
	if err != nil {
		t.Fatalf("fakegmail: messages of %s: %v", user, err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Data
	}
	return out
}

func (f *fakeGmail) uids(t testing.TB, user string) []uint32 {
	t.Helper()
	msgs, _, err := f.fg.Messages(user, "INBOX")
	if err != nil {
		t.Fatalf("fakegmail: messages of %s: %v", user, err)
	}
	out := make([]uint32, len(msgs))
	for i, m := range msgs {
		out[i] = m.UID
	}
	return out
}

func (f *fakeGmail) waitSent(t testing.TB, n int) []sentMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := f.fg.WaitSent(ctx, n)
	if err != nil {
		t.Fatalf("fakegmail: %v (have %d)", err, len(f.fg.Sent()))
	}
	out := make([]sentMessage, len(msgs))
	for i, m := range msgs {
		out[i] = sentMessage{From: m.From, To: m.To, Data: m.Data}
	}
	return out
}

func (f *fakeGmail) kick(t testing.TB, user string) {
	t.Helper()
	// Gmail's own words; the fake writes them between responses.
	if n := f.fg.Kick(user, fakegmail.KickGmailBye); n == 0 {
		t.Fatalf("fakegmail: kick %s: no session", user)
	}
}

// ---- Dovecot ----

// dovecot is a real Dovecot 2.3 whose oauth2 passdb asks a fake OAuth
// server (the one the bridge refreshes its tokens at) whether a token is
// live: the bridge's own, refreshed tokens are what logs in.
type dovecot struct {
	d  *testpeers.Dovecot
	oa *fakeoauth.Server
}

func startDovecot(t *testing.T) upstream {
	t.Helper()
	oa, err := fakeoauth.Start(fakeoauth.Options{})
	if err != nil {
		t.Fatalf("fakeoauth: %v", err)
	}
	t.Cleanup(func() { oa.Close() })
	users := make([]string, len(accounts))
	for i, a := range accounts {
		users[i] = a + "@example.test"
	}
	// mail_fsync = never: seeding 1,000 messages with an fsync each would
	// cost seconds; a test upstream need not survive a power cut.
	d := testpeers.StartDovecot(t, testpeers.DovecotOptions{
		Users: users, Introspect: oa.Introspect, ExtraConfig: "mail_fsync = never",
	})
	return &dovecot{d: d, oa: oa}
}

func (d *dovecot) user(local string) string { return local + "@example.test" }
func (d *dovecot) oauth() *fakeoauth.Server { return d.oa }
func (d *dovecot) provider() *config.Provider {
	return &config.Provider{
		IMAP: d.d.IMAPAddr(), POP3: d.d.POP3Addr(), SMTP: d.d.SMTPAddr(), SMTPTLS: config.SMTPImplicit,
		AuthURL: d.oa.AuthURL(), TokenURL: d.oa.TokenURL(), Scopes: []string{gmailScope},
		CAPEM: d.d.CACertPEM(),
	}
}

// seed appends over IMAP (XOAUTH2 with a token of its own), on a few
// connections at once: one doveadm save per message would cost a process
// start each, and one connection waits a round trip per message. The
// order of the messages in the mailbox is therefore not that of msgs.
func (d *dovecot) seed(t testing.TB, user string, msgs [][]byte) {
	t.Helper()
	const conns = 4
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			errs <- d.appendEvery(user, msgs, i, conns)
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatalf("dovecot: %v", err)
		}
	}
}

// appendEvery appends msgs[first], msgs[first+step], ... on one connection.
func (d *dovecot) appendEvery(user string, msgs [][]byte, first, step int) error {
	c, err := imapclient.DialTLS(d.d.IMAPAddr(), &imapclient.Options{TLSConfig: d.d.TLSConfig()})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	access, _ := d.oa.Issue(user)
	if err := c.Authenticate(&xoauth2{user: user, token: access}); err != nil {
		return fmt.Errorf("authenticate %s: %w", user, err)
	}
	for i := first; i < len(msgs); i += step {
		cmd := c.Append("INBOX", int64(len(msgs[i])), nil)
		_, werr := cmd.Write(msgs[i])
		cerr := cmd.Close()
		if _, err := cmd.Wait(); err != nil || werr != nil || cerr != nil {
			return fmt.Errorf("append message %d: %w", i+1, errors.Join(err, werr, cerr))
		}
	}
	return c.Logout().Wait()
}

// mailbox reads user's INBOX from Dovecot over IMAP (its own, direct
// session; EXAMINE, BODY.PEEK). Not testpeers' Dovecot.Messages: doveadm's
// JSON output (2.3.19) replaces a UTF-8 sequence that straddles a 64 KiB
// boundary of the message text with U+FFFD, so 8-bit messages over 64
// KiB come back altered.
func (d *dovecot) mailbox(t testing.TB, user string) [][]byte {
	t.Helper()
	_, msgs := d.fetchAll(t, user)
	return msgs
}

func (d *dovecot) uids(t testing.TB, user string) []uint32 {
	t.Helper()
	uids, _ := d.fetchAll(t, user)
	return uids
}

// fetchAll returns the UIDs and messages of user's INBOX in UID order.
func (d *dovecot) fetchAll(t testing.TB, user string) ([]uint32, [][]byte) {
	t.Helper()
	c, err := imapclient.DialTLS(d.d.IMAPAddr(), &imapclient.Options{TLSConfig: d.d.TLSConfig()})
	if err != nil {
		t.Fatalf("dovecot: dial: %v", err)
	}
	defer c.Close()
	access, _ := d.oa.Issue(user)
	if err := c.Authenticate(&xoauth2{user: user, token: access}); err != nil {
		t.Fatalf("dovecot: authenticate %s: %v", user, err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("dovecot: examine INBOX of %s: %v", user, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	all := imap.SeqSet{}
	all.AddRange(1, 0) // 1:*
	bufs, err := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("dovecot: fetch INBOX of %s: %v", user, err)
	}
	sort.Slice(bufs, func(i, j int) bool { return bufs[i].UID < bufs[j].UID })
	uids := make([]uint32, len(bufs))
	msgs := make([][]byte, len(bufs))
	for i, b := range bufs {
		uids[i], msgs[i] = uint32(b.UID), b.FindBodySection(section)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Logf("dovecot: logout: %v", err)
	}
	return uids, msgs
}

func (d *dovecot) waitSent(t testing.TB, n int) []sentMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := d.d.WaitDelivered(ctx, n)
	if err != nil {
		t.Fatalf("dovecot: %v", err)
	}
	out := make([]sentMessage, len(msgs))
	for i, m := range msgs {
		// Dovecot's submission service prepends its Received: header and
		// relays the rest unchanged (testpeers' documented behaviour).
		out[i] = sentMessage{From: m.From, To: m.To, Data: m.Data}
	}
	return out
}

func (d *dovecot) kick(t testing.TB, user string) {
	t.Helper()
	if err := d.d.Kick(user); err != nil {
		t.Fatalf("dovecot: %v", err)
	}
}

// xoauth2 is a minimal XOAUTH2 sasl.Client for seeding, written here
// rather than taken from proxy/ so that the oracle shares no code with the
// bridge (FACTS: answer an error challenge with an empty response).
type xoauth2 struct{ user, token string }

var _ sasl.Client = (*xoauth2)(nil)

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	if len(challenge) > 0 {
		return []byte{}, nil
	}
	return nil, errors.New("interop: unexpected empty XOAUTH2 challenge")
}

// ---- shared ----

// bodyOf is the part of a message after the header's blank line.
func bodyOf(msg []byte) []byte {
	if _, body, ok := bytes.Cut(msg, []byte("\r\n\r\n")); ok {
		return body
	}
	if _, body, ok := bytes.Cut(msg, []byte("\n\n")); ok {
		return body
	}
	return nil
}

// describe names a message in a failure: its Subject, else its size.
func describe(msg []byte) string {
	for _, line := range bytes.Split(msg, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		if s, ok := bytes.CutPrefix(line, []byte("Subject: ")); ok {
			return fmt.Sprintf("%q (%d bytes)", s, len(msg))
		}
	}
	return fmt.Sprintf("(%d bytes, no subject)", len(msg))
}
