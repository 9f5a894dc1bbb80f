package fakegmail

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// mailStore holds every user's mailboxes in imapmemserver. imapmemserver
// offers no way to read a message from outside an IMAP session, so the
// fake reads and expunges through a private loopback IMAP session
// (net.Pipe, PREAUTH): the same code path a client takes, and one single
// source of truth shared by IMAP and POP3.
type mailStore struct {
	log  *slog.Logger
	loop *imapserver.Server
	feed *chanListener
	wg   sync.WaitGroup // the loopback Serve goroutine

	mu      sync.Mutex // guards users and changes
	users   map[string]*imapmemserver.User
	changes map[string]chan struct{} // per user: closed and replaced on a change
}

// storedMessage is one message read through the loopback session.
type storedMessage struct {
	UID   imap.UID
	Flags []imap.Flag
	Date  time.Time
	Data  []byte
}

var errNoMessage = errors.New("fakegmail: no such message")

func newMailStore(users []string, log *slog.Logger) (*mailStore, error) {
	m := &mailStore{log: log, users: map[string]*imapmemserver.User{}, changes: map[string]chan struct{}{}}
	for _, u := range users {
		name := normUser(u)
		// The password is never used: logins go through XOAUTH2 only.
		user := imapmemserver.NewUser(name, "")
		if err := user.Create("INBOX", nil); err != nil {
			return nil, fmt.Errorf("fakegmail: create INBOX: %w", err)
		}
		m.users[name] = user
	}
	m.feed = newChanListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	m.loop = imapserver.New(&imapserver.Options{
		NewSession: func(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			lc, ok := conn.NetConn().(*loopConn)
			if !ok {
				return nil, nil, errors.New("fakegmail: unexpected loopback connection")
			}
			return imapmemserver.NewUserSession(lc.user), &imapserver.GreetingData{PreAuth: true}, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}},
		Logger:       slogPrintf{log.With("proto", "loopback")},
		InsecureAuth: true,
	})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.loop.Serve(m.feed)
	}()
	return m, nil
}

func (m *mailStore) close() {
	// Serve must have returned before Close: imapserver's Close waits on
	// a WaitGroup that Serve adds to, and the two must not race.
	m.feed.Close()
	m.wg.Wait()
	m.loop.Close()
}

func (m *mailStore) user(name string) *imapmemserver.User {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users[normUser(name)]
}

func (m *mailStore) hasUser(name string) bool { return m.user(name) != nil }

// changed returns a channel closed at the next change to user's
// mailboxes. IDLE waits on it: go-imap's SessionTracker.Idle misses updates
// queued between "+ idling" and its own start, so the fake runs IDLE as
// "poll, wait for a change, poll".
func (m *mailStore) changed(user string) <-chan struct{} {
	user = normUser(user)
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.changes[user]
	if ch == nil {
		ch = make(chan struct{})
		m.changes[user] = ch
	}
	return ch
}

// notify wakes user's IDLE sessions; every path that changes a mailbox
// calls it after the change.
func (m *mailStore) notify(user string) {
	user = normUser(user)
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch := m.changes[user]; ch != nil {
		close(ch)
		delete(m.changes, user)
	}
}

// loopConn tells the loopback server whose mailboxes to open.
type loopConn struct {
	net.Conn
	user *imapmemserver.User
}

// with runs f on a loopback IMAP session of user.
func (m *mailStore) with(user string, f func(*imapclient.Client) error) error {
	u := m.user(user)
	if u == nil {
		return fmt.Errorf("%w: %s", errUnknownUser, user)
	}
	a, b := net.Pipe()
	if !m.feed.deliver(&loopConn{Conn: a, user: u}) {
		a.Close()
		b.Close()
		return net.ErrClosed
	}
	c := imapclient.New(b, nil)
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		return fmt.Errorf("fakegmail: loopback: %w", err)
	}
	err := f(c)
	if lerr := c.Logout().Wait(); err == nil && lerr != nil {
		err = fmt.Errorf("fakegmail: loopback logout: %w", lerr)
	}
	return err
}

