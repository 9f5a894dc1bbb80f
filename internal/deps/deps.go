// Package deps pins the project's direct dependencies in go.mod while the
// packages that use them are being written. Remove once every one is
// imported elsewhere.
package deps

import (
	_ "github.com/emersion/go-imap/v2/imapclient"
	_ "github.com/emersion/go-imap/v2/imapserver"
	_ "github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	_ "github.com/emersion/go-sasl"
	_ "github.com/emersion/go-smtp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/prometheus/common/expfmt"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/crypto/chacha20poly1305"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/oauth2/jwt"
	_ "golang.org/x/term"
	_ "gopkg.in/yaml.v3"
)
