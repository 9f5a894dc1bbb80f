package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/admin"
)

// adminServer is the optional HTTP admin endpoint (config http.listen).
// A nil *adminServer is "none configured"; every method accepts it.
type adminServer struct {
	ln      net.Listener
	srv     *http.Server
	serving atomic.Bool // Serve owns ln: Shutdown closes it
}

// newAdmin binds cfg's admin endpoint; nil without one.
func (d *Daemon) newAdmin(cfg *config.Config) (*adminServer, error) {
	if cfg.HTTP.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, &config.Error{Path: "http.listen", Msg: "cannot listen on " + cfg.HTTP.Listen + ": " + err.Error(), Err: err}
	}
	return &adminServer{ln: ln, srv: &http.Server{
		Handler:           d.adminHandler(cfg.HTTP.Hosts),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(d.log.With("component", "admin").Handler(), slog.LevelDebug),
	}}, nil
}

func (a *adminServer) start(d *Daemon) {
	if a == nil {
		return
	}
	d.log.Info("admin endpoint listening", "addr", a.ln.Addr().String())
	a.serving.Store(true)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("admin endpoint stopped", "err", err)
		}
	}()
}

func (a *adminServer) addr() string {
	if a == nil {
		return ""
	}
	return a.ln.Addr().String()
}

func (a *adminServer) shutdown(ctx context.Context) error {
	if a == nil {
		return nil
	}
	if !a.serving.Load() {
		a.ln.Close() // Shutdown closes only the listeners Serve was given
	}
	err := a.srv.Shutdown(ctx)
	if err != nil {
		a.srv.Close()
	}
	return err
}

func (a *adminServer) close() {
	if a == nil {
		return
	}
	a.srv.Close()
	a.ln.Close() // when Serve never ran
}

// adminHandler is the admin endpoint's handler: /healthz, /metrics,
// /status.json, the status page and its authorization flow, reading the
// Daemon (an admin.Source).
func (d *Daemon) adminHandler(hosts []string) http.Handler {
	return admin.New(d, d.metrics, d.log.With("component", "admin"), admin.AllowHost(hosts...))
}

var _ admin.Source = (*Daemon)(nil)
