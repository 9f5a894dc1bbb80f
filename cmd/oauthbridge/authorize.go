package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/daemon"
	"github.com/oauthbridge/oauthbridge/tokens"
)

func runAuthorize(e *env, args []string) error {
	fs := newFlagSet("authorize", "oauthbridge authorize ACCOUNT [-config FILE] [--no-browser] [--device]",
		"Obtain consent for ACCOUNT (its username in the config) and store its tokens; a running daemon\n"+
			"uses them at once. The authorization-code flow prints an address to open in a browser and\n"+
			"waits for the browser to come back to a port on 127.0.0.1; when the browser runs on another\n"+
			"machine, paste the address it ends on here. --device uses the device flow (Microsoft).\n"+
			"Accounts with flow service_account or client_credentials need no consent: the command then\n"+
			"checks that their credentials obtain a token.")
	path := fs.configFlag()
	noBrowser := fs.Bool("no-browser", false, "print the address only; do not try to open a browser")
	device := fs.Bool("device", false, "use the device flow (enter a code on another device)")
	pos, err := fs.parse(e, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	i := daemon.AccountIndex(cfg, name)
	if i < 0 {
		return &configError{fmt.Errorf("no account %q in %s (accounts: %s)", name, *path, accountList(cfg))}
	}
	acct := &cfg.Accounts[i]
	spec, err := daemon.AccountSpec(cfg, acct.Username)
	if err != nil {
		return err
	}
	store, err := tokens.OpenStore(cfg.StateDir, cfg.MasterKeyFile)
	if err != nil {
		return err
	}
	opts := daemon.ManagerOptions(cfg)
	opts.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := tokens.NewManager(store, opts)
	defer m.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch {
	case acct.Flow == config.FlowServiceAccount || acct.Flow == config.FlowClientCredentials:
		return checkGrant(ctx, e, m, acct, spec)
	case *device || acct.Flow == config.FlowDevice:
		return m.AuthorizeDevice(ctx, spec, tokens.DeviceOptions{Out: e.stdout})
	default:
		o := tokens.AuthCodeOptions{Out: e.stdout, In: e.stdin}
		if !*noBrowser {
			o.OpenBrowser = openBrowser
		}
		return m.AuthorizeCode(ctx, spec, o)
	}
}

// checkGrant runs one grant for a flow without stored consent, so the
// admin learns now, not at the first login, whether the key, secret or
// certificate and the delegation work.
func checkGrant(ctx context.Context, e *env, m *tokens.Manager, acct *config.Account, spec tokens.AccountSpec) error {
	if acct.IsWildcard() {
		fmt.Fprintf(e.stdout, "%s uses flow %s: no stored consent is needed, each user of the domain gets a token on demand.\n"+
			"To check the credentials for one user, run: oauthbridge check --login USER%s\n",
			acct.Username, acct.Flow, acct.Username[1:])
		return nil
	}
	if err := m.SetAccounts([]tokens.AccountSpec{spec}); err != nil {
		return err
	}
	src, err := m.Source(acct.Username, "")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tok, err := src.Token(ctx)
	if err != nil {
		return fmt.Errorf("the credentials of %s do not obtain a token: %w", acct.Username, err)
	}
	fmt.Fprintf(e.stdout, "%s uses flow %s: no stored consent is needed.\n"+
		"The credentials work: the token endpoint issued an access token for %s, valid until %s.\n",
		acct.Username, acct.Flow, acct.UpstreamUser, tok.Expiry.Local().Format(time.RFC1123))
	return nil
}

// openBrowser opens url with the desktop's opener, returning when the
// opener does (it does not wait for the browser).
func openBrowser(url string) error {
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	}
	path, err := exec.LookPath(opener)
	if err != nil {
		return fmt.Errorf("%s not found", opener)
	}
	if runtime.GOOS != "darwin" && os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return errors.New("no graphical session (DISPLAY is not set)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, path, url).Run()
}

func accountList(cfg *config.Config) string {
	if len(cfg.Accounts) == 0 {
		return "none configured"
	}
	s := ""
	for i := range cfg.Accounts {
		if i > 0 {
			s += ", "
		}
		s += cfg.Accounts[i].Username
	}
	return s
}
