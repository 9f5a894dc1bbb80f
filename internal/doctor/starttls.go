package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// startTLSStep reads the plaintext greeting and asks for TLS with the
// protocol's own command, by hand: IMAP STARTTLS (RFC 3501 §6.2.1), POP3
// STLS (RFC 2595 §4), SMTP EHLO + STARTTLS (RFC 3207 §4). On success the
// TLS step continues on r.conn.
func startTLSStep(ctx context.Context, r *run) Step {
	if dl, ok := ctx.Deadline(); ok {
		r.conn.SetDeadline(dl)
		defer r.conn.SetDeadline(time.Time{})
	}
	br := bufio.NewReaderSize(r.conn, 4096)
	var greeting string
	var err error
	switch r.proto {
	case "imap":
		greeting, err = imapStartTLS(r, br)
	case "pop3":
		greeting, err = pop3StartTLS(r, br)
	case "smtp":
		greeting, err = smtpStartTLS(r, br)
	}
	if err == nil && br.Buffered() > 0 {
		// RFC 3207 §4.2 / RFC 2595 §3.1: nothing may follow the go-ahead
		// in plaintext; bytes here were injected by someone on the path.
		err = errors.New("the server sent data after accepting STARTTLS (a STARTTLS injection on the path?)")
	}
	if err != nil {
		return Step{Detail: "STARTTLS: " + err.Error(), Fix: "check that " + r.c.key(r.proto) +
			" is the server's STARTTLS port" + startTLSHint(r.proto)}
	}
	return Step{OK: true, Detail: fmt.Sprintf("greeting %q; STARTTLS accepted", clip(greeting))}
}

func imapStartTLS(r *run, br *bufio.Reader) (string, error) {
	g, err := readLine(br)
	if err != nil {
		return "", fmt.Errorf("no greeting: %w", err)
	}
	if !hasPrefixFold(g, "* OK") {
		return g, fmt.Errorf("unexpected greeting %q", clip(g))
	}
	if _, err := r.conn.Write([]byte("D1 STARTTLS\r\n")); err != nil {
		return g, err
	}
	for range 100 {
		l, err := readLine(br)
		if err != nil {
			return g, fmt.Errorf("no answer to STARTTLS: %w", err)
		}
		if strings.HasPrefix(l, "* ") {
			continue // untagged data before the tagged reply
		}
		if hasPrefixFold(l, "D1 OK") {
			return g, nil
		}
		return g, fmt.Errorf("STARTTLS refused: %q", clip(l))
	}
	return g, errors.New("no tagged answer to STARTTLS")
}

func pop3StartTLS(r *run, br *bufio.Reader) (string, error) {
	g, err := readLine(br)
	if err != nil {
		return "", fmt.Errorf("no greeting: %w", err)
	}
	if !strings.HasPrefix(g, "+OK") {
		return g, fmt.Errorf("unexpected greeting %q", clip(g))
	}
	if _, err := r.conn.Write([]byte("STLS\r\n")); err != nil {
		return g, err
	}
	l, err := readLine(br)
	if err != nil {
		return g, fmt.Errorf("no answer to STLS: %w", err)
	}
	if !strings.HasPrefix(l, "+OK") {
		return g, fmt.Errorf("STLS refused: %q", clip(l))
	}
	return g, nil
}

func smtpStartTLS(r *run, br *bufio.Reader) (string, error) {
	code, g, err := smtpReply(br)
	if err != nil {
		return "", fmt.Errorf("no greeting: %w", err)
	}
	if code != "220" {
		return g[0], fmt.Errorf("unexpected greeting %q", clip(g[0]))
	}
	if _, err := r.conn.Write([]byte("EHLO oauthbridge-check\r\n")); err != nil {
		return g[0], err
	}
	code, ehlo, err := smtpReply(br)
	if err != nil {
		return g[0], fmt.Errorf("no answer to EHLO: %w", err)
	}
	if code != "250" {
		return g[0], fmt.Errorf("EHLO refused: %q", clip(ehlo[0]))
	}
	offered := false
	for _, l := range ehlo[1:] {
		if strings.EqualFold(strings.TrimSpace(l[4:]), "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		return g[0], errors.New("the server does not offer STARTTLS in its EHLO reply")
	}
	if _, err := r.conn.Write([]byte("STARTTLS\r\n")); err != nil {
		return g[0], err
	}
	code, l, err := smtpReply(br)
	if err != nil {
		return g[0], fmt.Errorf("no answer to STARTTLS: %w", err)
	}
	if code != "220" {
		return g[0], fmt.Errorf("STARTTLS refused: %q", clip(l[0]))
	}
	return g[0], nil
}

// smtpReply reads one possibly multi-line reply (RFC 5321 §4.2.1) and
// returns its code and lines.
func smtpReply(br *bufio.Reader) (string, []string, error) {
	var lines []string
	for range 100 {
		l, err := readLine(br)
		if err != nil {
			return "", lines, err
		}
		if len(l) < 3 || (len(l) > 3 && l[3] != ' ' && l[3] != '-') {
			return "", append(lines, l), fmt.Errorf("not an SMTP reply: %q", clip(l))
		}
		if len(l) == 3 {
			l += " "
		}
		lines = append(lines, l)
		if l[3] == ' ' {
			return l[:3], lines, nil
		}
	}
	return "", lines, errors.New("reply too long")
}

// readLine reads one line of at most 4 KiB without its CRLF.
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errors.New("line longer than 4096 bytes")
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// clip keeps server text short and printable in a report.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
