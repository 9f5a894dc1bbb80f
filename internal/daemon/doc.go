// Package daemon is the one place where a config.Config becomes running
// objects: the token store and manager, the local authenticator, session
// limits, one proxy.Listener per configured listener with its protocol
// server (proxy/imap, proxy/pop3, proxy/smtp), server TLS, metrics and the
// admin endpoint. The proxy packages never see the config.
//
// Typical use (cmd/oauthbridge serve):
//
//	cfg, err := config.Load(path)
//	d, err := daemon.New(cfg, daemon.Options{Logger: log, Level: level, Notify: sdnotify.Notify})
//	if err != nil { ... }              // names the key path; nothing is left open
//	if err := d.Start(); err != nil { ... } // listeners serve; READY=1
//	// SIGHUP:
//	if cfg, err := config.Load(path); err == nil {
//		err = d.Reload(cfg) // on error the running config stays
//	}
//	// SIGTERM:
//	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace.D())
//	err = d.Shutdown(ctx) // IMAP gets BYE, POP3/SMTP finish their command
//
// A *Daemon is also what the admin endpoint reports on: Healthy, Accounts,
// Sessions, AccountSessions, RecentErrors and BeginAuthorize.
//
// The CLI commands that need the config's accounts without a running
// daemon use OpenTokens, AccountSpec and UpstreamAccount.
package daemon
