package smtp

import (
	"context"
	"fmt"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// CheckUpstream logs in to acct's SMTP upstream exactly as a session would
// (TLS or STARTTLS, EHLO, AUTH XOAUTH2 with refresh-once), then says QUIT.
// It returns the upstream's SIZE limit as text for the report. It serves
// "oauthbridge check --login"; errors are the ones a session would get
// (match them with proxy.Classify).
func CheckUpstream(ctx context.Context, d *proxy.Dialer, acct *proxy.Account) (string, error) {
	sess := &session{srv: &Server{Dialer: d}}
	var up *upstream
	_, err := proxy.AuthenticateUpstream(ctx, acct.Tokens, func(token string) error {
		u, err := sess.dial(ctx, acct, token)
		up = u
		return err
	})
	if err != nil {
		return "", err
	}
	size := up.caps.size
	up.quit(sess.hardDeadline())
	if size > 0 {
		return fmt.Sprintf("SIZE %d", size), nil
	}
	return "no SIZE limit advertised", nil
}
