package fakegmail

import (
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync"
	"time"
)

// LifetimeToken as a session lifetime ends each session when the access
// token it logged in with expires.
const LifetimeToken time.Duration = -1

// ender is the protocol side of a session.
type ender interface {
	// end ends the session in mode, at the next point where the words fit
	// the protocol (between responses), and returns once the connection is
	// closed.
	end(mode KickMode)
	// closeNow closes the connection at once.
	closeNow()
}

// session is one connection to any of the fake servers.
type session struct {
	srv    *Server
	id     string
	proto  string
	remote string // client IP
	ender  ender

	mu      sync.Mutex // guards the fields below
	user    string     // normalized; "" before login
	token   string
	timer   *time.Timer
	mailbox string // IMAP: the selected mailbox
	done    bool
}

var errTooManyConns = errors.New("fakegmail: too many simultaneous connections")

// newSession registers a connection; nil when the server is closing (the
// caller closes the connection).
func (s *Server) newSession(proto, remote string, e ender) *session {
	sess := &session{srv: s, id: strings.ToLower(rand.Text()[:16]), proto: proto, remote: remote, ender: e}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.sessions[sess] = struct{}{}
	return sess
}

// hold registers a connection still in its TLS handshake (or, for
// submission, before STARTTLS) so that Close can end it; false when the
// server is closing.
func (s *Server) hold(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.pending[c] = struct{}{}
	return true
}

func (s *Server) release(c net.Conn) {
	s.mu.Lock()
	delete(s.pending, c)
	s.mu.Unlock()
}

// User is the user the session logged in as ("" before).
func (sess *session) User() string {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.user
}

// login records a successful authentication, enforcing the IMAP
// connection limit, and arms the lifetime timer.
func (sess *session) login(user, token string) error {
	user = normUser(user)
	s := sess.srv
	key := userProto{user, sess.proto}
	s.mu.Lock()
	if sess.proto == ProtoIMAP && s.imapLimit > 0 && s.open[key] >= s.imapLimit {
		s.mu.Unlock()
		return errTooManyConns
	}
	s.open[key]++
	if s.open[key] > s.max[key] {
		s.max[key] = s.open[key]
	}
	s.logins[key]++
	s.notifyLocked()
	lifetime := s.lifetime
	s.mu.Unlock()

	sess.mu.Lock()
	sess.user, sess.token = user, token
	sess.mu.Unlock()
	sess.armLifetime(lifetime, time.Now())
	s.log.Info("login", "proto", sess.proto, "session", sess.id, "account", user, "client_ip", sess.remote)
	return nil
}

// close deregisters the session; the protocol side calls it once when the
// connection is gone.
func (sess *session) close() {
	sess.stopTimer()
	sess.mu.Lock()
	if sess.done {
		sess.mu.Unlock()
		return
	}
	sess.done = true
	user := sess.user
	sess.mu.Unlock()
	s := sess.srv
	s.mu.Lock()
	delete(s.sessions, sess)
	if user != "" {
		s.open[userProto{user, sess.proto}]--
		s.notifyLocked()
	}
	s.mu.Unlock()
	if user != "" {
		s.log.Info("logout", "proto", sess.proto, "session", sess.id, "account", user)
	}
}

func (sess *session) closeNow() { sess.ender.closeNow() }

func (sess *session) stopTimer() {
	sess.mu.Lock()
	if sess.timer != nil {
		sess.timer.Stop()
		sess.timer = nil
	}
	sess.mu.Unlock()
}

// armLifetime (re)starts the timer that ends a logged-in session when its
// lifetime is over.
func (sess *session) armLifetime(lifetime time.Duration, now time.Time) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.timer != nil {
		sess.timer.Stop()
		sess.timer = nil
	}
	if sess.user == "" || sess.done || lifetime == 0 {
		return
	}
	var at time.Time
	if lifetime == LifetimeToken {
		at = sess.srv.tokens.Expiry(sess.token)
		if at.IsZero() {
			return
		}
	} else {
		at = now.Add(lifetime)
	}
	mode := KickGmailBye
	if sess.srv.opts.Microsoft {
		mode = KickMicrosoftBye
	}
	s := sess.srv
	sess.timer = time.AfterFunc(time.Until(at), func() {
		if !s.track() {
			return
		}
		defer s.wg.Done()
		s.log.Info("session lifetime over", "proto", sess.proto, "session", sess.id, "account", sess.User())
		sess.ender.end(mode)
	})
}

// track registers a goroutine with s.wg unless the server is closing.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// SetSessionLifetime makes sessions end (with Gmail's BYE, or Microsoft's
// under Options.Microsoft) after d from login, or when their login token
// expires for LifetimeToken. 0 means sessions live until kicked (the
// default). It applies to open sessions too, counted from now.
func (s *Server) SetSessionLifetime(d time.Duration) {
	s.mu.Lock()
	s.lifetime = d
	var open []*session
	for sess := range s.sessions {
		open = append(open, sess)
	}
	s.mu.Unlock()
	now := time.Now()
	for _, sess := range open {
		sess.armLifetime(d, now)
	}
}

// SetIMAPConnectionLimit changes the per-user IMAP session limit
// (negative: unlimited).
func (s *Server) SetIMAPConnectionLimit(n int) {
	s.mu.Lock()
	s.imapLimit = n
	s.mu.Unlock()
}

// Connections is how many authenticated sessions user has open now on
// proto.
func (s *Server) Connections(user, proto string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[userProto{normUser(user), proto}]
}

// MaxConnections is the most authenticated sessions user had open at once
// on proto.
func (s *Server) MaxConnections(user, proto string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max[userProto{normUser(user), proto}]
}

// Logins is how many successful logins user made on proto.
func (s *Server) Logins(user, proto string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins[userProto{normUser(user), proto}]
}

// notifyLocked wakes WaitConnections callers; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitConnections blocks until user has n authenticated sessions open on
// proto, or the timeout passes; it reports whether the count was reached.
// Tests use it to learn that a server has seen a disconnect.
func (s *Server) WaitConnections(user, proto string, n int, timeout time.Duration) bool {
	key := userProto{normUser(user), proto}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		got, changed := s.open[key], s.changed
		s.mu.Unlock()
		if got == n {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		case <-s.closing:
			return false
		}
	}
}
