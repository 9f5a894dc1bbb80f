package proxy

import (
	"bytes"
	"encoding/base64"
)

// Redacted replaces secrets in debug transcripts.
const Redacted = "***"

// Redactor masks credentials in one session's debug transcript, line by
// line, for one direction pair: lines the client side sends (Client) and
// lines the server side answers (Server). Use one per client session for
// the local side, and one per upstream connection for the bridge's own
// lines to the upstream (then "client" is the bridge):
//
//	red := proxy.NewRedactor("imap")
//	log.Debug("C: " + string(red.Client(line)))
//	log.Debug("S: " + string(red.Server(reply)))
//
// What it masks in Client lines:
//   - IMAP LOGIN: everything after the user name (RFC 3501 §6.2.3),
//     including the password and any literal continuation lines, and the
//     user too when it is itself a literal;
//   - IMAP AUTHENTICATE, POP3 AUTH, SMTP AUTH: the initial response (RFC
//     4959, RFC 5034 §4, RFC 4954 §4), and then every client line until
//     the server answers with something other than a continuation
//     ("+" for IMAP/POP3, "334" for SMTP);
//   - POP3 PASS (everything after "PASS ") and APOP's digest;
//   - whatever the state, a line that is one base64 token decoding to a
//     SASL PLAIN or XOAUTH2 payload (it contains NUL or ^A), and any
//     "auth=Bearer ..." text.
//
// Server lines hold no client secret and are returned unchanged; they
// only end the states above. When the caller never shows Server lines,
// a Redactor keeps masking client lines after AUTH: it fails safe.
//
// Lines are given as read, with or without their CRLF/LF ending, which is
// kept. The result may share memory with line when nothing was masked.
// A Redactor is not safe for concurrent use.
type Redactor struct {
	proto string
	// sasl: a SASL exchange is running; client lines are responses.
	sasl bool
	// login: an IMAP LOGIN continues after a literal; litLeft octets of
	// literal data are still to come.
	login   bool
	litLeft int64
}

// NewRedactor returns a Redactor for proto ("imap", "pop3" or "smtp").
func NewRedactor(proto string) *Redactor { return &Redactor{proto: proto} }

// RedactClientLine masks the credentials in one client line without
// session state (a SASL response on a line of its own is recognised only
// when it decodes to a PLAIN or XOAUTH2 payload; use a Redactor for
// AUTH LOGIN exchanges).
func RedactClientLine(proto string, line []byte) []byte {
	return NewRedactor(proto).Client(line)
}

// RedactXOAUTH2 masks XOAUTH2 material in a line the bridge sends to an
// upstream: the initial response of "AUTHENTICATE XOAUTH2 <b64>" / "AUTH
// XOAUTH2 <b64>", a base64 payload line of its own (POP3's two-step form),
// and raw "auth=Bearer <token>" text.
func RedactXOAUTH2(line []byte) []byte {
	body, eol := splitEOL(line)
	if looksLikeSASLPayload(body) {
		return join(nil, Redacted, eol)
	}
	if out, ok := maskBearer(body, eol); ok {
		return out
	}
	words := fields(body, 4)
	for i, w := range words {
		if i+1 < len(words) && bytes.EqualFold(w.b, []byte("XOAUTH2")) {
			return join(body[:w.end], " "+Redacted, eol)
		}
	}
	return line
}

// Client masks the credentials in a line sent by the client side.
func (r *Redactor) Client(line []byte) []byte {
	body, eol := splitEOL(line)
	if r.login {
		return r.loginContinuation(line, body, eol)
	}
	if r.sasl {
		return join(nil, Redacted, eol)
	}
	if looksLikeSASLPayload(body) {
		return join(nil, Redacted, eol)
	}
	var out []byte
	switch r.proto {
	case "imap":
		out = r.imap(body, eol)
	case "pop3":
		out = r.pop3(body, eol)
	case "smtp":
		out = r.smtp(body, eol)
	default:
		// Unknown protocol: treat any AUTH-like command as all three.
		if out = r.imap(body, eol); out == nil {
			if out = r.pop3(body, eol); out == nil {
				out = r.smtp(body, eol)
			}
		}
	}
	if out != nil {
		return out
	}
	if out, ok := maskBearer(body, eol); ok {
		return out
	}
	return line
}

