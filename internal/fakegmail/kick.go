package fakegmail

import (
	"fmt"
	"sync"
)

// KickMode is how Kick, a Fault or a session's lifetime ends a session.
type KickMode int

const (
	// KickGmailBye writes Gmail's words and closes: IMAP
	// "* BYE Session expired, please login again.", POP3 "-ERR [SYS/TEMP]
	// Session expired, please login again.", SMTP "421 4.7.0 Session
	// expired, please login again." (POP3 and SMTP texts are invented:
	// nobody has seen Gmail's).
	KickGmailBye KickMode = iota + 1
	// KickMicrosoftBye is the same with "Session invalidated -
	// AccessTokenExpired".
	KickMicrosoftBye
	// KickServerShutdown is Dovecot's shutdown: IMAP "* BYE Server
	// shutting down.", POP3 "-ERR [SYS/TEMP] Server shutting down.", SMTP
	// "421 4.3.2 Server shutting down".
	KickServerShutdown
	// KickClose closes the TCP connection without a word (no TLS
	// close_notify either), like a dropped connection.
	KickClose
	// KickMidResponse (faults only) lets the command take effect, starts
	// its response and cuts it: IMAP writes half of the first literal (or
	// half of the first line) then "* BYE Server shutting down.\r\n" inside
	// it, as Dovecot does; POP3 writes "+OK" and half the data; SMTP DATA
	// sends 354 and cuts when the message body starts. Then a TCP close.
	KickMidResponse
	// KickNoReply (faults only) lets the command take effect and closes
	// the connection instead of sending its response (POP3 QUIT commits
	// deletions, SMTP DATA-END accepts the message, IMAP APPEND stores it).
	KickNoReply

	// kickRecreated ends IMAP sessions whose mailbox RecreateMailbox
	// replaces.
	kickRecreated KickMode = 100
)

func (m KickMode) String() string {
	switch m {
	case KickGmailBye:
		return "gmail-bye"
	case KickMicrosoftBye:
		return "microsoft-bye"
	case KickServerShutdown:
		return "server-shutdown"
	case KickClose:
		return "close"
	case KickMidResponse:
		return "mid-response"
	case KickNoReply:
		return "no-reply"
	}
	return fmt.Sprintf("KickMode(%d)", int(m))
}

// byeLine is what a kick in mode writes for proto before closing; "" for a
// silent close.
func byeLine(proto string, mode KickMode) string {
	var text string
	switch mode {
	case KickGmailBye:
		text = "Session expired, please login again."
	case KickMicrosoftBye:
		text = "Session invalidated - AccessTokenExpired"
	case KickServerShutdown:
		text = "Server shutting down."
	case kickRecreated:
		text = "Mailbox UIDVALIDITY changed, please reconnect."
	default:
		return ""
	}
	switch proto {
	case ProtoIMAP:
		return "* BYE " + text + "\r\n"
	case ProtoPOP3:
		return "-ERR [SYS/TEMP] " + text + "\r\n"
	}
	if mode == KickServerShutdown {
		return "421 4.3.2 Server shutting down\r\n"
	}
	return "421 4.7.0 " + text + "\r\n"
}

// Kick ends all of user's sessions (every protocol) now, in mode
// (KickGmailBye, KickMicrosoftBye, KickServerShutdown or KickClose), and
// returns when they are closed. BYE words are written between responses,
// never inside one.
func (s *Server) Kick(user string, mode KickMode) int {
	return s.KickProto(user, "", mode)
}

// KickProto is Kick limited to one protocol ("" for all). It returns how
// many sessions it ended.
func (s *Server) KickProto(user, proto string, mode KickMode) int {
	if mode == KickMidResponse || mode == KickNoReply {
		mode = KickClose
	}
	user = normUser(user)
	var victims []*session
	s.mu.Lock()
	for sess := range s.sessions {
		if sess.User() == user && (proto == "" || proto == sess.proto) {
			victims = append(victims, sess)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sess := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess.ender.end(mode)
		}()
	}
	wg.Wait()
	return len(victims)
}
