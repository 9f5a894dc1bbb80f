package proxy

import (
	"errors"
	"fmt"
)

// Failure is what kind of refusal a client gets for a failed login or an
// upstream problem. Protocol packages map each kind to their reply codes:
//
//	kind               IMAP                     POP3          SMTP
//	FailBadCredentials NO [AUTHENTICATIONFAILED] -ERR [AUTH]   535 5.7.8
//	FailThrottled      NO [UNAVAILABLE]         -ERR [SYS/TEMP] 454 4.7.0
//	FailLimit          NO [LIMIT]               -ERR [IN-USE] 421 4.7.0
//	FailConsent        NO [AUTHENTICATIONFAILED] -ERR [AUTH]   535 5.7.8
//	FailRefused        NO [AUTHENTICATIONFAILED] -ERR [AUTH]   535 5.7.8
//	FailUnavailable    NO [UNAVAILABLE]         -ERR [SYS/TEMP] 454 4.7.0
type Failure int

const (
	FailUnavailable    Failure = iota // upstream or token endpoint unreachable, timeouts, anything unknown
	FailBadCredentials                // wrong local app password or unknown user
	FailThrottled                     // client address slowed down or banned
	FailLimit                         // too many sessions
	FailConsent                       // the account needs "oauthbridge authorize"
	FailRefused                       // upstream refused a fresh token
	FailShutdown                      // the bridge is stopping
)

// Classify tells which Failure err is.
func Classify(err error) Failure {
	var ae *AuthError
	switch {
	case errors.Is(err, ErrBadCredentials), errors.Is(err, ErrUnknownAccount):
		return FailBadCredentials
	case errors.Is(err, ErrThrottled):
		return FailThrottled
	case errors.Is(err, ErrTooManySessions):
		return FailLimit
	case errors.Is(err, ErrShuttingDown):
		return FailShutdown
	case ConsentRequired(err):
		return FailConsent
	case errors.As(err, &ae):
		return FailRefused
	}
	return FailUnavailable
}

// ClientMessage is the human text a client sees for err, naming the problem
// and the fix. It never contains a secret or internal error text. account
// is the login name ("" before one is known).
func ClientMessage(err error, account string) string {
	switch Classify(err) {
	case FailBadCredentials:
		return "Invalid credentials"
	case FailThrottled:
		return "Too many failed logins from your address, try again later"
	case FailLimit:
		return "Too many concurrent sessions, close another client first"
	case FailShutdown:
		return "Server shutting down, reconnect shortly"
	case FailConsent:
		return fmt.Sprintf("OAuth grant for %s is missing, revoked or expired: run 'oauthbridge authorize %s' on the bridge host", account, account)
	case FailRefused:
		return fmt.Sprintf("Upstream refused the OAuth token for %s even after a refresh: check the account's scopes and upstream_user, then run 'oauthbridge authorize %s'", account, account)
	}
	return "Upstream temporarily unavailable, try again later"
}

// LoginOutcome is the metrics word for a login that ended with err (nil is
// "ok").
func LoginOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	switch Classify(err) {
	case FailBadCredentials:
		return "bad_credentials"
	case FailThrottled:
		return "throttled"
	case FailLimit:
		return "limit"
	case FailConsent:
		return "consent_required"
	case FailRefused:
		return "upstream_refused"
	case FailShutdown:
		return "shutdown"
	}
	return "upstream_unavailable"
}
