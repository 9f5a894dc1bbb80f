package imap

import (
	"bytes"
	"strings"
)

// Capabilities the bridge removes from what the upstream advertises
// before a client sees it, and why:
//   - AUTH=*, SASL-IR, LOGINDISABLED, STARTTLS, UNAUTHENTICATE (RFC 8437):
//     authentication and TLS are the bridge's business; after login they
//     would only invite a client to talk to the upstream itself.
//   - COMPRESS=* (RFC 4978): the stream would become DEFLATE and the bridge
//     would lose the framing it needs to track state.
//   - QRESYNC (RFC 7162 §3.2), SEARCHRES (RFC 5182), CONTEXT=SEARCH and
//     CONTEXT=SORT (RFC 5267), NOTIFY (RFC 5465): they create session state
//     (VANISHED instead of EXPUNGE, a saved "$" result, live search updates,
//     notification subscriptions) that a new upstream session would not
//     have, so a rotation or resume could not be invisible.
func dropCap(c []byte) bool {
	switch {
	case hasPrefixFold(c, "AUTH="), hasPrefixFold(c, "COMPRESS="):
		return true
	}
	switch strings.ToUpper(string(c)) {
	case "SASL-IR", "LOGINDISABLED", "STARTTLS", "UNAUTHENTICATE",
		"QRESYNC", "SEARCHRES", "CONTEXT=SEARCH", "CONTEXT=SORT", "NOTIFY":
		return true
	}
	return false
}

// hasPrefixFold reports whether b starts with the upper-case ASCII
// prefix, ignoring case.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && indexFold(b[:len(prefix)], prefix) == 0
}

// filterCaps returns the space-separated capability list caps without the
// ones dropCap removes.
func filterCaps(caps []byte) []byte {
	out := make([]byte, 0, len(caps))
	for len(caps) > 0 {
		var c []byte
		c, caps = splitWord(caps)
		if len(c) == 0 || dropCap(c) {
			continue
		}
		if len(out) > 0 {
			out = append(out, ' ')
		}
		out = append(out, c...)
	}
	return out
}

// rewriteCapabilityLine filters an untagged "* CAPABILITY ..." line (with
// its CRLF). It returns line unchanged when it is something else.
func rewriteCapabilityLine(line []byte) []byte {
	body := trimEOL(line)
	const p = "* CAPABILITY "
	if len(body) < len(p) || !strings.EqualFold(string(body[:len(p)]), p) {
		return line
	}
	out := append([]byte("* CAPABILITY "), filterCaps(body[len(p):])...)
	return append(out, '\r', '\n')
}

// rewriteCapabilityCode filters a "[CAPABILITY ...]" response code inside a
// status response line (greeting, tagged OK after login, ...). Lines
// without one are returned unchanged.
func rewriteCapabilityCode(line []byte) []byte {
	i := indexFold(line, "[CAPABILITY ")
	if i < 0 {
		return line
	}
	start := i + len("[CAPABILITY ")
	end := bytes.IndexByte(line[start:], ']')
	if end < 0 {
		return line
	}
	end += start
	out := make([]byte, 0, len(line))
	out = append(out, line[:start]...)
	out = append(out, filterCaps(line[start:end])...)
	return append(out, line[end:]...)
}

// indexFold is a case-insensitive bytes.Index for an upper-case ASCII
// needle. It does not allocate.
func indexFold(b []byte, needle string) int {
	n := len(needle)
outer:
	for i := 0; i+n <= len(b); i++ {
		for j := 0; j < n; j++ {
			c := b[i+j]
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != needle[j] {
				continue outer
			}
		}
		return i
	}
	return -1
}

// capSet is a parsed capability list, upper-cased.
type capSet map[string]bool

func parseCaps(list []byte) capSet {
	cs := capSet{}
	for len(list) > 0 {
		var c []byte
		c, list = splitWord(list)
		if len(c) > 0 {
			cs[strings.ToUpper(string(c))] = true
		}
	}
	return cs
}

// capsFromCode extracts the list of a "[CAPABILITY ...]" code in line, or
// nil.
func capsFromCode(line []byte) []byte {
	i := indexFold(line, "[CAPABILITY ")
	if i < 0 {
		return nil
	}
	start := i + len("[CAPABILITY ")
	end := bytes.IndexByte(line[start:], ']')
	if end < 0 {
		return nil
	}
	return line[start : start+end]
}
