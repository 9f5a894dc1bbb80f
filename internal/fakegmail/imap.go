package fakegmail

import (
	"crypto/tls"
	"errors"
	"net"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// imapAppendLimit is Gmail's APPENDLIMIT.
const imapAppendLimit = 35651584

// imapService is the IMAP listener: TLS accepted here, then the
// connection (wrapped in a wireConn) handed to go-imap's imapserver.
type imapService struct {
	srv  *Server
	ln   net.Listener
	lib  *imapserver.Server
	feed *chanListener
	// served is closed when lib.Serve has returned.
	served chan struct{}
}

func (s *Server) startIMAP(addr string) error {
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	svc := &imapService{srv: s, ln: ln, feed: newChanListener(ln.Addr()), served: make(chan struct{})}
	svc.lib = imapserver.New(&imapserver.Options{
		NewSession: svc.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1:    {},
			imap.CapNamespace:    {},
			imap.CapUIDPlus:      {},
			imap.CapESearch:      {},
			imap.CapListExtended: {},
			imap.CapListStatus:   {},
			imap.CapMove:         {},
			imap.CapSpecialUse:   {},
		},
		Logger: slogPrintf{s.log.With("proto", ProtoIMAP)},
		// The library sees a wireConn, not a *tls.Conn, so it cannot tell
		// that the connection is encrypted: it always is.
		InsecureAuth: true,
	})
	s.imap = svc
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		acceptLoop(s, ln, s.tlsCfg, svc.handoff)
	}()
	go func() {
		defer s.wg.Done()
		defer close(svc.served)
		if err := svc.lib.Serve(svc.feed); err != nil {
			s.log.Error("imap serve", "err", err)
		}
	}()
	return nil
}

func (svc *imapService) addr() string { return svc.ln.Addr().String() }

// handoff gives an accepted TLS connection to imapserver.
func (svc *imapService) handoff(tlsConn *tls.Conn, raw net.Conn) {
	svc.srv.handoff(tlsConn, raw, ProtoIMAP, &imapFramer{srv: svc.srv}, svc.feed)
}

func (svc *imapService) close() {
	svc.feed.Close()
	// See mailStore.close: Serve returns before Close is called.
	<-svc.served
	svc.lib.Close()
}

// newSession is imapserver's NewSession hook.
func (svc *imapService) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	c, ok := conn.NetConn().(*wireConn)
	if !ok {
		return nil, nil, errors.New("fakegmail: unexpected connection type")
	}
	return &imapSession{srv: svc.srv, wire: c, sess: c.sess}, nil, nil
}

// imapSession is one IMAP session: XOAUTH2 login here, everything after
// it served by imapmemserver.
type imapSession struct {
	*imapmemserver.UserSession // nil until login

	srv  *Server
	wire *wireConn
	sess *session
}

var (
	_ imapserver.SessionSASL        = (*imapSession)(nil)
	_ imapserver.SessionIMAP4rev2   = (*imapSession)(nil)
	_ imapserver.SessionAppendLimit = (*imapSession)(nil)
)

// Login refuses passwords: Gmail's OAuth accounts are what this fake
// models (an app password would bypass what the bridge is for).
func (is *imapSession) Login(username, password string) error {
	if is.srv.opts.Microsoft {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "LOGIN failed."}
	}
	return &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeAuthenticationFailed,
		Text: "Invalid credentials (Failure)",
	}
}

func (is *imapSession) AuthenticateMechanisms() []string {
	return []string{"XOAUTH2", "PLAIN"}
}

func (is *imapSession) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case "XOAUTH2":
		return newXOAuth2Server(is.srv.opts.Microsoft, is.checkXOAuth2, is.authFailure()), nil
	case "PLAIN":
		return sasl.NewPlainServer(func(identity, username, password string) error {
			return is.Login(username, password)
		}), nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Unsupported authentication mechanism. (Failure)"}
}

// authFailure is the final XOAUTH2 failure.
func (is *imapSession) authFailure() error {
	if is.srv.opts.Microsoft {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "AUTHENTICATE failed."}
	}
	return &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeAuthenticationFailed,
		Text: "Invalid credentials (Failure)",
	}
}

func (is *imapSession) checkXOAuth2(user, token string) error {
	err := is.srv.authXOAuth2(is.sess, user, token, is.loggedIn)
	if errors.Is(err, errTooManyConns) {
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeAlert,
			Text: "Too many simultaneous connections. (Failure)",
		}
	}
	return err
}

// loggedIn attaches the mail store once XOAUTH2 succeeded.
func (is *imapSession) loggedIn(user string) error {
	u := is.srv.store.user(user)
	if u == nil {
		return errUnknownUser
	}
	is.UserSession = imapmemserver.NewUserSession(u)
	return nil
}

func (is *imapSession) AppendLimit() uint32 { return imapAppendLimit }

// Select records the selected mailbox (RecreateMailbox ends sessions that
// have it selected).
func (is *imapSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	data, err := is.UserSession.Select(name, options)
	is.sess.mu.Lock()
	if err == nil {
		is.sess.mailbox = name
	} else {
		is.sess.mailbox = ""
	}
	is.sess.mu.Unlock()
	return data, err
}

func (is *imapSession) Unselect() error {
	is.sess.mu.Lock()
	is.sess.mailbox = ""
	is.sess.mu.Unlock()
	return is.UserSession.Unselect()
}

// Idle replaces go-imap's SessionTracker.Idle, which loses updates queued
// between "+ idling" and its start (see mailStore.changed).
func (is *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	user := is.sess.User()
	for {
		changed := is.srv.store.changed(user)
		if err := is.UserSession.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-changed:
		}
	}
}

// The commands below change mailboxes; each wakes IDLE sessions after.

func (is *imapSession) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	defer is.notify()
	return is.UserSession.Append(mailbox, r, options)
}

func (is *imapSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	defer is.notify()
	return is.UserSession.Store(w, numSet, flags, options)
}

func (is *imapSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	defer is.notify() // a FETCH without PEEK sets \Seen
	return is.UserSession.Fetch(w, numSet, options)
}

func (is *imapSession) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	defer is.notify()
	return is.UserSession.Expunge(w, uids)
}

func (is *imapSession) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	defer is.notify()
	return is.UserSession.Copy(numSet, dest)
}

func (is *imapSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	defer is.notify()
	return is.UserSession.Move(w, numSet, dest)
}

func (is *imapSession) notify() { is.srv.store.notify(is.sess.User()) }

func (is *imapSession) Close() error {
	if is.UserSession == nil {
		return nil
	}
	return is.UserSession.Close()
}
