package fakegmail

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
)

// gmailCapOrder is the order of Gmail's capability list after login
// (FACTS.md); capabilities the fake does not offer are skipped, others go
// last.
var gmailCapOrder = []string{
	"IMAP4rev1", "UNSELECT", "IDLE", "NAMESPACE", "QUOTA", "ID", "XLIST",
	"CHILDREN", "X-GM-EXT-1", "UIDPLUS", "COMPRESS=DEFLATE", "ENABLE",
	"MOVE", "CONDSTORE", "ESEARCH", "UTF8=ACCEPT", "LIST-EXTENDED",
	"LIST-STATUS", "LITERAL-", "SPECIAL-USE", "APPENDLIMIT=35651584",
}

// imapFramer adapts imapserver's output to Gmail's and implements the
// commands imapserver lacks (ID, COMPRESS) and the faults.
type imapFramer struct {
	srv     *Server
	greeted bool // guarded by wireConn.mu (serverLine runs under it)
}

func (f *imapFramer) clientLine(c *wireConn, line []byte, cont bool) (readAction, int64) {
	lit, sync := literalMarker(line)
	if !cont {
		if tag, name, ok := parseIMAPCommand(line); ok {
			if fault, ok := c.sess.takeFault(name); ok {
				if c.applyFault(fault, byeLine(ProtoIMAP, KickServerShutdown)) == actCut {
					return actCut, 0
				}
			}
			if lit < 0 {
				switch name {
				case "ID":
					// RFC 2971; Google asks clients to send it.
					c.writeDirect(`* ID ("name" "GImap" "vendor" "Google, Inc." "support-url" "https://support.google.com/mail")` + "\r\n" + tag + " OK Success\r\n")
					return actDrop, 0
				case "COMPRESS":
					f.compress(c, tag, line)
					return actDrop, 0
				}
			}
		}
	}
	if lit < 0 {
		return actPass, 0
	}
	if sync {
		// RFC 3501 §7.5: the client sends a synchronizing literal only
		// after the server's "+"; the write side grants it.
		c.mu.Lock()
		c.syncLit = lit
		c.mu.Unlock()
		return actPass, 0
	}
	return actPass, lit
}

// longLineEnd finds a literal announced at the end of a long line.
func (f *imapFramer) longLineEnd(c *wireConn, tail []byte) int64 {
	n, sync := literalMarker(tail)
	switch {
	case n < 0:
		return 0
	case sync:
		c.mu.Lock()
		c.syncLit = n
		c.mu.Unlock()
		return 0
	}
	return n
}

// compress answers COMPRESS (RFC 4978) and switches the connection to
// DEFLATE.
func (f *imapFramer) compress(c *wireConn, tag string, line []byte) {
	arg := strings.ToUpper(strings.TrimSpace(string(line[len(tag)+len(" COMPRESS"):])))
	switch {
	case c.sess.User() == "":
		c.writeDirect(tag + " BAD COMPRESS is only valid after login\r\n")
	case arg != "DEFLATE":
		c.writeDirect(tag + " BAD Unknown compression mechanism\r\n")
	case c.compressed():
		c.writeDirect(tag + " NO [COMPRESSIONACTIVE] DEFLATE active via COMPRESS\r\n")
	default:
		c.writeDirect(tag + " OK Success\r\n")
		c.startDeflate()
	}
}

func (f *imapFramer) serverLine(c *wireConn, line []byte) ([]byte, int64, bool) {
	if !f.greeted {
		// imapserver greets with "* OK [CAPABILITY ...] IMAP server
		// ready"; Gmail's greeting has no capability code.
		f.greeted = true
		return []byte(f.greeting(c)), 0, true
	}
	if line[0] == '+' {
		if c.syncLit > 0 {
			c.grantLit, c.syncLit = c.syncLit, 0
		}
		return line, 0, true
	}
	if !bytes.HasPrefix(line, []byte("* ")) {
		c.syncLit = 0 // a tagged reply: a refused literal will not come
	}
	if caps, ok := bytes.CutPrefix(line, []byte("* CAPABILITY ")); ok {
		return []byte("* CAPABILITY " + f.caps(strings.Fields(string(caps))) + "\r\n"), 0, true
	}
	if out, ok := f.taggedCaps(c, line); ok {
		return out, 0, true
	}
	lit, _ := literalMarker(line)
	if lit >= 0 {
		return line, lit, false
	}
	return line, 0, true
}

func (f *imapFramer) greeting(c *wireConn) string {
	if f.srv.opts.Microsoft {
		return "* OK The Microsoft Exchange IMAP4 service is ready. [" + base64.StdEncoding.EncodeToString([]byte(c.sess.id)) + "]\r\n"
	}
	return "* OK Gimap ready for requests from " + c.sess.remote + " " + c.sess.id + "\r\n"
}

