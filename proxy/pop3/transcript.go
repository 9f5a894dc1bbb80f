package pop3

// Debug transcripts. Only status lines and commands are logged, never
// message data; every line that can carry a secret passes through a
// redact function first. The session checks s.debug before building a
// line, so the relay pays nothing when debug logging is off.

const redacted = "<redacted>"

// trace logs one transcript line. dir is "C" (client to bridge), "S"
// (bridge to client), "U>" (bridge to upstream) or "U<" (upstream to
// bridge). line must already be free of secrets.
func (s *session) trace(dir, line string) {
	s.log.Debug("transcript", "dir", dir, "line", line)
}

// redactCommand is the loggable form of a client command line. Arguments
// are kept only for commands whose arguments are known to be harmless
// (message numbers, the user name, the SASL mechanism); PASS and APOP
// lose theirs, and anything unknown, a mistyped "PAS secret" included, is
// logged as "<redacted>".
func redactCommand(cmd command) string {
	switch cmd.Keyword {
	case "USER", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET", "QUIT", "CAPA", "STLS":
		if cmd.Rest == "" {
			return cmd.Keyword
		}
		return cmd.Keyword + " " + cmd.Rest
	case "AUTH":
		switch len(cmd.Args) {
		case 0:
			return "AUTH"
		case 1:
			return "AUTH " + cmd.Args[0]
		}
		return "AUTH " + cmd.Args[0] + " " + redacted
	case "PASS", "APOP":
		return cmd.Keyword + " " + redacted
	}
	// An unknown keyword may itself be a secret: a client out of step
	// with a SASL exchange sends its base64 credentials as a "command".
	return redacted
}
