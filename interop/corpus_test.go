package interop

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpus makes n varied messages, the same for the same seed: most of
// 1-8 KiB, every tenth of 16-64 KiB, every hundredth of 200 KiB (the
// largest), so a 1,000-message mailbox is about 10 MiB and syncs fast
// enough under -race while still crossing every buffer size that matters.
// Every seventh message has lines that start with "." (one exactly ".",
// which POP3 and SMTP must dot-stuff), every third is 8-bit UTF-8 text
// (Content-Transfer-Encoding: 8bit), and every eleventh has body lines
// starting with "From " (which mbox-minded clients like to mangle).
func corpus(prefix string, n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 0x1b7e))
	msgs := make([][]byte, n)
	for i := range msgs {
		size := 1024 + rng.IntN(7*1024)
		switch {
		case i%100 == 99:
			size = 200 * 1024
		case i%10 == 9:
			size = 16*1024 + rng.IntN(48*1024)
		}
		msgs[i] = message(rng, prefix, i+1, size, i%7 == 3, i%3 == 1, i%11 == 5)
	}
	return msgs
}

// words for the bodies; the 8-bit ones are UTF-8.
var (
	asciiWords = strings.Fields("the bridge keeps every session alive while tokens rotate and upstreams say goodbye " +
		"imap pop3 smtp literal octet fetch mailbox message header body dovecot gmail oauth")
	utf8Words = strings.Fields("grüße café naïve smørrebrød Ελληνικά русский 日本語 中文 émigré façade über")
)

// message builds one RFC 5322 message of about size bytes (never less
// than 1 KiB), CRLF line ends, lines well under 998 octets.
func message(rng *rand.Rand, prefix string, seq, size int, dots, eightBit, fromLines bool) []byte {
	var b bytes.Buffer
	cte, charset := "7bit", "us-ascii"
	if eightBit {
		cte, charset = "8bit", "utf-8"
	}
	fmt.Fprintf(&b, "From: Interop Sender <sender%d@example.org>\r\n", seq%13)
	fmt.Fprintf(&b, "To: interop@example.test\r\n")
	fmt.Fprintf(&b, "Subject: %s %04d\r\n", prefix, seq)
	fmt.Fprintf(&b, "Date: Mon, 2 Jun 2025 10:%02d:%02d +0000\r\n", seq/60%60, seq%60)
	fmt.Fprintf(&b, "Message-ID: <%s.%d@interop.test>\r\n", prefix, seq)
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=%s\r\n", charset)
	fmt.Fprintf(&b, "Content-Transfer-Encoding: %s\r\n\r\n", cte)
	fmt.Fprintf(&b, "%s message %d of the interop corpus.\r\n", prefix, seq)
	if dots {
		b.WriteString(".\r\n..\r\n.leading dot\r\n...three\r\n. space\r\n")
	}
	if fromLines {
		b.WriteString("From the start of a line\r\n>From quoted already\r\n")
	}
	line := 0
	for b.Len() < size {
		var l strings.Builder
		if dots && line%40 == 17 {
			l.WriteByte('.')
		}
		line++
		width := 20 + rng.IntN(56)
		for l.Len() < width {
			w := asciiWords[rng.IntN(len(asciiWords))]
			if eightBit && rng.IntN(3) == 0 {
				w = utf8Words[rng.IntN(len(utf8Words))]
			}
			if l.Len() > 0 {
				l.WriteByte(' ')
			}
			l.WriteString(w)
		}
		s := l.String()
		// The last line fills the message to exactly size; a full line
		// is written only when at least 3 bytes ("x\r\n") remain after it.
		if rest := size - b.Len(); len(s)+2+3 > rest {
			s = strings.Repeat("x", rest-2)
		}
		b.WriteString(s)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// digest is the SHA-256 of a message with line ends normalised to LF:
// Maildir clients store native (LF) line ends, IMAP and POP3 serve CRLF.
func digest(msg []byte) [32]byte {
	return sha256.Sum256(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")))
}

// compareMessages fails t unless got and want hold the same messages
// (each exactly as often), by digest. what names got in failures.
func compareMessages(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	count := make(map[[32]byte]int, len(want))
	byDigest := make(map[[32]byte][]byte, len(want))
	for _, m := range want {
		d := digest(m)
		count[d]++
		byDigest[d] = m
	}
	var extra []string
	for _, m := range got {
		d := digest(m)
		if count[d] == 0 {
			extra = append(extra, describe(m))
			continue
		}
		count[d]--
	}
	var missing []string
	for d, n := range count {
		for range n {
			missing = append(missing, describe(byDigest[d]))
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(got) != len(want) || len(missing) > 0 || len(extra) > 0 {
		t.Errorf("%s: %d messages, want %d; %d missing or different: %s; %d unexpected: %s",
			what, len(got), len(want), len(missing), head(missing), len(extra), head(extra))
		if len(extra) > 0 && len(missing) > 0 {
			t.Logf("first difference: %s", firstDiff(got, byDigest, count))
		}
	}
}

// firstDiff explains how the first unexpected message of got differs from
// the expected message with the same Subject (if any is left unmatched).
func firstDiff(got [][]byte, want map[[32]byte][]byte, left map[[32]byte]int) string {
	for _, g := range got {
		if left[digest(g)] > 0 {
			continue
		}
		for d, w := range want {
			if left[d] == 0 || describeSubject(w) != describeSubject(g) {
				continue
			}
			gn := bytes.ReplaceAll(g, []byte("\r\n"), []byte("\n"))
			wn := bytes.ReplaceAll(w, []byte("\r\n"), []byte("\n"))
			i := 0
			for i < len(gn) && i < len(wn) && gn[i] == wn[i] {
				i++
			}
			lo := max(i-60, 0)
			return fmt.Sprintf("%s: at byte %d got %q, want %q", describeSubject(g), i,
				gn[lo:min(i+60, len(gn))], wn[lo:min(i+60, len(wn))])
		}
	}
	return "no message with a matching Subject"
}

func describeSubject(msg []byte) string {
	d := describe(msg)
	if i := strings.LastIndex(d, " ("); i > 0 {
		return d[:i]
	}
	return d
}

// head shortens a list for a failure message.
func head(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], ", ") + fmt.Sprintf(", ... (%d more)", len(s)-5)
	}
	return strings.Join(s, ", ")
}

// readMaildir returns the messages of a Maildir folder (new/ and cur/,
// not tmp/).
func readMaildir(t testing.TB, dir string) [][]byte {
	t.Helper()
	var msgs [][]byte
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("maildir: %v", err)
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, b)
		}
	}
	return msgs
}

