package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/daemon"
	"github.com/oauthbridge/oauthbridge/internal/sdnotify"
)

func runServe(e *env, args []string) error {
	fs := newFlagSet("serve", "oauthbridge serve [-config FILE]",
		"Run the bridge in the foreground, logging to standard error.\n"+
			"SIGHUP reloads the config (the running one stays when the new one has an error);\n"+
			"SIGTERM or SIGINT stop it gracefully within shutdown_grace; a second signal stops it at once.")
	path := fs.configFlag()
	if _, err := fs.parse(e, args, 0, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, e.stderr, level)

	// Signals are caught before anything is announced, so a SIGHUP right
	// after READY=1 is a reload, never the default action (exit).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	d, err := daemon.New(cfg, daemon.Options{Logger: log, Level: level, Notify: sdnotify.Notify, Stdout: e.stdout})
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		d.Close()
		return err
	}
	log.Info("oauthbridge started", "version", versionLine(), "config", *path,
		"listeners", len(cfg.Listeners), "accounts", len(cfg.Accounts))
	return serveLoop(d, log, sigs, func() (*config.Config, error) { return config.Load(*path) })
}

// serveLoop runs until SIGTERM or SIGINT: SIGHUP reloads, the watchdog (when
// systemd asks for one) is pinged, and the daemon is shut down gracefully
// within the config's shutdown_grace. A second stop signal during the
// shutdown exits at once (exit 1).
func serveLoop(d *daemon.Daemon, log *slog.Logger, sigs <-chan os.Signal, load func() (*config.Config, error)) error {
	var watchdog <-chan time.Time
	if iv := sdnotify.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv / 2) // half the timeout, as sd_watchdog_enabled(3) advises
		defer t.Stop()
		watchdog = t.C
	}
	for stop := false; !stop; {
		select {
		case <-watchdog:
			notify(log, sdnotify.Watchdog)
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				log.Info("stopping", "signal", sig.String())
				stop = true
				break
			}
			reload(d, log, load)
		}
	}

	grace := d.Config().ShutdownGrace.D()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				// Sessions still open at the end of the grace period were
				// closed: the usual end of a long IDLE, not a failure.
				log.Warn("shutdown finished by closing sessions", "grace", grace, "err", err)
			}
			log.Info("stopped")
			return nil
		case <-watchdog:
			notify(log, sdnotify.Watchdog)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				continue
			}
			// The process ends now: the kernel closes every connection.
			// Nothing here may wait, Close included (it waits for handlers).
			log.Warn("second signal: exiting without waiting for sessions", "signal", sig.String())
			return &exitError{code: exitFailure}
		}
	}
}

// reload loads the config file again and hands it to the daemon; on any
// error the running config stays and the error is logged with its key path.
func reload(d *daemon.Daemon, log *slog.Logger, load func() (*config.Config, error)) {
	cfg, err := load()
	if err != nil {
		// The daemon did not see it: tell the service manager ourselves
		// that a reload came and went.
		notify(log, sdnotify.Reloading())
		log.Error("reload failed, keeping the running configuration", "err", err.Error())
		notify(log, sdnotify.Ready)
		return
	}
	if err := d.Reload(cfg); err != nil {
		log.Error("reload failed, keeping the running configuration", "err", err.Error())
	}
}

func notify(log *slog.Logger, state string) {
	if err := sdnotify.Notify(state); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("cannot notify the service manager", "err", fmt.Sprint(err))
	}
}
