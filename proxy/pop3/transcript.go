package pop3

import "github.com/oauthbridge/oauthbridge/proxy"

// Debug transcripts. Only status lines and commands are logged, never
// message data; every line that can carry a secret is masked with the
// shared proxy redaction helpers first. The session checks s.debug before
// building a line, so the relay pays nothing when debug logging is off.

// trace logs one transcript line. dir is "C" (client to bridge), "S"
// (bridge to client), "U>" (bridge to upstream) or "U<" (upstream to
// bridge). line must already be free of secrets.
func (s *session) trace(dir, line string) {
	s.log.Debug("transcript", "dir", dir, "line", line)
}

// knownKeywords are the commands whose lines are logged (masked by
// proxy.RedactClientLine: PASS, APOP and AUTH lose their credentials).
var knownKeywords = map[string]bool{
	"USER": true, "PASS": true, "APOP": true, "AUTH": true, "CAPA": true, "STLS": true, "QUIT": true,
	"STAT": true, "LIST": true, "UIDL": true, "RETR": true, "TOP": true, "DELE": true, "NOOP": true, "RSET": true,
}

// redactCommand is the loggable form of the client command line raw. An
// unknown keyword is logged as proxy.Redacted, arguments and all: it may
// itself be a secret (a client out of step with a SASL exchange sends its
// base64 credentials as a "command", and a mistyped "PAS secret" is no
// PASS line for the redactor to recognise).
func redactCommand(cmd command, raw []byte) string {
	if !knownKeywords[cmd.Keyword] {
		return proxy.Redacted
	}
	return string(proxy.RedactClientLine("pop3", raw))
}
