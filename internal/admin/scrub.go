package admin

import (
	"encoding/base64"
	"regexp"
	"strings"
)

// The status page and /status.json show text that other packages wrote:
// token errors, log messages and their attributes. None of it should hold
// a secret, and the producers are tested for that; masking here is the
// second line, so one producer's slip does not put a token on a page that
// may be screenshotted or pasted into a bug report.

// redacted replaces a masked secret.
const redacted = "***"

var (
	// "Bearer <token>" and XOAUTH2's "auth=Bearer <token>".
	bearerRE = regexp.MustCompile(`(?i)\bbearer\s+[^\s\x01"',;]+`)
	// key=value (URL queries, form bodies, logfmt) where the key names a
	// secret. Only "=": "key: value" is how error chains read ("no access
	// token: tokens: ...") and must stay legible.
	secretKVRE = regexp.MustCompile(`(?i)\b(access_token|refresh_token|id_token|token|password|passwd|pass|client_secret|secret|code|code_verifier|assertion)=([^\s&,;"']+)`)
	// The same keys in JSON ("access_token": "...").
	secretJSONRE = regexp.MustCompile(`(?i)"(access_token|refresh_token|id_token|password|client_secret|secret|assertion)"\s*:\s*"[^"]*"`)
	// Well-known token shapes: Google access (ya29.) and refresh (1//)
	// tokens, JWTs (Microsoft access tokens, id tokens, assertions).
	tokenShapeRE = regexp.MustCompile(`\bya29\.[\w.\-]+|\b1//[\w.\-]+|\beyJ[\w\-]+\.[\w\-]+\.[\w\-]*`)
	// A long base64 word, checked for a SASL PLAIN/XOAUTH2 payload.
	base64WordRE = regexp.MustCompile(`[A-Za-z0-9+/]{16,}={0,2}`)
)

// scrub masks token-shaped text in s.
func scrub(s string) string {
	s = bearerRE.ReplaceAllString(s, "Bearer "+redacted)
	s = secretKVRE.ReplaceAllString(s, "${1}="+redacted)
	s = secretJSONRE.ReplaceAllString(s, `"${1}":"`+redacted+`"`)
	s = tokenShapeRE.ReplaceAllString(s, redacted)
	return base64WordRE.ReplaceAllStringFunc(s, func(w string) string {
		b, err := base64.StdEncoding.DecodeString(w)
		if err != nil {
			b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(w, "="))
		}
		// SASL PLAIN separates with NUL, XOAUTH2 with ^A (RFC 4616,
		// Google's XOAUTH2 format).
		if err == nil && strings.ContainsAny(string(b), "\x00\x01") {
			return redacted
		}
		return w
	})
}

// secretKey reports whether an attribute name says its value is a secret.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"token", "password", "passwd", "secret", "authorization", "xoauth", "bearer", "verifier", "credential", "key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return k == "pass" || k == "code"
}

// scrubAttrs copies attrs, masking secret-named values and scrubbing the
// rest.
func scrubAttrs(attrs map[string]string) map[string]string {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]string, len(attrs))
	for k, v := range attrs {
		if secretKey(k) {
			out[k] = redacted
		} else {
			out[k] = scrub(v)
		}
	}
	return out
}
