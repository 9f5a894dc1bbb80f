package imap

import (
	"context"
	"strings"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// CheckUpstream logs in to acct's IMAP upstream exactly as a session would
// (TLS, greeting, XOAUTH2 with refresh-once), then logs out. It returns
// the capabilities a client would be shown. It serves "oauthbridge check
// --login"; errors are the same ones a session would get (match them with
// proxy.Classify).
func CheckUpstream(ctx context.Context, d *proxy.Dialer, acct *proxy.Account) (caps string, err error) {
	u, err := dialUpstream(ctx, d, acct)
	if err != nil {
		return "", err
	}
	defer u.close()
	if dl, ok := ctx.Deadline(); ok {
		u.conn.SetDeadline(dl)
	}
	u.rawCommand([]byte("LOGOUT\r\n"))
	return strings.TrimSpace(string(u.capLine)), nil
}
