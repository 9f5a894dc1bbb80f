package fakegmail

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// StoredMessage is a message as the store holds it.
type StoredMessage struct {
	UID   uint32
	Flags []string
	Data  []byte
}

// Append stores msg in user's mailbox (created if missing) and returns its
// UID. Sessions that have the mailbox selected see it as EXISTS (at once
// in IDLE, else at their next command).
func (s *Server) Append(user, mailbox string, msg []byte) (uint32, error) {
	uid, err := s.store.appendMessage(user, mailbox, msg, nil)
	return uint32(uid), err
}

// Expunge removes the message with uid from user's mailbox; selected
// sessions see "* n EXPUNGE" (preceded by a FLAGS update to \Deleted,
// since the store expunges by flag).
func (s *Server) Expunge(user, mailbox string, uid uint32) error {
	n, err := s.store.expunge(user, mailbox, []imap.UID{imap.UID(uid)})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: uid %d in %s", errNoMessage, uid, mailbox)
	}
	return nil
}

// RecreateMailbox deletes user's mailbox and creates it again with the
// same messages under new UIDs and a new UIDVALIDITY, which it returns.
// IMAP sessions that have the mailbox selected are ended with "* BYE
// Mailbox UIDVALIDITY changed, please reconnect." first (they could not
// go on with stale UIDs).
func (s *Server) RecreateMailbox(user, mailbox string) (uint32, error) {
	user = normUser(user)
	var victims []*session
	s.mu.Lock()
	for sess := range s.sessions {
		sess.mu.Lock()
		if sess.proto == ProtoIMAP && sess.user == user && sess.mailbox == mailbox {
			victims = append(victims, sess)
		}
		sess.mu.Unlock()
	}
	s.mu.Unlock()
	for _, sess := range victims {
		sess.ender.end(kickRecreated)
	}
	return s.store.recreate(user, mailbox)
}

// Messages returns the messages of user's mailbox in sequence order and
// the mailbox's UIDVALIDITY.
func (s *Server) Messages(user, mailbox string) ([]StoredMessage, uint32, error) {
	msgs, uv, err := s.store.messages(user, mailbox)
	if err != nil {
		return nil, 0, err
	}
	out := make([]StoredMessage, len(msgs))
	for i, m := range msgs {
		flags := make([]string, len(m.Flags))
		for j, f := range m.Flags {
			flags[j] = string(f)
		}
		out[i] = StoredMessage{UID: uint32(m.UID), Flags: flags, Data: m.Data}
	}
	return out, uv, nil
}
