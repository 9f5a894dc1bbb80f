package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// Error is a failure to obtain a token. Its text names the account, what
// failed and the fix; it never holds a secret (the provider's
// error_description is kept, trimmed of control characters).
//
// Classes (proxy.ConsentRequired and the daemon key on the methods):
//   - ConsentRequired: only a new "oauthbridge authorize ACCOUNT" helps.
//     The provider refused the refresh token with invalid_grant (revoked,
//     expired, Google's 7-day limit for apps in Testing status), or with
//     invalid_scope / unauthorized_client, which on a refresh mean the
//     grant does not cover what the config now asks for; or the account
//     was never authorized.
//   - Temporary: transport errors, timeouts, HTTP 5xx and 429, and the
//     OAuth codes temporarily_unavailable / server_error. Tokens are kept
//     untouched and the refresh is retried with backoff.
//   - neither: a configuration problem (invalid_client: wrong client id or
//     secret, a service account without delegation, ...). Tokens are kept;
//     retried with backoff in case the config is fixed by a reload.
type Error struct {
	Account string
	// Op is what failed: "refresh", "grant", "authorize", "device", "load".
	Op string
	// Code is the OAuth error code ("invalid_grant"); "" without one.
	Code string
	// Status is the HTTP status of the token endpoint's answer; 0 without
	// an answer.
	Status int
	// Description is the provider's error_description or a short reason.
	Description string
	// Fix is what the admin should do, or "".
	Fix string

	consent, temporary bool
	err                error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("tokens: ")
	if e.Account != "" {
		b.WriteString(e.Account + ": ")
	}
	b.WriteString(e.Op)
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	if e.Code == "" && e.Description == "" && e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Fix != "" {
		b.WriteString(": " + e.Fix)
	}
	return b.String()
}

// ConsentRequired reports whether only a new authorization helps.
func (e *Error) ConsentRequired() bool { return e.consent }

// Temporary reports whether retrying later may succeed by itself.
func (e *Error) Temporary() bool { return e.temporary }

func (e *Error) Unwrap() error { return e.err }

// IsTemporary reports whether err is a temporary token failure.
func IsTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// IsConsentRequired reports whether err says the account must be
// authorized again (the same test as proxy.ConsentRequired).
func IsConsentRequired(err error) bool {
	var c interface{ ConsentRequired() bool }
	return errors.As(err, &c) && c.ConsentRequired()
}

// ErrStateMismatch: the redirect's state is not the one this authorization
// sent (RFC 6749 §10.12): a stale or forged redirect.
var ErrStateMismatch = errors.New("tokens: state mismatch")

// ErrClosed is returned after Manager.Close.
var ErrClosed = errors.New("tokens: manager closed")

func authorizeFix(account string) string {
	return fmt.Sprintf("run \"oauthbridge authorize %s\"", account)
}

const googleTestingNote = `if the app's OAuth consent screen is in "Testing" publishing status, ` +
	`Google expires its refresh tokens after 7 days: set it to "In production"`

// notAuthorized is the error of an account without stored tokens.
func notAuthorized(a *account) *Error {
	return &Error{Account: a.spec.Name, Op: "token", Description: "not authorized yet",
		Fix: authorizeFix(a.spec.Name), consent: true}
}

// classify turns an error from a token request into an *Error.
func classify(a *account, op string, err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	e := &Error{Account: a.spec.Name, Op: op, err: err}
	re, isRetrieve := errors.AsType[*oauth2.RetrieveError](err)
	switch {
	case isRetrieve:
		e.Code, e.Description = re.ErrorCode, re.ErrorDescription
		if e.Code == "" && len(re.Body) > 0 {
			// A 4xx/5xx whose body x/oauth2 did not parse.
			var body struct {
				Error            string `json:"error"`
				ErrorDescription string `json:"error_description"`
			}
			if json.Unmarshal(re.Body, &body) == nil {
				e.Code, e.Description = body.Error, body.ErrorDescription
			}
		}
		if re.Response != nil {
			e.Status = re.Response.StatusCode
		}
	case errors.Is(err, context.DeadlineExceeded):
		e.Description, e.temporary = "timed out", true
	case errors.Is(err, context.Canceled):
		e.Description, e.temporary = "canceled", true
	default:
		// Transport failures (refused, reset, TLS, DNS) and answers that
		// are not a token response (a captive portal's HTML) are treated
		// as temporary: a temporary error never touches the tokens, it
		// only backs off, so erring this way is safe. The text names the
		// token URL at most, never a request body.
		e.Description, e.temporary = err.Error(), true
	}
	e.Description = sanitize(e.Description)
	switch {
	case e.Status >= 500 || e.Status == http.StatusTooManyRequests,
		e.Code == "temporarily_unavailable", e.Code == "server_error":
		e.temporary = true
	case op == "refresh" && (e.Code == "invalid_grant" || e.Code == "invalid_scope" || e.Code == "unauthorized_client"):
		e.consent = true
		e.Fix = authorizeFix(a.spec.Name)
		if a.googleTokenURL() {
			e.Fix += "; " + googleTestingNote
		}
	case e.Code == "invalid_client":
		e.Fix = "check the account's client_id and client secret (or certificate)"
	case a.spec.Flow == FlowServiceAccount && (e.Code == "unauthorized_client" || e.Code == "invalid_grant" || e.Code == "access_denied"):
		e.Fix = fmt.Sprintf("check the domain-wide delegation of service account %s for scopes %s, and that the user exists",
			a.saEmail, strings.Join(a.spec.Scopes, " "))
	}
	return e
}

// sanitize keeps provider text printable and short: it ends up in logs and
// in client-facing NO/-ERR lines.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.TrimSpace(s)
}
