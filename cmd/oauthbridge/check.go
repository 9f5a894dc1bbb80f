package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/daemon"
	"github.com/oauthbridge/oauthbridge/internal/doctor"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

func runCheck(e *env, args []string) error {
	fs := newFlagSet("check", "oauthbridge check [-config FILE] [--login ACCOUNT]",
		"Validate the config and the files it names (secrets, keys, certificates, CA files) and print\n"+
			"its warnings. With --login ACCOUNT, also connect to each upstream protocol the listeners\n"+
			"use and report every step (DNS, TCP, TLS and certificate, token, XOAUTH2 login) with a fix.")
	path := fs.configFlag()
	loginName := fs.String("login", "", "log in upstream as `ACCOUNT` (a username, or a user of a wildcard account's domain)")
	if _, err := fs.parse(e, args, 0, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	// What the daemon would do with the files beyond reading them: parse
	// service account keys and client certificates.
	specs, err := daemon.AccountSpecs(cfg)
	if err != nil {
		return err
	}
	check := tokens.NewManager(nil, tokens.Options{})
	err = check.SetAccounts(specs)
	check.Close()
	if err != nil {
		return &configError{err}
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(e.stdout, "warning: %s\n", w)
	}
	fmt.Fprintf(e.stdout, "config ok: %s: %d listeners, %d accounts\n", *path, len(cfg.Listeners), len(cfg.Accounts))
	if *loginName == "" {
		return nil
	}
	return checkLogin(e, cfg, *loginName)
}

// checkLogin runs the doctor over each upstream protocol a listener
// uses, for the account a client logging in as name would get.
func checkLogin(e *env, cfg *config.Config, name string) error {
	acctCfg := cfg.Account(name)
	if acctCfg == nil {
		return &configError{fmt.Errorf("--login %s: no account matches (accounts: %s)", name, accountList(cfg))}
	}
	m, _, err := daemon.OpenTokens(cfg, daemon.ManagerOptions(cfg))
	if err != nil {
		return err
	}
	defer m.Close()
	acct, err := daemon.UpstreamAccount(cfg, name, m)
	if err != nil {
		return err
	}
	var protos []string
	for _, p := range []string{config.ProtoIMAP, config.ProtoPOP3, config.ProtoSMTP} {
		if slices.ContainsFunc(cfg.Listeners, func(l config.Listener) bool { return l.Protocol == p }) {
			protos = append(protos, p)
		}
	}
	fmt.Fprintf(e.stdout, "\nlogging in upstream as %s (account %s, provider %s):\n", acct.UpstreamUser, acctCfg.Username, acctCfg.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := &doctor.Checker{Dialer: &proxy.Dialer{Timeout: cfg.Timeouts.Upstream.D()}, Provider: acctCfg.Provider}
	steps := c.Check(ctx, acct, protos)
	if err := doctor.Report(e.stdout, steps); err != nil {
		return err
	}
	if !doctor.Passed(steps) {
		fmt.Fprintf(e.stdout, "\nlogin check FAILED for %s\n", name)
		return &exitError{code: exitFailure}
	}
	fmt.Fprintf(e.stdout, "\nlogin check passed for %s (%v)\n", name, protos)
	return nil
}
