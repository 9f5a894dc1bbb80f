package fakegmail

import (
	"strings"
	"testing"
)

func FuzzPOP3Command(f *testing.F) {
	for _, seed := range []string{
		"CAPA\r\n", "USER alice@gmail.com\r\n", "AUTH XOAUTH2\r\n",
		"AUTH XOAUTH2 " + strings.Repeat("QUFB", 50) + "\r\n", "RETR 1\r\n",
		"TOP 1 0\r\n", "LIST\n", "DELE 0\r\n", "QUIT", "\r\n", " \r\n",
		"RETR  1\r\n", "RETR\x001\r\n", "ÄÖÜ\r\n", strings.Repeat("A", 300) + "\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := parsePOP3Command(line)
		if err != nil {
			return
		}
		if len(line) > pop3MaxLine {
			t.Fatalf("accepted a %d-octet line", len(line))
		}
		if n := len(cmd.Verb); n < 3 || n > 4 || strings.ToUpper(cmd.Verb) != cmd.Verb {
			t.Fatalf("verb %q", cmd.Verb)
		}
		for i, a := range cmd.Args {
			if a == "" || strings.ContainsAny(a, " \r\n\x00") {
				t.Fatalf("arg %d %q", i, a)
			}
			if len(a) > pop3MaxArg && !(cmd.Verb == "AUTH" && i == 1) {
				t.Fatalf("arg %d is %d octets", i, len(a))
			}
		}
		for _, a := range cmd.Args {
			if n, ok := msgNumber(a); ok && (n < 1 || strings.TrimLeft(a, "0123456789") != "") {
				t.Fatalf("message number %d from %q", n, a)
			}
		}
	})
}

func FuzzIMAPCommandLine(f *testing.F) {
	for _, seed := range []string{
		"a1 UID FETCH 1:* (BODY.PEEK[])\r\n", "a APPEND INBOX {12}\r\n",
		"a APPEND INBOX {12+}\r\n", "* OK x\r\n", "+ \r\n", "DONE\r\n",
		"a ID NIL\r\n", "a COMPRESS DEFLATE\r\n", "{99999999999999}\r\n", "a {-1}\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if n, _ := literalMarker(line); n < -1 {
			t.Fatalf("literal %d", n)
		}
		tag, name, ok := parseIMAPCommand(line)
		if ok && (tag == "" || name == "" || strings.ContainsAny(tag+name, "\r\n")) {
			t.Fatalf("tag %q name %q", tag, name)
		}
	})
}
