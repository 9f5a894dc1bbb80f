package proxytest

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// Authenticator is an in-memory proxy.Authenticator: a map from user name
// (case-insensitive) to password to *proxy.Account. It is safe for
// concurrent use and counts calls. Unlike LocalAuth it neither hashes,
// throttles nor logs.
type Authenticator struct {
	mu    sync.Mutex // guards users and err
	users map[string]map[string]*proxy.Account
	err   error // when set, Authenticate returns it

	calls atomic.Int64
}

var _ proxy.Authenticator = (*Authenticator)(nil)

// NewAuthenticator returns an empty Authenticator.
func NewAuthenticator() *Authenticator {
	return &Authenticator{users: make(map[string]map[string]*proxy.Account)}
}

// Add lets username log in with password as acct. A user may have several
// passwords, each mapping to its own *Account (usually the same one).
func (a *Authenticator) Add(username, password string, acct *proxy.Account) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := strings.ToLower(username)
	if a.users[u] == nil {
		a.users[u] = make(map[string]*proxy.Account)
	}
	a.users[u][password] = acct
}

// Fail makes every later Authenticate return err (e.g. proxy.ErrThrottled
// or an error from a token source); nil restores normal checking.
func (a *Authenticator) Fail(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}

// Authenticate implements proxy.Authenticator. Unknown users and wrong
// passwords return errors matching proxy.ErrBadCredentials.
func (a *Authenticator) Authenticate(ctx context.Context, client netip.Addr, username, password string) (*proxy.Account, error) {
	a.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return nil, a.err
	}
	if acct, ok := a.users[strings.ToLower(username)][password]; ok {
		return acct, nil
	}
	return nil, fmt.Errorf("proxytest: login %q: %w", username, proxy.ErrBadCredentials)
}

// Account implements proxy.Authenticator: any account added under name,
// without a password check.
func (a *Authenticator) Account(name string) (*proxy.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, acct := range a.users[strings.ToLower(name)] {
		return acct, nil
	}
	return nil, fmt.Errorf("proxytest: account %q: %w", name, proxy.ErrUnknownAccount)
}

// Calls returns how many times Authenticate was called.
func (a *Authenticator) Calls() int { return int(a.calls.Load()) }
