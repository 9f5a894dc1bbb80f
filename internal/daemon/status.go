package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/oauthbridge/oauthbridge/tokens"
)

// Healthy returns nil when every listener is accepting and the token store
// is readable: what /healthz reports.
func (d *Daemon) Healthy() error {
	if err := d.listenersHealthy(); err != nil {
		return err
	}
	f, err := os.Open(d.store.Dir())
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("daemon: token store unreadable: %w", err)
	}
	return nil
}

func (d *Daemon) listenersHealthy() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.stopping:
		return errors.New("daemon: shutting down")
	case !d.started:
		return errors.New("daemon: not started")
	}
	for _, e := range d.entries {
		select {
		case <-e.served:
			return fmt.Errorf("daemon: %s listener %s is not accepting connections", e.info.Protocol, e.lc.Listen)
		default:
		}
	}
	return nil
}

// Accounts is every configured account's token state, in config order.
func (d *Daemon) Accounts() []tokens.AccountStatus { return d.tokens.Status() }

// Sessions is the number of client sessions open now, by protocol
// ("imap", "pop3", "smtp"; every protocol present, zeros included).
func (d *Daemon) Sessions() map[string]int {
	out := make(map[string]int, len(d.sessions))
	for p, n := range d.sessions {
		out[p] = int(n.Load())
	}
	return out
}

// AccountSessions is the number of logged-in sessions of account (a login
// name; for a wildcard account each login name counts on its own) by
// protocol.
func (d *Daemon) AccountSessions(account string) map[string]int {
	out := make(map[string]int, len(protocols))
	for _, p := range protocols {
		out[p] = d.limits.AccountSessions(p, account)
	}
	return out
}

// RecentErrors returns the last WARN and ERROR log records, newest first.
func (d *Daemon) RecentErrors() []ErrorEntry { return d.ring.list() }

// BeginAuthorize starts an authorization-code flow for account (its
// username in the config) whose callback arrives at redirectURL (the admin
// endpoint's /oauth2/callback). It returns the provider URL to send the
// browser to and the function that completes the flow with the callback's
// query, storing the tokens. The running daemon picks them up at once.
func (d *Daemon) BeginAuthorize(account, redirectURL string) (string, func(ctx context.Context, q url.Values) error, error) {
	spec, err := AccountSpec(d.Config(), account)
	if err != nil {
		return "", nil, err
	}
	authURL, p, err := d.tokens.BeginAuthCode(spec, redirectURL)
	if err != nil {
		return "", nil, err
	}
	return authURL, p.Complete, nil
}