// countMaildir is how many messages a Maildir folder holds now (0 when it
// does not exist yet).
func countMaildir(dir string) int {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		n += len(entries)
	}
	return n
}

// TestCorpus checks the generator itself: the promised sizes and
// features are there, and every message is distinct.
func TestCorpus(t *testing.T) {
	msgs := corpus("corpus", 1000, 1)
	seen := map[[32]byte]bool{}
	var dots, eight, big, bigEight, total int
	for i, m := range msgs {
		if len(m) < 1024 || len(m) > 200*1024 {
			t.Errorf("message %d: %d bytes", i+1, len(m))
		}
		if len(m) == 200*1024 {
			big++
		}
		if len(m) > 64*1024 && bytes.ContainsFunc(m, func(r rune) bool { return r >= 0x80 }) {
			bigEight++
		}
		if bytes.Contains(m, []byte("\r\n.\r\n")) {
			dots++
		}
		if bytes.ContainsFunc(m, func(r rune) bool { return r >= 0x80 }) {
			eight++
		}
		if bytes.Contains(m, []byte("\n")) && bytes.Count(m, []byte("\n")) != bytes.Count(m, []byte("\r\n")) {
			t.Errorf("message %d has a bare LF", i+1)
		}
		d := digest(m)
		if seen[d] {
			t.Errorf("message %d is a duplicate", i+1)
		}
		seen[d] = true
		total += len(m)
	}
	if big != 10 || dots < 100 || eight < 300 || bigEight == 0 {
		t.Errorf("corpus: %d of 200 KiB, %d with a lone dot line, %d 8-bit, %d 8-bit over 64 KiB", big, dots, eight, bigEight)
	}
	t.Logf("corpus: %d messages, %d bytes", len(msgs), total)
}

// withoutHeader returns msg without the header field name (one line, no
// continuation lines), which a client added on its own.
func withoutHeader(msg []byte, name string) []byte {
	hdrEnd := bytes.Index(msg, []byte("\n\n"))
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 && (hdrEnd < 0 || i < hdrEnd) {
		hdrEnd = i
	}
	if hdrEnd < 0 {
		return msg
	}
	prefix := []byte(name + ":")
	for start := 0; start <= hdrEnd; {
		end := bytes.IndexByte(msg[start:], '\n')
		if end < 0 {
			break
		}
		end += start + 1
		if len(msg)-start >= len(prefix) && bytes.EqualFold(msg[start:start+len(prefix)], prefix) {
			return append(append([]byte(nil), msg[:start]...), msg[end:]...)
		}
		start = end
	}
	return msg
}

// stripAll applies withoutHeader(name) to every message.
func stripAll(msgs [][]byte, name string) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = withoutHeader(m, name)
	}
	return out
}
