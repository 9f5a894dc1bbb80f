package pop3

import (
	"context"
	"fmt"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// CheckUpstream logs in to acct's POP3 upstream exactly as a session would
// (TLS or STLS, greeting, two-step AUTH XOAUTH2 with refresh-once), reads
// STAT, and leaves with RSET and QUIT so nothing is deleted. It serves
// "oauthbridge check --login"; errors are the ones a session would get
// (match them with proxy.Classify).
func CheckUpstream(ctx context.Context, d *proxy.Dialer, acct *proxy.Account) (string, error) {
	s := &session{srv: &Server{Dialer: d}}
	deadline := time.Now().Add(s.srv.upstreamTimeout())
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	up, _, err := s.connect(ctx, acct, deadline)
	if err != nil {
		return "", err
	}
	defer up.retire()
	ok, reply, err := up.simple([]byte("STAT"))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("pop3: upstream refused STAT: %s", reply)
	}
	return "maildrop " + string(replyText(reply)), nil
}
