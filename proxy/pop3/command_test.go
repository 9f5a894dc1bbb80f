package pop3

import (
	"reflect"
	"testing"
	"unicode/utf8"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		want command
	}{
		{"CAPA", command{Keyword: "CAPA"}},
		{"capa", command{Keyword: "CAPA"}},
		{"user alice@gmail.com", command{Keyword: "USER", Args: []string{"alice@gmail.com"}, Rest: "alice@gmail.com"}},
		{"PASS pass with  spaces ", command{Keyword: "PASS", Args: []string{"pass", "with", "spaces"}, Rest: "pass with  spaces "}},
		{"  TOP 1 10", command{Keyword: "TOP", Args: []string{"1", "10"}, Rest: "1 10"}},
		{"RETR\t3", command{Keyword: "RETR", Args: []string{"3"}, Rest: "3"}},
		{"ſtat", command{Keyword: "ſTAT"}}, // no Unicode case folding
	}
	for _, tt := range tests {
		got, err := parseCommand([]byte(tt.line))
		if err != nil {
			t.Errorf("parseCommand(%q): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseCommand(%q) = %#v, want %#v", tt.line, got, tt.want)
		}
	}
	for _, line := range []string{"", "   ", "\t"} {
		if _, err := parseCommand([]byte(line)); err == nil {
			t.Errorf("parseCommand(%q) succeeded", line)
		}
	}
}

func TestValidateTxn(t *testing.T) {
	tests := []struct {
		line      string
		known     bool
		syntaxErr bool
		want      string // canonical upstream line for the same number
		multi     bool
	}{
		{"STAT", true, false, "STAT", false},
		{"stat 1", true, true, "", false},
		{"LIST", true, false, "LIST", true},
		{"list 7", true, false, "LIST 7", false},
		{"LIST 0", true, true, "", false},
		{"LIST -1", true, true, "", false},
		{"LIST 1 2", true, true, "", false},
		{"UIDL", true, false, "UIDL", true},
		{"UIDL 12", true, false, "UIDL 12", false},
		{"RETR 3", true, false, "RETR 3", true},
		{"RETR", true, true, "", false},
		{"RETR +3", true, true, "", false},
		{"RETR 99999999999", true, true, "", false},
		{"TOP 2 0", true, false, "TOP 2 0", true},
		{"TOP 2", true, true, "", false},
		{"TOP 2 x", true, true, "", false},
		{"DELE 4", true, false, "DELE 4", false},
		{"NOOP", true, false, "NOOP", false},
		{"RSET", true, false, "RSET", false},
		{"QUIT", true, false, "QUIT", false},
		{"CAPA", true, false, "CAPA", true},
		{"LAST", false, false, "", false},
		{"XTND XLST", false, false, "", false},
	}
	for _, tt := range tests {
		cmd, err := parseCommand([]byte(tt.line))
		if err != nil {
			t.Fatal(err)
		}
		tc, known, err := validateTxn(cmd)
		if known != tt.known || (err != nil) != tt.syntaxErr {
			t.Errorf("validateTxn(%q) = known %v, err %v; want known %v, syntax error %v", tt.line, known, err, tt.known, tt.syntaxErr)
			continue
		}
		if !known || err != nil {
			continue
		}
		if got := string(tc.line(tc.Msg)); got != tt.want {
			t.Errorf("validateTxn(%q).line = %q, want %q", tt.line, got, tt.want)
		}
		if tc.multiLine() != tt.multi {
			t.Errorf("validateTxn(%q).multiLine() = %v", tt.line, tc.multiLine())
		}
	}
	// The upstream number replaces the client's.
	cmd, _ := parseCommand([]byte("TOP 5 3"))
	tc, _, _ := validateTxn(cmd)
	if got := string(tc.line(2)); got != "TOP 2 3" {
		t.Errorf("TOP remapped = %q", got)
	}
}

func TestRedactCommand(t *testing.T) {
	tests := []struct{ line, want string }{
		{"USER alice", "USER alice"},
		{"PASS hunter2", "PASS ***"},
		{"pass two words", "pass ***"},
		{"AUTH PLAIN AGFsaWNlAGh1bnRlcjI=", "AUTH PLAIN ***"},
		{"AUTH LOGIN", "AUTH LOGIN"},
		{"APOP alice 0123456789abcdef", "APOP alice ***"},
		{"AGFsaWNlAGh1bnRlcjI=", "***"},
		{"dXNlcg==", "***"},
		{"PAS hunter2", "***"},
		{"RETR 1", "RETR 1"},
	}
	for _, tt := range tests {
		cmd, _ := parseCommand([]byte(tt.line))
		if got := redactCommand(cmd, []byte(tt.line)); got != tt.want {
			t.Errorf("redactCommand(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

// FuzzParseCommand checks the client command parser on arbitrary lines:
// no panic, an upper-case ASCII keyword without blanks, and validated
// transaction commands whose canonical line re-parses to the same thing
// and stays within the RFC 2449 limit.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"CAPA", "USER alice@gmail.com", "PASS a b c", "AUTH PLAIN =", "AUTH LOGIN dXNlcg==",
		"TOP 1 0", "RETR 4294967296", "LIST", "UIDL 1", "DELE 01", "\x16\x03\x01\x00\xa5", " \t ", "QUIT extra",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := parseCommand(line)
		if err != nil {
			return
		}
		for i := 0; i < len(cmd.Keyword); i++ {
			c := cmd.Keyword[i]
			if c == ' ' || c == '\t' || ('a' <= c && c <= 'z') {
				t.Fatalf("keyword %q", cmd.Keyword)
			}
		}
		if utf8.ValidString(string(line)) && cmd.Keyword == "" {
			t.Fatalf("empty keyword for %q", line)
		}
		_ = redactCommand(cmd, line)
		tc, known, err := validateTxn(cmd)
		if !known || err != nil {
			return
		}
		canon := tc.line(tc.Msg)
		if len(canon)+2 > maxCommandLine {
			t.Fatalf("canonical line %q too long", canon)
		}
		again, err := parseCommand(canon)
		if err != nil {
			t.Fatal(err)
		}
		tc2, known2, err := validateTxn(again)
		if !known2 || err != nil || tc2 != tc {
			t.Fatalf("%q -> %q -> %+v, want %+v", line, canon, tc2, tc)
		}
	})
}
