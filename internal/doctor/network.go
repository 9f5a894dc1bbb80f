package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// dnsStep resolves the endpoint's host the way the default dialer will.
func dnsStep(ctx context.Context, r *run) Step {
	if ip, err := netip.ParseAddr(r.host); err == nil {
		return Step{OK: true, Detail: ip.String() + " is an IP address: no lookup needed"}
	}
	res := r.c.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	start := time.Now()
	addrs, err := res.LookupHost(ctx, r.host)
	if err != nil {
		s := Step{Detail: "cannot resolve " + r.host + ": " + err.Error()}
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			s.Fix = "the name does not exist: check the host in " + r.c.key(r.proto)
		case errors.As(err, &de) && de.IsTimeout:
			s.Fix = "the DNS server did not answer: check this machine's resolver (/etc/resolv.conf) and network"
		default:
			s.Fix = "check the host in " + r.c.key(r.proto) + " and this machine's resolver (/etc/resolv.conf)"
		}
		return s
	}
	return Step{OK: true, Detail: fmt.Sprintf("%s -> %s (%s)", r.host, strings.Join(addrs, ", "), ms(time.Since(start)))}
}

// connectStep opens the TCP connection through the session dialer.
func connectStep(ctx context.Context, r *run) Step {
	dial := r.c.dialer().Dial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	start := time.Now()
	conn, err := dial(ctx, "tcp", r.ep.Addr)
	if err != nil {
		s := Step{Detail: "cannot connect to " + r.ep.Addr + ": " + err.Error()}
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			s.Fix = "connection refused: nothing listens there; check the port in " + r.c.key(r.proto)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
			s.Fix = "timed out: a firewall may drop outgoing connections to port " + r.port + ", or the host in " + r.c.key(r.proto) + " is wrong"
		case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
			s.Fix = "no route to the host: check this machine's network (IPv6 without a route?) and " + r.c.key(r.proto)
		default:
			s.Fix = "check " + r.c.key(r.proto) + " and this machine's outgoing network access"
		}
		return s
	}
	r.conn = conn
	return Step{OK: true, Detail: fmt.Sprintf("connected to %s (%s)", conn.RemoteAddr(), ms(time.Since(start)))}
}

// tlsStep runs the verified client handshake (on the upgraded connection
// for STARTTLS endpoints) and reports the certificate. It closes the
// connection: the network path is proven.
func tlsStep(ctx context.Context, r *run) Step {
	defer func() {
		r.conn.Close()
		r.conn = nil
	}()
	cfg := proxy.UpstreamTLSConfig(r.ep)
	tc := tls.Client(r.conn, cfg)
	start := time.Now()
	err := tc.HandshakeContext(ctx)
	if err != nil {
		return tlsFailure(r, cfg.ServerName, err)
	}
	st := tc.ConnectionState()
	tc.Close()
	leaf := st.PeerCertificates[0]
	detail := fmt.Sprintf("%s %s (%s); certificate %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite),
		ms(time.Since(start)), certText(leaf, time.Now()))
	if left := time.Until(leaf.NotAfter); left < 14*24*time.Hour {
		detail += fmt.Sprintf("; WARNING: expires in %s", left.Round(time.Hour))
	}
	return Step{OK: true, Detail: detail}
}

// tlsFailure explains a failed handshake. Go wraps verification failures
// in *tls.CertificateVerificationError, through which errors.As finds the
// x509 error kinds.
func tlsFailure(r *run, serverName string, err error) Step {
	s := Step{Detail: "TLS handshake with " + r.ep.Addr + " failed: " + err.Error()}
	var (
		cve  *tls.CertificateVerificationError
		ua   x509.UnknownAuthorityError
		he   x509.HostnameError
		ci   x509.CertificateInvalidError
		rhe  tls.RecordHeaderError
		alrt tls.AlertError
	)
	if errors.As(err, &cve) && len(cve.UnverifiedCertificates) > 0 {
		s.Detail += "; the server presented " + certText(cve.UnverifiedCertificates[0], time.Now())
	}
	switch {
	case errors.As(err, &ua):
		s.Detail = "certificate signed by unknown authority; " + strings.TrimPrefix(s.Detail, "TLS handshake with "+r.ep.Addr+" failed: ")
		s.Fix = "if this server's CA is a private one, set " + r.c.key("ca_file") +
			" to its PEM file (verification is never turned off); otherwise something intercepts TLS on this network"
	case errors.As(err, &he):
		s.Fix = fmt.Sprintf("the certificate is not valid for %q: check the host in %s (use the name the certificate names)",
			serverName, r.c.key(r.proto))
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		s.Fix = "the certificate is expired or not yet valid: check this machine's clock (timedatectl), then the server's certificate"
	case errors.As(err, &rhe):
		if r.ep.TLS == proxy.UpstreamImplicitTLS {
			s.Fix = "the server did not answer with TLS: the port probably expects STARTTLS or plaintext; check the port in " +
				r.c.key(r.proto) + startTLSHint(r.proto)
		} else {
			s.Fix = "the server did not continue with TLS after accepting STARTTLS: check " + r.c.key(r.proto)
		}
	case errors.As(err, &alrt):
		s.Fix = "the server refused the handshake (TLS alert): it may require an older or newer TLS version than 1.2+, or a client certificate"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		s.Fix = "the server did not answer the TLS handshake in time: the port may expect STARTTLS or plaintext; check " + r.c.key(r.proto)
	default:
		s.Fix = "check " + r.c.key(r.proto) + " and " + r.c.key("ca_file")
	}
	return s
}

func startTLSHint(proto string) string {
	if proto == "smtp" {
		return " (587 is STARTTLS, 465 implicit TLS; or set smtp_tls)"
	}
	return " (imap 993 and pop3 995 are implicit TLS)"
}

// certText: `CN=imap.gmail.com issued by "CN=WR2,O=Google Trust Services,C=US", valid until 2026-01-05 (in 40 days)`.
func certText(c *x509.Certificate, now time.Time) string {
	subject := c.Subject.String()
	if len(c.DNSNames) > 0 {
		subject += " [" + strings.Join(c.DNSNames[:min(len(c.DNSNames), 4)], " ")
		if len(c.DNSNames) > 4 {
			subject += " ..."
		}
		subject += "]"
	}
	when := "expired " + now.Sub(c.NotAfter).Round(time.Hour).String() + " ago"
	if c.NotAfter.After(now) {
		when = fmt.Sprintf("in %d days", int(c.NotAfter.Sub(now).Hours()/24))
	}
	return fmt.Sprintf("%s issued by %q, valid until %s (%s)", subject, c.Issuer.String(), c.NotAfter.UTC().Format("2006-01-02"), when)
}

func ms(d time.Duration) string {
	return d.Round(100 * time.Microsecond).String()
}
