package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/imap"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/smtp"
)

// DefaultUpstreamChecks are the protocol packages' login checks.
var DefaultUpstreamChecks = map[string]UpstreamCheck{
	"imap": imap.CheckUpstream,
	"pop3": pop3.CheckUpstream,
	"smtp": smtp.CheckUpstream,
}

// tokenStep gets an access token the way a session does.
func tokenStep(ctx context.Context, r *run) Step {
	name := accountName(r.acct)
	if r.acct.Tokens == nil {
		return Step{Detail: "the account has no token source", Fix: "check the account's flow in the config"}
	}
	tok, err := r.acct.Tokens.Token(ctx)
	if err != nil {
		s := Step{Detail: "no access token: " + err.Error()}
		if proxy.ConsentRequired(err) {
			s.Detail = "consent required (token revoked, expired or never granted): " + err.Error()
			s.Fix = fmt.Sprintf("run: oauthbridge authorize %s", name)
		} else {
			s.Fix = "check the account's client_id/client secret and that this machine reaches the provider's token_url"
		}
		return s
	}
	if tok.Expiry.IsZero() {
		return Step{OK: true, Detail: "access token obtained (no expiry given)"}
	}
	return Step{OK: true, Detail: fmt.Sprintf("access token valid until %s (in %s)",
		tok.Expiry.UTC().Format("15:04:05 UTC"), time.Until(tok.Expiry).Round(time.Second))}
}

// loginStep runs the protocol's real login: greeting, XOAUTH2 with one
// refresh on refusal, logout.
func loginStep(ctx context.Context, r *run) Step {
	checks := r.c.Upstream
	if checks == nil {
		checks = DefaultUpstreamChecks
	}
	check := checks[r.proto]
	if check == nil {
		return Step{Detail: "no login check for " + r.proto + " in this build", Fix: "report this as a bug"}
	}
	start := time.Now()
	caps, err := check(ctx, r.c.dialer(), r.acct)
	if err == nil {
		return Step{OK: true, Detail: fmt.Sprintf("logged in as %s with XOAUTH2 (%s); server offers: %s",
			r.acct.UpstreamUser, ms(time.Since(start)), clip(caps))}
	}
	name := accountName(r.acct)
	s := Step{Detail: "login failed: " + err.Error()}
	switch proxy.Classify(err) {
	case proxy.FailConsent:
		s.Fix = fmt.Sprintf("token revoked or expired: run: oauthbridge authorize %s", name)
	case proxy.FailRefused:
		s.Fix = fmt.Sprintf("the server refused the token even after a refresh: check upstream_user (%s) is the mailbox the token was granted for, "+
			"the scopes (Gmail: https://mail.google.com/; Microsoft: IMAP.AccessAsUser.All, POP.AccessAsUser.All, SMTP.Send), "+
			"that IMAP/POP/SMTP AUTH is enabled for the mailbox, then run: oauthbridge authorize %s", r.acct.UpstreamUser, name)
	default:
		s.Fix = "the earlier steps passed, so the server itself refused or broke the session: see the detail; retry later if it is temporary"
	}
	return s
}
