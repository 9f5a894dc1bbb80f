package fakegmail

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. Only Users is required.
type Options struct {
	// Users are the mail accounts (addresses, matched case-insensitively).
	// Each gets an INBOX, which is also its POP3 maildrop.
	Users []string
	// SeedMessages puts three sample messages into every INBOX at start
	// (one with a line starting with "." for dot-stuffing, one of 64 KiB).
	SeedMessages bool
	// Logger gets one line per session event (never a token). Nil: discard.
	Logger *slog.Logger
	// Tokens validates access tokens. Nil: an embedded fake OAuth server
	// started with TokenLifetime.
	Tokens TokenAuthority
	// TokenLifetime of access tokens issued by the embedded OAuth server
	// (default 1h). Ignored when Tokens is set.
	TokenLifetime time.Duration
	// Microsoft switches wire behaviour to Microsoft 365's: greeting, an
	// XOAUTH2 failure without a challenge, and "* BYE Session invalidated -
	// AccessTokenExpired" when a session's lifetime ends.
	Microsoft bool
	// IMAPConnectionLimit is the number of simultaneous authenticated IMAP
	// sessions per user (Gmail: 15); a login beyond it gets "NO [ALERT] Too
	// many simultaneous connections. (Failure)". 0 means 15, negative means
	// unlimited.
	IMAPConnectionLimit int
	// ExtraIMAPCaps are advertised after login on top of what the fake
	// implements (say "X-GM-EXT-1", "CONDSTORE", "QUOTA" to test a client's
	// capability filtering). The fake does NOT implement them.
	ExtraIMAPCaps []string
	// MaxMessageBytes is the SMTP SIZE limit (Gmail: 35882577).
	MaxMessageBytes int64
	// IMAPAddr, POP3Addr, SMTPAddr and SubmissionAddr are listen addresses
	// (default "127.0.0.1:0"), for a demo that wants stable ports.
	IMAPAddr, POP3Addr, SMTPAddr, SubmissionAddr string
}

// Protocol names used by the knobs.
const (
	ProtoIMAP = "imap"
	ProtoPOP3 = "pop3"
	ProtoSMTP = "smtp"
)

// Server is a running fake Gmail: IMAP and POP3 over implicit TLS, SMTP
// over implicit TLS (like :465) and STARTTLS (like :587), all on
// 127.0.0.1, sharing one mail store and one token authority.
type Server struct {
	opts   Options
	log    *slog.Logger
	ca     *CA
	tlsCfg *tls.Config
	tokens TokenAuthority
	oauth  *oauthServer // embedded token server when opts.Tokens is nil
	store  *mailStore

	imap *imapService
	pop3 *pop3Service
	smtp *smtpService

	wg      sync.WaitGroup // accept loops, handshakes, POP3 sessions, timers
	conns   sync.WaitGroup // connections handed to go-imap / go-smtp, until closed
	closing chan struct{}  // closed by Close

	mu        sync.Mutex // guards everything below
	closed    bool
	sessions  map[*session]struct{}
	pending   map[net.Conn]struct{} // connections not yet handed to a protocol
	open      map[userProto]int
	max       map[userProto]int
	logins    map[userProto]int
	changed   chan struct{} // closed and replaced when a connection count changes
	faults    []*armedFault
	lifetime  time.Duration
	imapLimit int
	nextID    uint64
	smtpState
}

type userProto struct{ user, proto string }

// Start starts every listener. Close stops them.
func Start(opts Options) (*Server, error) {
	if len(opts.Users) == 0 {
		return nil, errors.New("fakegmail: no users")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Leaf()
	if err != nil {
		return nil, err
	}
	limit := opts.IMAPConnectionLimit
	if limit == 0 {
		limit = 15
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = 35882577
	}
	s := &Server{
		opts:      opts,
		log:       log.With("component", "fakegmail"),
		ca:        ca,
		tlsCfg:    ServerConfig(leaf),
		closing:   make(chan struct{}),
		sessions:  map[*session]struct{}{},
		pending:   map[net.Conn]struct{}{},
		open:      map[userProto]int{},
		max:       map[userProto]int{},
		logins:    map[userProto]int{},
		changed:   make(chan struct{}),
		imapLimit: limit,
	}
	s.smtpState.init()
	s.tokens = opts.Tokens
	if s.tokens == nil {
		s.oauth, err = startOAuth(opts.TokenLifetime, log)
		if err != nil {
			return nil, err
		}
		s.tokens = s.oauth
	}
	s.store, err = newMailStore(opts.Users, s.log)
	if err != nil {
		s.Close()
		return nil, err
	}
	if opts.SeedMessages {
		for _, u := range opts.Users {
			if err := s.store.seed(u); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	if err := s.startIMAP(addrOr(opts.IMAPAddr)); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startPOP3(addrOr(opts.POP3Addr)); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startSMTP(addrOr(opts.SMTPAddr), addrOr(opts.SubmissionAddr)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func addrOr(a string) string {
	if a == "" {
		return "127.0.0.1:0"
	}
	return a
}

// Close stops all listeners, ends every session at once (no BYE) and waits
// for every goroutine it started. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	for _, f := range s.faults {
		f.cancel()
	}
	s.faults = nil
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	pending := make([]net.Conn, 0, len(s.pending))
	for c := range s.pending {
		pending = append(pending, c)
	}
	s.mu.Unlock()

	// No new connection or session can start now (s.closed): stop the
	// listeners, drop what is open, then let the libraries finish.
	if s.imap != nil {
		s.imap.ln.Close()
	}
	if s.pop3 != nil {
		s.pop3.close()
	}
	if s.smtp != nil {
		s.smtp.closeListeners()
	}
	for _, c := range pending {
		c.Close()
	}
	for _, sess := range sessions {
		sess.stopTimer()
		sess.closeNow()
	}
	if s.imap != nil {
		s.imap.close()
	}
	if s.smtp != nil {
		s.smtp.close()
	}
	s.wg.Wait()
	s.conns.Wait()
	if s.store != nil {
		s.store.close()
	}
	if s.oauth != nil {
		s.oauth.Close()
	}
	return nil
}

// IMAPAddr is the IMAP listener (implicit TLS, like imap.gmail.com:993).
func (s *Server) IMAPAddr() string { return s.imap.addr() }

// POP3Addr is the POP3 listener (implicit TLS, like pop.gmail.com:995).
func (s *Server) POP3Addr() string { return s.pop3.addr() }

// SMTPAddr is the SMTP listener with implicit TLS (like smtp.gmail.com:465).
func (s *Server) SMTPAddr() string { return s.smtp.implicitAddr() }

// SubmissionAddr is the SMTP listener with STARTTLS (like
// smtp.gmail.com:587).
func (s *Server) SubmissionAddr() string { return s.smtp.starttlsAddr() }

// RootCAs holds the CA that signed the servers' certificate (valid for
// localhost, 127.0.0.1 and ::1).
func (s *Server) RootCAs() *x509.CertPool { return s.ca.Pool() }

// CACertPEM is that CA in PEM form.
func (s *Server) CACertPEM() []byte { return s.ca.PEM() }

// ClientTLSConfig is a client TLS config that verifies the fake's
// certificate.
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}
}

// Tokens is the token authority the servers ask.
func (s *Server) Tokens() TokenAuthority { return s.tokens }

// AccessToken issues a new, currently valid access token for user.
func (s *Server) AccessToken(user string) string {
	access, _ := s.tokens.Issue(user)
	return access
}

func (s *Server) hasUser(user string) bool { return s.store.hasUser(user) }

func normUser(u string) string { return strings.ToLower(strings.TrimSpace(u)) }
