package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Listener protocols and TLS modes.
const (
	ProtoIMAP = "imap"
	ProtoPOP3 = "pop3"
	ProtoSMTP = "smtp"

	TLSNone     = "none"
	TLSStartTLS = "starttls"
	TLSImplicit = "implicit"
)

var tlsVersions = map[string]uint16{
	"1.0": tls.VersionTLS10,
	"1.1": tls.VersionTLS11,
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

// loopbackAllow is the allow list of a loopback listener without one.
var loopbackAllow = []string{"127.0.0.0/8", "::1/128"}

// defaultListeners are used when the file configures none.
func defaultListeners() []Listener {
	return []Listener{
		{Protocol: ProtoIMAP, Listen: "127.0.0.1:1143"},
		{Protocol: ProtoPOP3, Listen: "127.0.0.1:1110"},
		{Protocol: ProtoSMTP, Listen: "127.0.0.1:1587"},
	}
}

// IsLoopback reports whether the listen address is loopback only: a
// loopback IP or "localhost". An empty host, 0.0.0.0, [::] and any other
// name or address are not.
func (l *Listener) IsLoopback() bool {
	host, _, err := net.SplitHostPort(l.Listen)
	return err == nil && isLoopbackHost(host)
}

// AllowPrefixes returns the allow list parsed, bare IPs as /32 or /128,
// host bits masked. Entries that do not parse are skipped (Complete has
// rejected them). Client addresses must be unmapped (netip.Addr.Unmap)
// before matching: an IPv4 client on a dual-stack socket arrives as
// ::ffff:a.b.c.d.
func (l *Listener) AllowPrefixes() []netip.Prefix { return parsePrefixes(l.Allow) }

// RelayFromPrefixes returns relay_without_auth.from parsed like
// AllowPrefixes, or nil when the listener has no relay.
func (l *Listener) RelayFromPrefixes() []netip.Prefix {
	if l.RelayWithoutAuth == nil {
		return nil
	}
	return parsePrefixes(l.RelayWithoutAuth.From)
}

// TLSMinVersion returns min_tls_version as a crypto/tls constant
// (tls.VersionTLS12 when unset).
func (l *Listener) TLSMinVersion() uint16 {
	if v, ok := tlsVersions[l.MinTLSVersion]; ok {
		return v
	}
	return tls.VersionTLS12
}

func parsePrefixes(list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix parses a CIDR or a bare IP (a single-address prefix).
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 192.168.1.0/24 or an IP address", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed in a CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 192.168.1.0/24 or an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// prefixWithin reports whether every address of inner is in outer.
func prefixWithin(inner, outer netip.Prefix) bool {
	return inner.Addr().Is4() == outer.Addr().Is4() &&
		outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true // RFC 6761 §6.3: always the loopback address
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// splitHostPort checks host:port with a numeric port in 1..65535 (0 too
// when allowZero: a listener may ask for a free port).
func splitHostPort(s string, allowZero bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:1143, [::1]:1143)", s)
	}
	port, err := strconv.Atoi(portStr)
	low := 1
	if allowZero {
		low = 0
	}
	if err != nil || port < low || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be a number from %d to 65535", s, low)
	}
	if !validHost(host) {
		return "", 0, fmt.Errorf("%q: %q is not an IP address or host name", s, host)
	}
	return host, port, nil
}

// validHost accepts "" (every address), an IP address and a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
