package fakegmail

import (
	"strings"
	"sync"
)

// Fault cuts a session the next time it receives a command. It fires once.
type Fault struct {
	// User whose session is cut ("" for any session, also before login).
	User string
	// Proto is ProtoIMAP, ProtoPOP3 or ProtoSMTP.
	Proto string
	// OnCommand is the command name as the client sends it, matched
	// case-insensitively:
	//   - IMAP: "FETCH", "UID FETCH", "STORE", "APPEND", "IDLE", "NOOP",
	//     "SELECT", "AUTHENTICATE", ... ("UID X" is not "X").
	//   - POP3: "RETR", "DELE", "QUIT", "STAT", "AUTH", ...
	//   - SMTP: "MAIL", "RCPT", "DATA", "BDAT", "QUIT", ..., and
	//     "DATA-END": the final "." of DATA (or the last BDAT chunk).
	OnCommand string
	// Kick is what happens. KickGmailBye, KickMicrosoftBye,
	// KickServerShutdown and KickClose cut before the command takes effect
	// (writing the mode's words, if any, instead of the response);
	// KickMidResponse and KickNoReply let it take effect (see KickMode).
	Kick KickMode
}

type armedFault struct {
	Fault
	fired chan struct{} // closed once the fault has been triggered
	once  sync.Once
}

func (f *armedFault) fire()   { f.once.Do(func() { close(f.fired) }) }
func (f *armedFault) cancel() { f.fire() }

// ArmFault arms f. The returned channel is closed when it has fired (or
// the server closed).
func (s *Server) ArmFault(f Fault) <-chan struct{} {
	f.User = normUser(f.User)
	f.OnCommand = strings.ToUpper(f.OnCommand)
	if f.Kick == 0 {
		f.Kick = KickClose
	}
	af := &armedFault{Fault: f, fired: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		af.cancel()
		return af.fired
	}
	s.faults = append(s.faults, af)
	return af.fired
}

// ClearFaults disarms every fault that has not fired.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	faults := s.faults
	s.faults = nil
	s.mu.Unlock()
	for _, f := range faults {
		f.cancel()
	}
}

// takeFault consumes the first fault armed for sess receiving cmd (upper
// case). The caller acts on f.Kick and then calls f.fire.
func (sess *session) takeFault(cmd string) (*armedFault, bool) {
	s := sess.srv
	user := sess.User()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Proto != sess.proto || f.OnCommand != cmd {
			continue
		}
		if f.User != "" && f.User != user {
			continue
		}
		s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		s.log.Info("fault", "proto", sess.proto, "session", sess.id, "account", user, "command", cmd, "kick", f.Kick.String())
		return f, true
	}
	return nil, false
}
