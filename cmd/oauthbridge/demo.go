package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/daemon"
	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// The demo account. The password is fixed so that the README's examples
// can be pasted as they are; the bridge listens on loopback only.
const (
	demoUser     = "demo@gmail.com"
	demoPassword = "oauthbridge-demo"
)

// demoPortsEnv set to "0" makes the demo use free ports, like
// --free-ports (tests, or a second demo next to a first).
const demoPortsEnv = "OAUTHBRIDGE_DEMO_PORTS"

func runDemo(e *env, args []string) error {
	fs := newFlagSet("demo", "oauthbridge demo [--free-ports]",
		"Start a built-in fake Gmail (IMAP, POP3, SMTP with XOAUTH2 and a fake token endpoint) with one\n"+
			"authorized account, and the bridge in front of it on the default local ports: IMAP 127.0.0.1:1143,\n"+
			"POP3 127.0.0.1:1110, SMTP 127.0.0.1:1587, status page http://127.0.0.1:8025/. A port that is\n"+
			"in use is replaced by a free one (the output says which). Runs until Ctrl-C; nothing is kept.")
	free := fs.Bool("free-ports", os.Getenv(demoPortsEnv) == "0", "use free ports instead of the default ones (also $"+demoPortsEnv+"=0)")
	if _, err := fs.parse(e, args, 0, 0); err != nil {
		return err
	}

	level := new(slog.LevelVar)
	log := newLogger(config.Log{Level: "info", Format: "text"}, e.stderr, level)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	dir, err := os.MkdirTemp("", "oauthbridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fg, err := fakegmail.Start(fakegmail.Options{Users: []string{demoUser}, SeedMessages: true})
	if err != nil {
		return err
	}
	defer fg.Close()

	var notes []string
	addr := func(def string) string {
		a, note := demoAddr(def, *free)
		if note != "" {
			notes = append(notes, note)
		}
		return a
	}
	cfg, err := demoConfig(fg, dir, addr)
	if err != nil {
		return err
	}
	if err := seedDemoTokens(fg, cfg); err != nil {
		return err
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Level: level, Stdout: e.stdout})
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		d.Close()
		return err
	}
	printDemo(e.stdout, d, dir, notes)
	return serveLoop(d, log, sigs, func() (*config.Config, error) { return cfg, nil })
}

// demoAddr returns def when it can be bound now, else a free port on
// 127.0.0.1 and a note naming the busy port and how to free it.
func demoAddr(def string, free bool) (string, string) {
	if free {
		return "127.0.0.1:0", ""
	}
	ln, err := net.Listen("tcp", def)
	if err != nil {
		_, port, _ := net.SplitHostPort(def)
		return "127.0.0.1:0", fmt.Sprintf("%s is in use, so a free port is used instead (below). "+
			"To get %s back, stop what holds it (\"ss -ltnp 'sport = :%s'\" names it) and restart the demo.", def, def, port)
	}
	ln.Close()
	return def, ""
}