// messages reads every message of mailbox, in sequence order.
func (m *mailStore) messages(user, mailbox string) (msgs []storedMessage, uidValidity uint32, err error) {
	err = m.with(user, func(c *imapclient.Client) error {
		sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return err
		}
		uidValidity = sel.UIDValidity
		if sel.NumMessages == 0 {
			return nil
		}
		var all imap.SeqSet
		all.AddRange(1, 0)
		bufs, err := c.Fetch(all, &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			return err
		}
		for _, b := range bufs {
			var data []byte
			for _, sec := range b.BodySection {
				data = sec.Bytes
			}
			msgs = append(msgs, storedMessage{UID: b.UID, Flags: b.Flags, Date: b.InternalDate, Data: data})
		}
		return nil
	})
	return msgs, uidValidity, err
}

// expunge removes the messages with uids from mailbox (\Deleted, then UID
// EXPUNGE of just those: other \Deleted messages stay). It returns how
// many it removed.
func (m *mailStore) expunge(user, mailbox string, uids []imap.UID) (int, error) {
	defer m.notify(user)
	n := 0
	err := m.with(user, func(c *imapclient.Client) error {
		if _, err := c.Select(mailbox, nil).Wait(); err != nil {
			return err
		}
		set := imap.UIDSetNum(uids...)
		found, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
		if err != nil {
			return err
		}
		live := found.AllUIDs()
		if len(live) == 0 {
			return nil
		}
		set = imap.UIDSetNum(live...)
		if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		if err := c.UIDExpunge(set).Close(); err != nil {
			return err
		}
		n = len(live)
		return nil
	})
	return n, err
}

// appendMessage stores msg in mailbox, creating the mailbox if needed.
func (m *mailStore) appendMessage(user, mailbox string, msg []byte, opts *imap.AppendOptions) (imap.UID, error) {
	u := m.user(user)
	if u == nil {
		return 0, fmt.Errorf("%w: %s", errUnknownUser, user)
	}
	if opts == nil {
		opts = &imap.AppendOptions{}
	}
	data, err := u.Append(mailbox, literal{bytes.NewReader(msg), int64(len(msg))}, opts)
	var ierr *imap.Error
	if errors.As(err, &ierr) && ierr.Code == imap.ResponseCodeTryCreate {
		if err := u.Create(mailbox, nil); err != nil {
			return 0, fmt.Errorf("fakegmail: create %s: %w", mailbox, err)
		}
		data, err = u.Append(mailbox, literal{bytes.NewReader(msg), int64(len(msg))}, opts)
	}
	if err != nil {
		return 0, fmt.Errorf("fakegmail: append: %w", err)
	}
	m.notify(user)
	return data.UID, nil
}

// recreate deletes mailbox and creates it again with the same messages
// (flags, dates) under new UIDs and a new UIDVALIDITY.
func (m *mailStore) recreate(user, mailbox string) (uint32, error) {
	u := m.user(user)
	if u == nil {
		return 0, fmt.Errorf("%w: %s", errUnknownUser, user)
	}
	msgs, _, err := m.messages(user, mailbox)
	if err != nil {
		return 0, err
	}
	if err := u.Delete(mailbox); err != nil {
		return 0, fmt.Errorf("fakegmail: delete %s: %w", mailbox, err)
	}
	if err := u.Create(mailbox, nil); err != nil {
		return 0, fmt.Errorf("fakegmail: create %s: %w", mailbox, err)
	}
	for _, msg := range msgs {
		if _, err := m.appendMessage(user, mailbox, msg.Data, &imap.AppendOptions{Flags: msg.Flags, Time: msg.Date}); err != nil {
			return 0, err
		}
	}
	st, err := u.Status(mailbox, &imap.StatusOptions{UIDValidity: true})
	if err != nil {
		return 0, fmt.Errorf("fakegmail: status %s: %w", mailbox, err)
	}
	return st.UIDValidity, nil
}

// literal adapts a byte slice to imap.LiteralReader.
type literal struct {
	*bytes.Reader
	size int64
}

func (l literal) Size() int64 { return l.size }

// seed puts three sample messages into user's INBOX.
func (m *mailStore) seed(user string) error {
	big := strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 64<<10/45)
	for i, body := range []string{
		"Hello from the fake Gmail.\r\n",
		"A line below starts with a dot:\r\n.hidden\r\n..two dots\r\n.\r\nend\r\n",
		big,
	} {
		msg := fmt.Sprintf("From: Fake Sender <sender@example.com>\r\nTo: %s\r\nSubject: Seed message %d\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <seed%d@fakegmail.invalid>\r\n\r\n%s", user, i+1, i+1, body)
		if _, err := m.appendMessage(user, "INBOX", []byte(msg), nil); err != nil {
			return err
		}
	}
	return nil
}