// taggedCaps rewrites "tag OK [CAPABILITY ...] text". After AUTHENTICATE
// Gmail sends its capabilities untagged and then "tag OK user
// authenticated (Success)"; Microsoft sends "tag OK AUTHENTICATE
// completed." with no capabilities.
func (f *imapFramer) taggedCaps(c *wireConn, line []byte) ([]byte, bool) {
	tag, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return nil, false
	}
	rest, ok = bytes.CutPrefix(rest, []byte("OK [CAPABILITY "))
	if !ok {
		return nil, false
	}
	list, text, ok := bytes.Cut(rest, []byte("] "))
	if !ok {
		return nil, false
	}
	caps := f.caps(strings.Fields(string(list)))
	if bytes.HasSuffix(bytes.TrimRight(text, "\r\n"), []byte("authentication successful")) {
		if f.srv.opts.Microsoft {
			return []byte(string(tag) + " OK AUTHENTICATE completed.\r\n"), true
		}
		return []byte("* CAPABILITY " + caps + "\r\n" + string(tag) + " OK " + c.sess.User() + " authenticated (Success)\r\n"), true
	}
	return []byte(string(tag) + " OK [CAPABILITY " + caps + "] " + string(text)), true
}

// caps turns imapserver's capability list into the fake's: in Gmail's
// order, plus ID and COMPRESS=DEFLATE (implemented here) and the
// configured extras after login. imapserver lists IDLE only after login.
func (f *imapFramer) caps(lib []string) string {
	post := slices.Contains(lib, "IDLE")
	set := make([]string, 0, len(lib)+4)
	for _, c := range lib {
		if post && c == "SASL-IR" {
			continue
		}
		set = append(set, c)
	}
	set = append(set, "ID")
	if post {
		set = append(set, "COMPRESS=DEFLATE")
		set = append(set, f.srv.opts.ExtraIMAPCaps...)
	}
	rank := func(c string) int {
		if i := slices.Index(gmailCapOrder, c); i >= 0 {
			return i
		}
		return len(gmailCapOrder)
	}
	slices.SortStableFunc(set, func(a, b string) int { return rank(a) - rank(b) })
	return strings.Join(slices.Compact(set), " ")
}

// literalMarker returns the size of the literal announced at the end of
// line ("{n}" or "{n+}" before CRLF) and whether it is synchronizing; -1
// when there is none.
func literalMarker(line []byte) (n int64, sync bool) {
	l := bytes.TrimSuffix(line, []byte("\n"))
	if len(l) == len(line) {
		return -1, false // not a complete line
	}
	l = bytes.TrimSuffix(l, []byte("\r"))
	if len(l) < 3 || l[len(l)-1] != '}' {
		return -1, false
	}
	open := bytes.LastIndexByte(l, '{')
	if open < 0 {
		return -1, false
	}
	digits := l[open+1 : len(l)-1]
	sync = true
	if d, ok := bytes.CutSuffix(digits, []byte("+")); ok {
		digits, sync = d, false
	}
	if len(digits) == 0 || len(digits) > 12 {
		return -1, false
	}
	v, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil || v < 0 {
		return -1, false
	}
	return v, sync
}

// parseIMAPCommand reads "tag SP name" (and "UID name") from the start of
// a command line; the name is upper-cased.
func parseIMAPCommand(line []byte) (tag, name string, ok bool) {
	t, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(t) == 0 || !isAtom(t) || string(t) == "*" || string(t) == "+" {
		return "", "", false
	}
	n := atomPrefix(rest)
	if len(n) == 0 {
		return "", "", false
	}
	name = strings.ToUpper(string(n))
	if name == "UID" && len(rest) > len(n) && rest[len(n)] == ' ' {
		sub := atomPrefix(rest[len(n)+1:])
		if len(sub) > 0 {
			name += " " + strings.ToUpper(string(sub))
		}
	}
	return string(t), name, true
}

func atomPrefix(b []byte) []byte {
	for i, ch := range b {
		if !isAtomChar(ch) {
			return b[:i]
		}
	}
	return b
}

func isAtom(b []byte) bool {
	for _, ch := range b {
		if !isAtomChar(ch) {
			return false
		}
	}
	return true
}

// isAtomChar: RFC 3501 §9 ATOM-CHAR (any CHAR except atom-specials).
func isAtomChar(ch byte) bool {
	if ch <= 0x20 || ch >= 0x7f {
		return false
	}
	switch ch {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}
