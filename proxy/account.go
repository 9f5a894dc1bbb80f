package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"time"

	"golang.org/x/oauth2"
)

// TokenSource gives the access tokens of one upstream identity.
//
// tokens.Manager hands out values that satisfy it without importing this
// package; tests use StaticTokens or their own.
type TokenSource interface {
	// Token returns an access token that is valid now, refreshing first when
	// it expires within the source's margin. Concurrent callers share one
	// refresh.
	Token(ctx context.Context) (*oauth2.Token, error)

	// ForceRefresh is called when the upstream refused the access token
	// `rejected` although it looked valid. When the source's current token is
	// already a different one (another session refreshed first) it returns
	// that; otherwise it obtains a new one.
	ForceRefresh(ctx context.Context, rejected string) (*oauth2.Token, error)
}

// UpstreamTLS says how an upstream connection is secured. There is no
// plaintext mode: upstream TLS is always on and always verified.
type UpstreamTLS int

const (
	// UpstreamImplicitTLS starts TLS right after the TCP connect (IMAP 993,
	// POP3 995, SMTP 465).
	UpstreamImplicitTLS UpstreamTLS = iota
	// UpstreamStartTLS connects in plaintext and upgrades with the
	// protocol's STARTTLS/STLS before anything else (SMTP 587).
	UpstreamStartTLS
)

// Endpoint is one upstream server of one protocol.
type Endpoint struct {
	Addr string // host:port
	TLS  UpstreamTLS
	// TLSConfig carries RootCAs (system roots plus the provider's ca_file)
	// and ServerName. It is cloned per connection and never has
	// InsecureSkipVerify set. Nil means system roots and the host of Addr.
	TLSConfig *tls.Config
}

// SessionPolicy says when the upstream ends sessions and how the bridge
// keeps the client's session alive across that.
type SessionPolicy struct {
	// Lifetime is how long the provider lets an upstream session live.
	// Zero means "as long as the access token it logged in with".
	Lifetime time.Duration
	// RotateBefore is how long before the end of an upstream session the
	// bridge opens a new one (proactive rotation). Zero disables rotation.
	RotateBefore time.Duration
	// ResumeWithin bounds how long a reactive resume keeps retrying after an
	// upstream cut before giving up and closing the client.
	ResumeWithin time.Duration
}

// Account is one configured mailbox as the protocol packages see it, after
// a client has logged in.
type Account struct {
	// Name is the name the client logged in with (for a wildcard account,
	// the actual login name). It is what logs, metrics and the
	// "oauthbridge authorize NAME" hint use.
	Name string
	// ConfigName is the account's username in the config (differs from Name
	// only for wildcard accounts such as "*@example.com").
	ConfigName string
	// UpstreamUser is the identity sent in XOAUTH2's user= field.
	UpstreamUser string
	// Tokens gives access tokens for UpstreamUser.
	Tokens TokenSource

	IMAP, POP3, SMTP Endpoint
	Session          SessionPolicy
}

// Authenticator checks local logins. Implementations must be safe for
// concurrent use; LocalAuth is the one the daemon uses.
type Authenticator interface {
	// Authenticate checks an app password for username, coming from
	// client. A wrong password returns an error matching
	// ErrBadCredentials and never touches tokens. A throttled address gets
	// ErrThrottled.
	Authenticate(ctx context.Context, client netip.Addr, username, password string) (*Account, error)
	// Account returns the account named name without a password check, for
	// relay_without_auth. It returns an error matching ErrUnknownAccount
	// when there is none.
	Account(name string) (*Account, error)
}

// Errors that the protocol packages turn into protocol replies. Match them
// with errors.Is.
var (
	ErrBadCredentials  = errors.New("proxy: invalid credentials")
	ErrUnknownAccount  = errors.New("proxy: unknown account")
	ErrThrottled       = errors.New("proxy: too many failed logins from this address")
	ErrTooManySessions = errors.New("proxy: too many concurrent sessions")
	ErrShuttingDown    = errors.New("proxy: shutting down")
)
