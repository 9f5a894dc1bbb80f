package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/sdnotify"
)

// Reload replaces the running config with cfg (SIGHUP). It first builds
// everything the new config needs (accounts, token specs, protocol
// servers, TLS configs, newly listed ports, the admin endpoint) without
// touching the running daemon; on any error the old config stays in force
// completely and the error, naming the key path, is returned. Then it
// swaps:
//
//   - accounts, passwords, throttle and limits change for the next login
//     (a removed or changed password stops working at once);
//   - a listener whose address, protocol, TLS mode, allow list and
//     allow_plaintext_auth are unchanged keeps its socket and gets the new
//     protocol server (SetHandler); a new certificate or min_tls_version
//     applies to the next handshake;
//   - a listener on the same address with any of those changed gets a new
//     proxy.Listener on the same socket, so the port never closes;
//   - in all of these, running sessions go on with the server they started
//     with;
//   - a listener no longer configured stops accepting at once and its
//     sessions are drained in the background within shutdown_grace (IMAP
//     clients get BYE);
//   - new listeners start.
//
// state_dir and master_key_file cannot change without a restart. Reload
// notifies RELOADING=1, then READY=1 whatever the outcome.
func (d *Daemon) Reload(cfg *config.Config) (err error) {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	d.notify(sdnotify.Reloading())
	defer d.notify(sdnotify.Ready)
	start := time.Now()

	d.mu.Lock()
	old, started, stopping, oldEntries := d.cfg, d.started, d.stopping, d.entries
	d.mu.Unlock()
	switch {
	case cfg == nil:
		return errors.New("daemon: reload without a config")
	case stopping:
		return errors.New("daemon: reload during shutdown")
	case !started:
		return errors.New("daemon: reload before Start")
	case cfg.StateDir != old.StateDir:
		return &config.Error{Path: "state_dir", Msg: fmt.Sprintf("cannot change from %s to %s while running: restart oauthbridge", old.StateDir, cfg.StateDir)}
	case cfg.MasterKeyFile != old.MasterKeyFile:
		return &config.Error{Path: "master_key_file", Msg: fmt.Sprintf("cannot change from %s to %s while running: restart oauthbridge", old.MasterKeyFile, cfg.MasterKeyFile)}
	}

	// Build.
	specs, local, err := d.accountsOf(cfg)
	if err != nil {
		return err
	}
	plans, err := d.listenerPlans(cfg)
	if err != nil {
		return err
	}
	matched := make([]*entry, len(plans))
	taken := make([]bool, len(oldEntries))
	for i, p := range plans {
		for j, e := range oldEntries {
			if !taken[j] && sameSocket(&e.lc, &p.lc) {
				matched[i], taken[j] = e, true
				break
			}
		}
	}
	// fresh[i] is plan i's new entry: on a new socket, or on the socket of
	// a matched listener it replaces (a view that owns nothing until the
	// swap). Entries that keep their listener have none.
	fresh := make([]*entry, len(plans))
	var newAdmin *adminServer
	cleanup := func() {
		for _, e := range fresh {
			if e != nil {
				// Closes a new socket (its view owns it); a view built to
				// replace a running listener owns nothing, so that
				// listener's socket stays open.
				e.pl.Close()
			}
		}
		newAdmin.close()
	}
	for i, p := range plans {
		switch e := matched[i]; {
		case e == nil:
			sock, err := bindSocket(p.lc.Listen)
			if err != nil {
				cleanup()
				return listenErr(p.idx, &p.lc, err)
			}
			v := sock.newView()
			sock.handOff(v, nil)
			if fresh[i], err = d.newEntry(p, sock, v); err != nil {
				sock.close()
				cleanup()
				return err
			}
		case !sameListener(e, p):
			if fresh[i], err = d.newEntry(p, e.sock, e.sock.newView()); err != nil {
				cleanup()
				return err
			}
		}
	}
	adminChanged := cfg.HTTP.Listen != old.HTTP.Listen
	if adminChanged {
		if newAdmin, err = d.newAdmin(cfg); err != nil {
			cleanup()
			return err
		}
	}

	// Swap. SetAccounts and Update check exactly what accountsOf checked,
	// so they do not fail here; if one did, the other is rolled back.
	d.mu.Lock()
	oldSpecs := d.specs
	d.mu.Unlock()
	if err := d.tokens.SetAccounts(specs); err != nil {
		cleanup()
		return &config.Error{Path: "accounts", Msg: err.Error(), Err: err}
	}
	if err := d.auth.Update(local); err != nil {
		_ = d.tokens.SetAccounts(oldSpecs)
		cleanup()
		return &config.Error{Path: "accounts", Msg: err.Error(), Err: err}
	}
	d.auth.SetThrottle(throttleConfig(cfg))
	d.limits.SetLimits(limitsOf(cfg))
	if d.opts.Level != nil {
		d.opts.Level.Set(parseLevel(cfg.Log.Level))
	}
	if cfg.Log.Format != old.Log.Format {
		d.log.Warn("log.format changes at the next restart", "running", old.Log.Format, "configured", cfg.Log.Format)
	}

	next := make([]*entry, 0, len(plans))
	var startedNow, replaced, removed []*entry
	keptConfig := map[*entry]config.Listener{} // written under mu below: Listeners and Healthy read lc
	kept := 0
	for i, p := range plans {
		e := matched[i]
		switch {
		case e == nil:
			next = append(next, fresh[i])
			startedNow = append(startedNow, fresh[i])
		case sameListener(e, p):
			e.pl.SetHandler(p.handler)
			if e.tls != nil {
				e.tls.set(p.tls)
			}
			keptConfig[e] = p.lc
			next = append(next, e)
			kept++
		default:
			ne := fresh[i]
			e.sock.handOff(ne.view, e.served)
			next = append(next, ne)
			startedNow = append(startedNow, ne)
			replaced = append(replaced, e)
		}
	}
	for j, e := range oldEntries {
		if !taken[j] {
			removed = append(removed, e)
		}
	}
	d.mu.Lock()
	for e, lc := range keptConfig {
		e.lc = lc
	}
	d.cfg, d.specs, d.entries = cfg, specs, next
	d.retired = append(d.retired, replaced...)
	oldAdmin := d.admin
	if adminChanged {
		d.admin = newAdmin
	}
	d.mu.Unlock()

	for _, e := range startedNow {
		d.serve(e)
	}
	for _, e := range removed {
		d.drain(e, grace(cfg))
	}
	if adminChanged {
		newAdmin.start(d)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			ctx, cancel := context.WithTimeout(d.life, 5*time.Second)
			defer cancel()
			_ = oldAdmin.shutdown(ctx)
		}()
	}
	d.logWarnings(cfg)
	d.log.Info("configuration reloaded", "listeners_kept", kept, "listeners_added", len(startedNow)-len(replaced),
		"listeners_replaced", len(replaced), "listeners_removed", len(removed), "accounts", len(specs),
		"duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// drain stops a listener a reload removed: the port closes now, and its
// sessions get the shutdown treatment in the background, bounded by grace
// (and by the daemon's own Shutdown or Close).
func (d *Daemon) drain(e *entry, grace time.Duration) {
	e.view.Close()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.life, grace)
		defer cancel()
		_ = e.pl.Shutdown(ctx)
	}()
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
