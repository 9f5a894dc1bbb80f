package daemon

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/oauthbridge/oauthbridge/internal/admin"
)

// RecentErrors keeps this many WARN and ERROR records for the status page.
const recentErrorsMax = 50

// ErrorEntry is one WARN or ERROR log record as the status page shows it:
// Attrs are the record's attributes as text, group names joined with ".",
// plus "level" (WARN, ERROR). No secret can be in it: no component logs
// one at any level.
type ErrorEntry = admin.ErrorEntry

// errorRing is a fixed-size ring of the latest entries.
type errorRing struct {
	mu   sync.Mutex // guards buf, next, full
	buf  [recentErrorsMax]ErrorEntry
	next int
	full bool
}

func (r *errorRing) add(e ErrorEntry) {
	r.mu.Lock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

// list returns the entries newest first.
func (r *errorRing) list() []ErrorEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]ErrorEntry, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// recentHandler tees log records: every record goes to inner as usual, and
// WARN and above are also kept in ring, whatever inner's level, so the
// status page shows problems even when the log is quiet or goes to a file
// nobody reads.
type recentHandler struct {
	inner  slog.Handler
	ring   *errorRing
	attrs  []slog.Attr // from WithAttrs, keys already prefixed with their groups
	prefix string      // open groups, "a.b."
}

func newRecentHandler(inner slog.Handler, ring *errorRing) *recentHandler {
	return &recentHandler{inner: inner, ring: ring}
}

func (h *recentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.inner.Enabled(ctx, l)
}

func (h *recentHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		e := ErrorEntry{Time: r.Time, Message: r.Message, Attrs: make(map[string]string, 1+len(h.attrs)+r.NumAttrs())}
		for _, a := range h.attrs {
			flatten(e.Attrs, "", a)
		}
		r.Attrs(func(a slog.Attr) bool {
			flatten(e.Attrs, h.prefix, a)
			return true
		})
		e.Attrs["level"] = r.Level.String()
		h.ring.add(e)
	}
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h *recentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	attrs := slices.Clip(h.attrs)
	for _, a := range as {
		a.Key = h.prefix + a.Key
		attrs = append(attrs, a)
	}
	return &recentHandler{inner: h.inner.WithAttrs(as), ring: h.ring, attrs: attrs, prefix: h.prefix}
}

func (h *recentHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &recentHandler{inner: h.inner.WithGroup(name), ring: h.ring, attrs: h.attrs, prefix: h.prefix + name + "."}
}

// flatten writes a's value as text under prefix+key, groups as
// "group.key".
func flatten(m map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			flatten(m, p, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	m[prefix+a.Key] = v.String()
}
