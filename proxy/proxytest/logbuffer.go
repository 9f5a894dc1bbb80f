package proxytest

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// LogBuffer is a slog.Handler that writes text lines (slog's TextHandler
// format, all levels including debug) to a buffer, for asserting on what
// was logged. It is safe for concurrent use.
type LogBuffer struct {
	slog.Handler
	buf *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// NewLogBuffer returns an empty LogBuffer.
func NewLogBuffer() *LogBuffer {
	lb := &lockedBuffer{}
	return &LogBuffer{
		Handler: slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}),
		buf:     lb,
	}
}

// Logger returns a logger writing to the buffer.
func (l *LogBuffer) Logger() *slog.Logger { return slog.New(l) }

// WithAttrs and WithGroup keep writing to the same buffer.
func (l *LogBuffer) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogBuffer{Handler: l.Handler.WithAttrs(attrs), buf: l.buf}
}

func (l *LogBuffer) WithGroup(name string) slog.Handler {
	return &LogBuffer{Handler: l.Handler.WithGroup(name), buf: l.buf}
}

// Enabled is true for every level.
func (l *LogBuffer) Enabled(context.Context, slog.Level) bool { return true }

// String returns everything logged so far.
func (l *LogBuffer) String() string {
	l.buf.mu.Lock()
	defer l.buf.mu.Unlock()
	return l.buf.b.String()
}

// Lines returns the logged lines that contain every one of substrs.
func (l *LogBuffer) Lines(substrs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if line == "" {
			continue
		}
		ok := true
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// AssertNoSecrets fails t when any secret appears in the logs, as is or
// base64-encoded (standard and URL alphabets, with or without padding).
// Empty secrets are ignored. The failure message does not print the
// secret, only its index.
func (l *LogBuffer) AssertNoSecrets(t testing.TB, secrets ...string) {
	t.Helper()
	logs := l.String()
	for i, s := range secrets {
		if s == "" {
			continue
		}
		forms := []string{
			s,
			base64.StdEncoding.EncodeToString([]byte(s)),
			base64.RawStdEncoding.EncodeToString([]byte(s)),
			base64.URLEncoding.EncodeToString([]byte(s)),
			base64.RawURLEncoding.EncodeToString([]byte(s)),
		}
		for _, f := range forms {
			if strings.Contains(logs, f) {
				t.Errorf("proxytest: secret #%d (%d bytes) appears in the logs", i, len(s))
				break
			}
		}
	}
}
