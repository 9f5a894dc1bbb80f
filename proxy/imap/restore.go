package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// sessionState is what a new upstream session must be given to look like
// the one the client has been using.
type sessionState struct {
	enabled   []string
	condstore bool
	id        []byte   // "ID (...)" as the client sent it, or nil
	mbox      *mailbox // nil when no mailbox is selected
}

func (s *session) stateLocked() sessionState {
	return sessionState{
		enabled:   append([]string(nil), s.enabled...),
		condstore: s.condstore,
		id:        s.idCmd,
		mbox:      s.mbox,
	}
}

// restored is a new upstream session put in the client's state.
type restored struct {
	up          *upstream
	uids        []uint32 // the selected mailbox's UIDs in the new session
	uidValidity uint32
}

// connect logs in a new upstream session and gives it st's session-wide
// state: extensions enabled and the client's ID sent. Its reader is not
// running yet; responses are read here.
func (s *session) connect(ctx context.Context, st sessionState) (*upstream, error) {
	start := time.Now()
	nu, err := dialUpstream(ctx, s.srv.Dialer, s.acct)
	s.srv.Metrics.UpstreamConnect("imap", time.Since(start), err == nil)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		nu.conn.SetDeadline(dl)
	}
	if err := nu.enableAndID(st); err != nil {
		nu.close()
		return nil, err
	}
	nu.conn.SetDeadline(time.Time{})
	return nu, nil
}

func (nu *upstream) enableAndID(st sessionState) error {
	enable := st.enabled
	if st.condstore && !containsFold(enable, "CONDSTORE") && nu.caps.condstore && nu.caps.enable {
		enable = append(enable, "CONDSTORE")
	}
	if len(enable) > 0 {
		if !nu.caps.enable {
			return errors.New("imap: the new upstream session does not support ENABLE")
		}
		if _, _, err := nu.rawCommand([]byte("ENABLE " + strings.Join(enable, " ") + "\r\n")); err != nil {
			return err
		}
	}
	if st.id != nil {
		// The client's ID (RFC 2971); Google asks clients to send one.
		if _, _, err := nu.rawCommand(st.id); err != nil {
			return err
		}
	}
	return nil
}

// selectOn selects st's mailbox on nu in the same mode and learns its
// UIDs. nu's reader is not running yet.
func (s *session) selectOn(ctx context.Context, nu *upstream, mbox *mailbox) (*restored, error) {
	r := &restored{up: nu}
	if mbox == nil {
		return r, nil
	}
	if mbox.sel == nil {
		return nil, errors.New("imap: the SELECT command was too large to keep")
	}
	if dl, ok := ctx.Deadline(); ok {
		nu.conn.SetDeadline(dl)
		defer nu.conn.SetDeadline(time.Time{})
	}
	untagged, _, err := nu.rawCommand(mbox.sel)
	if err != nil {
		return nil, err
	}
	var exists uint32
	for _, l := range untagged {
		body := untaggedBody(l)
		w1, rest := splitWord(body)
		if n, ok := parseNumber(w1); ok && hasPrefixFold(rest, "EXISTS") {
			exists = n
		}
		if v, ok := respCodeNumber(body, "UIDVALIDITY"); ok {
			r.uidValidity = v
		}
	}
	if r.uidValidity != mbox.uidValidity {
		return nil, errUIDValidity
	}
	if exists == 0 {
		return r, nil
	}
	// A plain FETCH: the server may not send EXPUNGE while answering it
	// (RFC 3501 §7.4.1), so the numbering cannot move under the list.
	untagged, _, err = nu.rawCommand(fmt.Appendf(nil, "FETCH 1:%d (UID)\r\n", exists))
	if err != nil {
		return nil, err
	}
	uids := make([]uint32, exists)
	for _, l := range untagged {
		body := untaggedBody(l)
		w1, rest := splitWord(body)
		n, ok := parseNumber(w1)
		if !ok {
			continue
		}
		switch {
		case hasPrefixFold(rest, "EXISTS"):
			for uint32(len(uids)) < n {
				uids = append(uids, 0)
			}
		case hasPrefixFold(rest, "FETCH"):
			if uid, _ := fetchUID(l); uid != 0 && n >= 1 && int(n) <= len(uids) {
				uids[n-1] = uid
			}
		}
	}
	for i := uint32(0); i < exists; i++ {
		if uids[i] == 0 {
			return nil, errors.New("imap: new upstream session did not report every UID")
		}
	}
	r.uids = uids
	return r, nil
}

var errUIDValidity = errors.New("imap: UIDVALIDITY of the selected mailbox changed")

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// rawCommand sends a command (everything after the tag, with its CRLF and
// any literals, as a client sent it) on an upstream whose reader is not
// running, and returns its untagged responses (literals inlined) and its
// tagged line. A NO or BAD is an error.
func (u *upstream) rawCommand(cmd []byte) (untagged [][]byte, tagged []byte, err error) {
	tag := u.nextTag()
	first := true
	rest := cmd
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, nil, errors.New("imap: stored command without CRLF")
		}
		line := rest[:i+1]
		rest = rest[i+1:]
		var out []byte
		if first {
			out = append([]byte(tag+" "), line...)
			first = false
		} else {
			out = line
		}
		lit, ok, err := parseLiteral(line)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			if err := u.write(out); err != nil {
				return nil, nil, err
			}
			break
		}
		if int64(len(rest)) < lit.size {
			return nil, nil, errors.New("imap: stored command literal truncated")
		}
		data := rest[:lit.size]
		rest = rest[lit.size:]
		if lit.nonSync {
			if err := u.write(append(append([]byte(nil), out...), data...)); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err := u.write(out); err != nil {
			return nil, nil, err
		}
		// Wait for "+" (or the command's end, a refusal).
		for {
			l, err := u.readSimpleLine()
			if err != nil {
				return nil, nil, err
			}
			if l[0] == '+' {
				break
			}
			if l[0] == '*' {
				untagged = append(untagged, append([]byte(nil), l...))
				continue
			}
			return nil, nil, &handshakeError{fmt.Sprintf("literal refused: %s", trimEOL(l))}
		}
		if err := u.write(data); err != nil {
			return nil, nil, err
		}
	}
	for {
		l, err := u.readSimpleLine()
		if err != nil {
			return nil, nil, err
		}
		if l[0] == '*' {
			if hasPrefixFold(l, "* BYE") {
				return nil, nil, errUnsolicitedBye
			}
			untagged = append(untagged, append([]byte(nil), l...))
			continue
		}
		t, after := splitWord(trimEOL(l))
		if string(t) != tag {
			continue
		}
		status, _ := splitWord(after)
		if !(len(status) == 2 && hasPrefixFold(status, "OK")) {
			return nil, nil, &handshakeError{fmt.Sprintf("%s refused: %s", firstWord(cmd), after)}
		}
		return untagged, append([]byte(nil), l...), nil
	}
}

func firstWord(b []byte) string {
	w, _ := splitWord(trimEOL(b))
	return string(w)
}