// Server observes a line from the server side and returns it unchanged.
// A reply other than a continuation ends a SASL exchange or an IMAP LOGIN
// in progress.
func (r *Redactor) Server(line []byte) []byte {
	if r.sasl || r.login {
		// Continuations: "+ ..." (RFC 3501 §7.5, RFC 5034 §4; POP3's
		// "+OK" is a final reply) and SMTP's "334 ..." (RFC 4954 §4).
		body, _ := splitEOL(line)
		cont := len(body) == 1 && body[0] == '+' || bytes.HasPrefix(body, []byte("+ "))
		if r.proto == "smtp" {
			cont = bytes.HasPrefix(body, []byte("334"))
		}
		if !cont {
			r.sasl, r.login, r.litLeft = false, false, 0
		}
	}
	return line
}

// imap handles "tag LOGIN ..." and "tag AUTHENTICATE ...". It returns nil
// for other lines.
func (r *Redactor) imap(body, eol []byte) []byte {
	w := fields(body, 4)
	if len(w) < 2 {
		return nil
	}
	cmd := w[1].b
	switch {
	case bytes.EqualFold(cmd, []byte("LOGIN")):
		// Keep the user name when it is a plain atom or a complete quoted
		// string; anything unusual (a literal, odd bytes) is masked too.
		// Kept only when something follows it: a lone argument may be a
		// password typed without a user.
		keep := w[1].end
		if len(w) > 2 {
			start := w[2].start
			if q := quotedEnd(body[start:]); q > 0 && len(bytes.TrimSpace(body[start+q:])) > 0 {
				keep = start + q
			} else if isPlainAtom(w[2].b) && len(w) > 3 {
				keep = w[2].end
			}
		}
		out := join(body[:keep], " "+Redacted, nil)
		if n, ok := trailingLiteral(body[keep:]); ok {
			r.login, r.litLeft = true, n
			out = append(out, ' ')
			out = append(out, body[keep+literalStart(body[keep:]):]...)
		}
		return append(out, eol...)
	case bytes.EqualFold(cmd, []byte("AUTHENTICATE")):
		r.sasl = true
		return maskAfter(body, w, 3, eol)
	}
	return nil
}

// isPlainAtom reports whether b is an IMAP atom of printable ASCII
// (RFC 3501 §9 ATOM-CHAR, minus the characters that start other syntax).
func isPlainAtom(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`(){%*"\]`), c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// pop3 handles PASS, APOP and AUTH (RFC 1939 §7, RFC 5034).
func (r *Redactor) pop3(body, eol []byte) []byte {
	w := fields(body, 3)
	if len(w) == 0 {
		return nil
	}
	switch cmd := w[0].b; {
	case bytes.EqualFold(cmd, []byte("PASS")):
		// The password is the rest of the line, spaces included.
		return join(body[:w[0].end], " "+Redacted, eol)
	case bytes.EqualFold(cmd, []byte("APOP")):
		return maskAfter(body, w, 2, eol)
	case bytes.EqualFold(cmd, []byte("AUTH")):
		if len(w) > 1 {
			r.sasl = true
		}
		return maskAfter(body, w, 2, eol)
	}
	return nil
}

// smtp handles AUTH (RFC 4954 §4).
func (r *Redactor) smtp(body, eol []byte) []byte {
	w := fields(body, 3)
	if len(w) == 0 || !bytes.EqualFold(w[0].b, []byte("AUTH")) {
		return nil
	}
	if len(w) > 1 {
		r.sasl = true
	}
	return maskAfter(body, w, 2, eol)
}

// loginContinuation masks a line that belongs to an IMAP LOGIN after a
// literal: literal octets first, then the rest of the command, which may
// announce another literal.
func (r *Redactor) loginContinuation(line, body, eol []byte) []byte {
	n := int64(len(line))
	if n <= r.litLeft {
		r.litLeft -= n
		return join(nil, Redacted, eol)
	}
	rest := body
	if r.litLeft < int64(len(body)) {
		rest = body[r.litLeft:]
	} else {
		rest = nil
	}
	r.litLeft = 0
	out := []byte(Redacted)
	if lit, ok := trailingLiteral(rest); ok {
		r.litLeft = lit
		out = append(out, ' ')
		out = append(out, rest[literalStart(rest):]...)
	} else {
		r.login = false
	}
	return append(out, eol...)
}

