package admin

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// hostAllowed is the DNS-rebinding defence: a page on an attacker's
// domain that re-resolves its name to 127.0.0.1 reaches this endpoint with
// the attacker's name in Host, so only names that cannot be an attacker's
// pass: "localhost" and *.localhost (RFC 6761 §6.3), loopback addresses,
// the local address the connection arrived on, and AllowHost names.
func (h *handler) hostAllowed(r *http.Request) bool {
	host := normHost(r.Host)
	if host == "" {
		return false // HTTP/1.0 without Host: nothing to check against
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || h.hosts[host] {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return true
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().Unmap().WithZone("") == ip.WithZone("") {
			return true
		}
	}
	return false
}

// normHost lower-cases a Host value and drops its port, brackets and a
// trailing dot.
func normHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// sanitizeHost keeps a refused Host header printable and short for the
// log line.
func sanitizeHost(h string) string {
	if len(h) > 100 {
		h = h[:100]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, h)
}

// clientIP is the remote address without port, for the client_ip field.
func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