// demoConfig is the demo's config, built in Go: provider "fakegmail" at the
// fake's addresses with its CA, one account with the demo password.
func demoConfig(fg *fakegmail.Server, dir string, addr func(string) string) (*config.Config, error) {
	hash, err := proxy.HashPassword(demoPassword)
	if err != nil {
		return nil, err
	}
	oa := fg.OAuth()
	cfg := &config.Config{
		StateDir:      dir,
		ShutdownGrace: config.Duration(5 * time.Second),
		HTTP:          config.HTTP{Listen: addr("127.0.0.1:8025")},
		Listeners: []config.Listener{
			{Protocol: config.ProtoIMAP, Listen: addr("127.0.0.1:1143")},
			{Protocol: config.ProtoPOP3, Listen: addr("127.0.0.1:1110")},
			{Protocol: config.ProtoSMTP, Listen: addr("127.0.0.1:1587")},
		},
		Providers: map[string]*config.Provider{"fakegmail": {
			IMAP: fg.IMAPAddr(), POP3: fg.POP3Addr(), SMTP: fg.SMTPAddr(), SMTPTLS: config.SMTPImplicit,
			AuthURL: oa.AuthURL(), TokenURL: oa.TokenURL(), Scopes: []string{"https://mail.google.com/"},
			CAPEM: fg.CACertPEM(),
		}},
		Accounts: []config.Account{{
			Username: demoUser, Provider: "fakegmail", ClientID: oa.ClientID, ClientSecret: oa.ClientSecret,
			Passwords: []config.Password{{Name: "demo", Hash: hash}},
		}},
	}
	if err := cfg.Complete(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// seedDemoTokens stores a grant from the fake OAuth server, as "oauthbridge
// authorize" would after a consent, so the account works at once.
func seedDemoTokens(fg *fakegmail.Server, cfg *config.Config) error {
	store, err := tokens.OpenStore(cfg.StateDir, cfg.MasterKeyFile)
	if err != nil {
		return err
	}
	access, refresh := fg.OAuth().Issue(demoUser)
	now := time.Now()
	return store.Save(demoUser, &tokens.Record{
		AccessToken: access, TokenType: "Bearer", Expiry: fg.OAuth().Expiry(access), RefreshToken: refresh,
		Flow: tokens.FlowAuthCode, Scopes: []string{"https://mail.google.com/"},
		ObtainedAt: now, RefreshTokenIssuedAt: now,
	})
}

func printDemo(w io.Writer, d *daemon.Daemon, dir string, notes []string) {
	addrs := map[string]string{}
	for _, l := range d.Listeners() {
		addrs[l.Protocol] = l.Addr
	}
	imapAddr, pop3Addr, smtpAddr := addrs["imap"], addrs["pop3"], addrs["smtp"]
	host, imapPort, _ := net.SplitHostPort(imapAddr)
	_, pop3Port, _ := net.SplitHostPort(pop3Addr)
	_, smtpPort, _ := net.SplitHostPort(smtpAddr)
	up := demoUser + ":" + demoPassword

	fmt.Fprintf(w, "oauthbridge demo: a fake Gmail with one authorized account, and the bridge in front of it.\n\n")
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  host      %s\n", host)
	fmt.Fprintf(w, "  IMAP      %s   (no TLS: loopback only)\n", imapAddr)
	fmt.Fprintf(w, "  POP3      %s\n", pop3Addr)
	fmt.Fprintf(w, "  SMTP      %s   (AUTH PLAIN or LOGIN)\n", smtpAddr)
	fmt.Fprintf(w, "  user      %s\n", demoUser)
	fmt.Fprintf(w, "  password  %s\n", demoPassword)
	if a := d.AdminAddr(); a != "" {
		fmt.Fprintf(w, "  status    http://%s/\n", a)
	}
	fmt.Fprintf(w, "\nTry it:\n")
	fmt.Fprintf(w, "  curl --user '%s' 'imap://%s/'                     # list mailboxes\n", up, imapAddr)
	fmt.Fprintf(w, "  curl --user '%s' 'imap://%s/INBOX;UID=1'          # read the first message\n", up, imapAddr)
	fmt.Fprintf(w, "  curl --user '%s' 'pop3://%s/1'                    # the same over POP3\n", up, pop3Addr)
	fmt.Fprintf(w, "  printf 'Subject: hello\\r\\n\\r\\nhi\\r\\n' | curl --user '%s' 'smtp://%s' \\\n", up, smtpAddr)
	fmt.Fprintf(w, "      --mail-from %s --mail-rcpt %s --upload-file -\n", demoUser, demoUser)
	fmt.Fprintf(w, "\nThunderbird (or any mail client): add a mail account by hand (\"Configure manually\"):\n")
	fmt.Fprintf(w, "  incoming  IMAP  server %s  port %s  connection security None  authentication Normal password\n", host, imapPort)
	fmt.Fprintf(w, "            (or POP3 port %s)\n", pop3Port)
	fmt.Fprintf(w, "  outgoing  SMTP  server %s  port %s  connection security None  authentication Normal password\n", host, smtpPort)
	fmt.Fprintf(w, "  username  %s   password %s\n", demoUser, demoPassword)
	fmt.Fprintf(w, "\nPress Ctrl-C to stop. State is kept in %s and removed at exit.\n", dir)
}