// maskAfter keeps the first keep words of body and masks the rest when
// there is any.
func maskAfter(body []byte, w []word, keep int, eol []byte) []byte {
	if len(w) <= keep {
		return join(body, "", eol)
	}
	return join(body[:w[keep-1].end], " "+Redacted, eol)
}

// maskBearer masks from "auth=Bearer " (any case) to the end of the line.
// It compares in place: lower-casing a copy first would shift offsets
// wherever body is not valid UTF-8.
func maskBearer(body, eol []byte) ([]byte, bool) {
	key := []byte("auth=bearer ")
	for i := 0; i+len(key) <= len(body); i++ {
		if bytes.EqualFold(body[i:i+len(key)], key) {
			return join(body[:i+len(key)], Redacted, eol), true
		}
	}
	return nil, false
}

// looksLikeSASLPayload reports whether body is one base64 token whose
// decoding holds a NUL (PLAIN, RFC 4616) or ^A (XOAUTH2) separator.
func looksLikeSASLPayload(body []byte) bool {
	// 8 characters: the shortest PLAIN payload, "\x00a\x00b". Shorter
	// tokens are commands such as "AUTH" (which decodes to a ^A).
	if len(body) < 8 || len(body) > 16384 {
		return false
	}
	for _, c := range body {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	n, err := base64.StdEncoding.Decode(dec, body)
	if err != nil {
		// Unpadded: RawStdEncoding needs its own, possibly larger, buffer.
		raw := bytes.TrimRight(body, "=")
		dec = make([]byte, base64.RawStdEncoding.DecodedLen(len(raw)))
		if n, err = base64.RawStdEncoding.Decode(dec, raw); err != nil {
			return false
		}
	}
	return bytes.IndexByte(dec[:n], 0) >= 0 || bytes.IndexByte(dec[:n], 1) >= 0
}

// word is one space-separated field of a line.
type word struct {
	b          []byte
	start, end int
}

// isSpace: the protocols separate with one SP, but a tab must not hide a
// password inside a "command word".
func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// fields splits body at spaces into at most n words; the last word takes
// the rest of the line.
func fields(body []byte, n int) []word {
	var out []word
	i := 0
	for i < len(body) && len(out) < n {
		for i < len(body) && isSpace(body[i]) {
			i++
		}
		if i >= len(body) {
			break
		}
		start := i
		if len(out) == n-1 {
			i = len(body)
		} else {
			for i < len(body) && !isSpace(body[i]) {
				i++
			}
		}
		out = append(out, word{b: body[start:i], start: start, end: i})
	}
	return out
}

// quotedEnd returns the length of the IMAP quoted string at the start of
// b (RFC 3501 §4.3), or 0 when b does not start with a complete one.
func quotedEnd(b []byte) int {
	if len(b) == 0 || b[0] != '"' {
		return 0
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return 0
}

// trailingLiteral reports whether body ends with an IMAP literal
// announcement "{n}" or "{n+}" (RFC 3501 §4.3, RFC 7888) and its size.
func trailingLiteral(body []byte) (int64, bool) {
	i := literalStart(body)
	if i < 0 {
		return 0, false
	}
	digits := bytes.TrimSuffix(body[i+1:len(body)-1], []byte("+"))
	if len(digits) == 0 || len(digits) > 10 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// literalStart is the index of the "{" of a trailing literal, or -1.
func literalStart(body []byte) int {
	if len(body) < 3 || body[len(body)-1] != '}' {
		return -1
	}
	return bytes.LastIndexByte(body, '{')
}

// splitEOL splits line into its body and its CRLF or LF ending.
func splitEOL(line []byte) (body, eol []byte) {
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		return line[:len(line)-2], line[len(line)-2:]
	case bytes.HasSuffix(line, []byte("\n")):
		return line[:len(line)-1], line[len(line)-1:]
	}
	return line, nil
}

// join returns a new slice prefix+mid+eol.
func join(prefix []byte, mid string, eol []byte) []byte {
	out := make([]byte, 0, len(prefix)+len(mid)+len(eol))
	out = append(out, prefix...)
	out = append(out, mid...)
	return append(out, eol...)
}
