// Package interop proves the bridge against mail software nobody on the
// project wrote. It holds tests only: real clients (mbsync, offlineimap,
// fetchmail, getmail6, neomutt, msmtp, swaks, curl) drive the whole
// daemon (internal/daemon, built from a config as "oauthbridge serve"
// builds it) over its plaintext loopback listeners, and the daemon talks
// XOAUTH2 to a real-shaped upstream: the fake Gmail (internal/fakegmail)
// and a real Dovecot 2.3 (internal/testpeers) whose oauth2 passdb checks
// the bridge's tokens against the fake OAuth server that issued them.
//
// Typical use:
//
//	go test -race ./interop/                          # all clients x both upstreams
//	go test -race -run 'TestClients/dovecot/mbsync' ./interop/
//	OAUTHBRIDGE_REQUIRE_PEERS=1 go test ./interop/    # CI: a missing client fails
//
// Every test asserts content, never just an exit code: synced Maildirs
// are compared message by message (SHA-256 after line-end normalisation)
// with what the upstream holds, POP3 maildrops must be empty afterwards,
// and submitted bodies must reach the upstream byte for byte. A client
// that is not installed skips its test naming the Debian package, and
// fails it under OAUTHBRIDGE_REQUIRE_PEERS=1.
//
// Each upstream is started once per run (TestClients/<upstream>) and its
// 1,000-message mailbox is seeded once, then shared by the sync tests.
// Clients get a temporary HOME so no user configuration is read.
package interop
