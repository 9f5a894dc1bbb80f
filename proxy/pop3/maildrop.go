package pop3

import (
	"bytes"
	"fmt"
	"strconv"
)

// The client's view of its maildrop. RFC 1939 §3 numbers messages 1..N
// at login and keeps the numbers stable for the whole session; a new
// upstream session numbers its own snapshot, which may differ (messages
// expunged or added meanwhile, or already downloaded ones hidden by
// Gmail). The bridge therefore keeps, per client message number, the
// message's UIDL and size as first listed, whether the client marked it
// deleted, and its number in the current upstream session. After a
// resume it maps client numbers to upstream numbers by UIDL.

// entry is one message of an upstream listing.
type entry struct {
	num  int
	uidl string
	size int64
}

// maxMessages bounds the listing the bridge holds per session (memory):
// Gmail serves POP3 maildrops in batches of a few hundred.
const maxMessages = 1 << 20

// message is one message of the client's view.
type message struct {
	uidl string
	size int64
	// cur is the message's number in the current upstream session; 0
	// when it is not there (vanished) or was never listed.
	cur int
	// deleted: the client's DELE was confirmed and no RSET followed.
	deleted bool
}

// maildrop is the client's view. msgs[i] is client message number i+1.
type maildrop struct {
	msgs []message
	// remapped is set by the first resume. Before it, upstream numbers
	// are the client's and STAT/LIST/UIDL are relayed byte for byte;
	// from then on they are answered from msgs, so the client keeps
	// seeing its original maildrop (new upstream messages stay hidden
	// until the next login, as RFC 1939 §8 expects of a session).
	remapped bool
}

type msgState int

const (
	msgOK      msgState = iota
	msgNone             // no such message (out of range, or vanished upstream)
	msgDeleted          // marked deleted by the client
)

func newMaildrop(l []entry) *maildrop {
	n := 0
	for _, e := range l {
		n = max(n, e.num)
	}
	m := &maildrop{msgs: make([]message, n)}
	for _, e := range l {
		m.msgs[e.num-1] = message{uidl: e.uidl, size: e.size, cur: e.num}
	}
	return m
}

// lookup finds client message n.
func (m *maildrop) lookup(n int) (*message, msgState) {
	if n < 1 || n > len(m.msgs) || m.msgs[n-1].cur == 0 {
		return nil, msgNone
	}
	msg := &m.msgs[n-1]
	if msg.deleted {
		return msg, msgDeleted
	}
	return msg, msgOK
}

// mark records a DELE of client message n that the upstream confirmed.
func (m *maildrop) mark(n int) {
	if n >= 1 && n <= len(m.msgs) {
		m.msgs[n-1].deleted = true
	}
}

// reset records a confirmed RSET (RFC 1939 §5: every mark is removed).
func (m *maildrop) reset() {
	for i := range m.msgs {
		m.msgs[i].deleted = false
	}
}

// remap points every client message at its number in a new upstream
// session's listing, matching by UIDL. A UIDL the new session lists twice
// cannot be mapped safely and counts as vanished. It returns how many
// messages vanished.
func (m *maildrop) remap(l []entry) (vanished int) {
	byUIDL := make(map[string]int, len(l))
	for _, e := range l {
		if _, dup := byUIDL[e.uidl]; dup {
			byUIDL[e.uidl] = 0
			continue
		}
		byUIDL[e.uidl] = e.num
	}
	for i := range m.msgs {
		msg := &m.msgs[i]
		if msg.uidl == "" {
			continue // never listed: stays unknown
		}
		msg.cur = byUIDL[msg.uidl]
		if msg.cur == 0 {
			vanished++
		}
	}
	m.remapped = true
	return vanished
}

// markedUIDLs returns the UIDLs of the messages the client marked deleted.
func (m *maildrop) markedUIDLs() []string {
	var out []string
	for _, msg := range m.msgs {
		if msg.deleted && msg.uidl != "" {
			out = append(out, msg.uidl)
		}
	}
	return out
}

// stat is the RFC 1939 §5 STAT answer of the view: messages neither
// deleted nor vanished, and their total size.
func (m *maildrop) stat() (count int, size int64) {
	for _, msg := range m.msgs {
		if msg.cur != 0 && !msg.deleted {
			count++
			size += msg.size
		}
	}
	return count, size
}

