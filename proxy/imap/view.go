package imap

import (
	"errors"
	"slices"
)

// mailbox is the selected mailbox as the bridge tracks it, so that a new
// upstream session can be put in the same state and the client's message
// sequence numbers stay right across it.
//
// Message sequence numbers are positions in a list ordered by UID (RFC
// 3501 §2.3.1.2), so a view is just the ascending list of UIDs. The bridge
// keeps the upstream session's list (up) current from the responses it
// relays: EXISTS appends unknown entries (0) until a FETCH response names
// their UIDs, EXPUNGE removes one. When the bridge learns that messages
// vanished while it could not tell the client (after a resume, or EXPUNGEs
// the client may not be sent yet), the client's list (cl) is kept apart
// from up until those EXPUNGEs can be delivered: the view "lags", and
// sequence numbers are translated between the two lists.
type mailbox struct {
	// sel is the client's SELECT/EXAMINE command as it came (tag
	// excluded), replayed on a new upstream session.
	sel         []byte
	readOnly    bool
	uidValidity uint32

	up       []uint32 // the upstream session's numbering; 0 = UID not yet known
	cl       []uint32 // the client's numbering while lagging, else nil
	unknownN int      // how many entries of up are 0
	// shown is how many messages of up the client has been told about
	// (its last EXISTS) while not lagging: new messages that arrive during
	// IDLE are announced only once their UIDs are known.
	shown int
}

var errViewBroken = errors.New("imap: mailbox view out of step with the upstream")

// lagging reports whether the client's numbering differs from the
// upstream's.
func (m *mailbox) lagging() bool { return m.cl != nil }

// exists applies "* n EXISTS" from the upstream. EXISTS never shrinks
// without EXPUNGE (RFC 3501 §7.3.1).
func (m *mailbox) exists(n uint32) error {
	switch {
	case int(n) < len(m.up):
		return errViewBroken
	case int(n) > len(m.up):
		if n-uint32(len(m.up)) > 50_000_000 {
			return errViewBroken
		}
		m.unknownN += int(n) - len(m.up)
		m.up = append(m.up, make([]uint32, int(n)-len(m.up))...)
	}
	return nil
}

// expunge applies "* n EXPUNGE" from the upstream.
func (m *mailbox) expunge(n uint32) error {
	if n == 0 || int(n) > len(m.up) {
		return errViewBroken
	}
	if m.up[n-1] == 0 {
		m.unknownN--
	}
	if int(n) <= m.shown {
		m.shown--
	}
	m.up = slices.Delete(m.up, int(n-1), int(n))
	return nil
}

// setUID records that upstream message n has UID uid.
func (m *mailbox) setUID(n, uid uint32) error {
	if n == 0 || int(n) > len(m.up) || uid == 0 {
		return errViewBroken
	}
	switch old := m.up[n-1]; {
	case old == uid:
	case old != 0:
		return errViewBroken
	default:
		// Keep the list ascending: a UID out of order means the bridge's
		// numbering is wrong, and a client must never act on that.
		if n > 1 && m.up[n-2] != 0 && m.up[n-2] >= uid {
			return errViewBroken
		}
		if int(n) < len(m.up) && m.up[n] != 0 && m.up[n] <= uid {
			return errViewBroken
		}
		m.up[n-1] = uid
		m.unknownN--
	}
	return nil
}

// unknown returns the first and last upstream sequence numbers whose UID
// is not known (1-based), or 0, 0.
func (m *mailbox) unknown() (first, last uint32) {
	if m.unknownN == 0 {
		return 0, 0
	}
	for i, u := range m.up {
		if u == 0 {
			if first == 0 {
				first = uint32(i + 1)
			}
			last = uint32(i + 1)
		}
	}
	return first, last
}

// clientLen is the number of messages in the client's view.
func (m *mailbox) clientLen() int {
	if m.cl != nil {
		return len(m.cl)
	}
	return m.shown
}

// clientView is the client's list of UIDs (may hold unknown entries when
// not lagging).
func (m *mailbox) clientView() []uint32 {
	if m.cl != nil {
		return m.cl
	}
	return m.up[:m.shown]
}

// showAll records that the client has been told about every message.
func (m *mailbox) showAll() { m.shown = len(m.up) }

// clientUID returns the UID of the client's message n, or 0.
func (m *mailbox) clientUID(n uint32) uint32 {
	l := m.clientView()
	if n == 0 || int(n) > len(l) {
		return 0
	}
	return l[n-1]
}

// clientSeq returns the client's sequence number of uid while the view
// lags (cl holds no unknown entries, so it can be searched), or 0 when the
// client does not see that message.
func (m *mailbox) clientSeq(uid uint32) uint32 {
	if m.cl == nil || uid == 0 {
		return 0
	}
	if i, ok := slices.BinarySearch(m.cl, uid); ok {
		return uint32(i + 1)
	}
	return 0
}

// upToClient maps an upstream sequence number to the client's, or 0 when
// the client does not see that message (yet).
func (m *mailbox) upToClient(n uint32) uint32 {
	if m.cl == nil {
		if int(n) > m.shown {
			return 0
		}
		return n
	}
	if n == 0 || int(n) > len(m.up) || m.up[n-1] == 0 {
		return 0
	}
	return m.clientSeq(m.up[n-1])
}

// reconcile makes the upstream list fresh (from a new upstream session)
// and the client's list what the client saw (old). It fails when the
// client's view cannot be mapped exactly: UIDs it never learned, or a
// message in the new session that should have been in the client's view
// but was not (UIDs are never reused within a UIDVALIDITY, RFC 3501
// §2.3.1.1).
func (m *mailbox) reconcile(old, fresh []uint32) error {
	if slices.Contains(old, 0) {
		return errViewBroken
	}
	var max uint32
	if len(old) > 0 {
		max = old[len(old)-1]
	}
	for _, u := range fresh {
		if u != 0 && u <= max {
			if _, ok := slices.BinarySearch(old, u); !ok {
				return errViewBroken
			}
		}
	}
	m.up = fresh
	m.unknownN = 0
	for _, u := range fresh {
		if u == 0 {
			m.unknownN++
		}
	}
	if slices.Equal(old, fresh) {
		m.cl = nil
		m.shown = len(fresh)
	} else {
		m.cl = old
	}
	return nil
}

// pending computes what the client must be told to bring its view to the
// upstream's: the client sequence numbers of vanished messages, from high
// to low (each EXPUNGE renumbers only the messages above it), and the
// EXISTS count after them (0 when there are no new messages). It does not
// change the view; settle does.
func (m *mailbox) pending() (expunged []uint32, exists uint32) {
	if m.cl == nil {
		return nil, 0
	}
	// Both lists ascend. Unknown entries (0) in up are messages that
	// arrived after the client's view was fixed, so they are above all of
	// cl and can be skipped.
	kept := make([]bool, len(m.cl))
	j := 0
	for i, c := range m.cl {
		for j < len(m.up) && (m.up[j] == 0 || m.up[j] < c) {
			j++
		}
		kept[i] = j < len(m.up) && m.up[j] == c
	}
	n := 0
	for i := len(m.cl) - 1; i >= 0; i-- {
		if kept[i] {
			n++
		} else {
			expunged = append(expunged, uint32(i+1))
		}
	}
	if len(m.up) > n {
		exists = uint32(len(m.up))
	}
	return expunged, exists
}

// settle marks the pending changes delivered: the client now sees up.
func (m *mailbox) settle() {
	m.cl = nil
	m.shown = len(m.up)
}
