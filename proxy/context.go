package proxy

import "context"

type ctxKey int

const (
	protoKey ctxKey = iota
	sessionKey
)

// WithProto returns ctx carrying the protocol name ("imap", "pop3",
// "smtp"). The Listener puts it (and the session ID) on the ctx it passes
// to Handler.ServeConn; LocalAuth reads it for its "login failed" log line,
// so protocol packages only have to pass that ctx (or one derived from it)
// to Authenticate.
func WithProto(ctx context.Context, proto string) context.Context {
	return context.WithValue(ctx, protoKey, proto)
}

// ProtoFrom returns the protocol set by WithProto, or "".
func ProtoFrom(ctx context.Context) string {
	s, _ := ctx.Value(protoKey).(string)
	return s
}

// WithSession returns ctx carrying a session ID (Conn.ID) for log lines.
func WithSession(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, sessionKey, id)
}

// SessionFrom returns the session ID set by WithSession, or "".
func SessionFrom(ctx context.Context) string {
	s, _ := ctx.Value(sessionKey).(string)
	return s
}