// scan lists "n size" (LIST) or "n uidl" (UIDL) for every message neither
// deleted nor vanished, in client numbers (RFC 1939 §5, §7).
func (m *maildrop) scan(uidl bool) []string {
	var out []string
	for i, msg := range m.msgs {
		if msg.cur == 0 || msg.deleted {
			continue
		}
		out = append(out, scanLine(i+1, &msg, uidl))
	}
	return out
}

func scanLine(n int, msg *message, uidl bool) string {
	if uidl {
		return strconv.Itoa(n) + " " + msg.uidl
	}
	return strconv.Itoa(n) + " " + strconv.FormatInt(msg.size, 10)
}

// takeListing asks the upstream for UIDL and LIST (the bridge's own
// commands; the client never sees their answers) and merges them.
func (u *upstream) takeListing() ([]entry, error) {
	uidls, err := u.listing("UIDL")
	if err != nil {
		return nil, err
	}
	sizes, err := u.listing("LIST")
	if err != nil {
		return nil, err
	}
	return mergeListings(uidls, sizes)
}

// listing runs a multi-line UIDL or LIST and returns its lines.
func (u *upstream) listing(cmd string) ([][]byte, error) {
	if err := u.send([]byte(cmd)); err != nil {
		return nil, err
	}
	status, err := u.readLine()
	if err != nil {
		return nil, err
	}
	if !isOK(status) {
		// The server ending the session rather than refusing the command?
		if u.ended(status, true) {
			return nil, errUpstreamClosed
		}
		u.idle = true
		if cmd == "UIDL" {
			return nil, fmt.Errorf("%w: %q", errNoUIDL, truncate(status))
		}
		return nil, fmt.Errorf("pop3: upstream refused %s: %q: %w", cmd, truncate(status), errUpstreamProtocol)
	}
	return u.readMulti(maxMessages)
}

// mergeListings joins a UIDL and a LIST scan listing by message number.
// Both come from the same fresh upstream snapshot, so the numbers are
// exactly 1..N (nothing is marked deleted yet); anything else, a
// malformed line, or a number in one listing but not the other is a
// protocol error. The bound on N also bounds what newMaildrop allocates.
func mergeListings(uidls, sizes [][]byte) ([]entry, error) {
	out := make([]entry, 0, len(uidls))
	index := make(map[int]int, len(uidls))
	for _, line := range uidls {
		n, rest, ok := splitScanLine(line)
		if !ok || len(rest) == 0 || len(rest) > 70*4 {
			return nil, fmt.Errorf("pop3: malformed UIDL line %q: %w", truncate(line), errUpstreamProtocol)
		}
		if n > len(uidls) {
			return nil, fmt.Errorf("pop3: UIDL lists message %d of %d: %w", n, len(uidls), errUpstreamProtocol)
		}
		if _, dup := index[n]; dup {
			return nil, fmt.Errorf("pop3: UIDL lists message %d twice: %w", n, errUpstreamProtocol)
		}
		index[n] = len(out)
		out = append(out, entry{num: n, uidl: string(rest)})
	}
	if len(sizes) != len(uidls) {
		return nil, fmt.Errorf("pop3: UIDL lists %d messages, LIST %d: %w", len(uidls), len(sizes), errUpstreamProtocol)
	}
	for _, line := range sizes {
		n, rest, ok := splitScanLine(line)
		if f := bytes.Fields(rest); ok && len(f) > 0 {
			rest = f[0]
		}
		size, err := strconv.ParseInt(string(rest), 10, 64)
		i, known := index[n]
		if !ok || err != nil || size < 0 || !known {
			return nil, fmt.Errorf("pop3: malformed LIST line %q: %w", truncate(line), errUpstreamProtocol)
		}
		out[i].size = size
	}
	return out, nil
}

// splitScanLine splits "n rest" (RFC 1939 §5 scan listing / §7 unique-id
// listing).
func splitScanLine(line []byte) (n int, rest []byte, ok bool) {
	num, rest, found := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
	if !found {
		return 0, nil, false
	}
	n, ok = parseNumber(string(num), 1)
	return n, bytes.TrimSpace(rest), ok
}
