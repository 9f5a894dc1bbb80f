package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/admin"
	"github.com/oauthbridge/oauthbridge/internal/daemon"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// statusOutput is what "status --json" prints (schema 1). Accounts come
// from the token store (the truth even without a running daemon);
// sessions, and the in-memory state of grant flows, from the daemon's
// admin endpoint when it is configured and answers.
//
//	{
//	  "schema": 1,
//	  "accounts": [{
//	    "account": "alice@gmail.com", "flow": "authcode",
//	    "state": "authorized",        // authorized | consent_required | not_authorized | error
//	    "access_expiry": "...", "obtained_at": "...",
//	    "refresh_token_issued_at": "...", "refresh_token_last_used": "...",
//	    "last_refresh_at": "...", "last_error": "...",   // each omitted when unknown / none
//	    "sessions": {"imap": 1, "pop3": 0, "smtp": 0}     // omitted when the daemon was not reached
//	  }],
//	  "daemon": {"url": "http://127.0.0.1:8025/status.json", "reachable": true, "healthy": true,
//	             "health": "", "error": "", "sessions": {"imap": 1, "pop3": 0, "smtp": 0}}
//	}
type statusOutput struct {
	Schema   int             `json:"schema"`
	Accounts []statusAccount `json:"accounts"`
	Daemon   daemonStatus    `json:"daemon"`
}

type statusAccount struct {
	tokens.AccountStatus
	Sessions map[string]int `json:"sessions,omitempty"`
}

type daemonStatus struct {
	URL       string         `json:"url,omitempty"` // "" without http.listen
	Reachable bool           `json:"reachable"`
	Healthy   bool           `json:"healthy"`
	Health    string         `json:"health,omitempty"`
	Error     string         `json:"error,omitempty"` // why it was not reached
	Sessions  map[string]int `json:"sessions,omitempty"`
}

const statusSchema = 1

func runStatus(e *env, args []string) error {
	fs := newFlagSet("status", "oauthbridge status [-config FILE] [--json]",
		"Show every account's token state (authorized, consent required, not authorized), access token\n"+
			"expiry, refresh token age and last use, the last refresh error, and, when the daemon's admin\n"+
			"endpoint (http.listen) answers, its open sessions.")
	path := fs.configFlag()
	asJSON := fs.Bool("json", false, "print JSON (schema 1) instead of text")
	if _, err := fs.parse(e, args, 0, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	statuses, err := accountStatuses(cfg)
	if err != nil {
		return err
	}

	q := queryDaemon(cfg)
	out := statusOutput{Schema: statusSchema, Accounts: []statusAccount{}, Daemon: q.daemonStatus}
	remote := map[string]admin.Account{}
	for _, a := range q.accounts {
		remote[a.Account] = a
	}
	for _, st := range statuses {
		sa := statusAccount{AccountStatus: st}
		if r, ok := remote[st.Account]; ok {
			sa.Sessions = r.Sessions
			if st.Flow == tokens.FlowServiceAccount || st.Flow == tokens.FlowClientCredentials {
				// Grant flows keep their tokens in the daemon's memory only.
				sa.AccessExpiry, sa.LastRefreshAt, sa.LastError, sa.Subjects = r.AccessExpiry, r.LastRefreshAt, r.LastError, r.Subjects
			}
		}
		out.Accounts = append(out.Accounts, sa)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printStatus(e.stdout, out, time.Now())
	return nil
}

// accountStatuses reads the token store. Without a state_dir nothing was
// ever authorized, and status must not create one (with a master key) as
// a side effect, possibly as the wrong user.
func accountStatuses(cfg *config.Config) ([]tokens.AccountStatus, error) {
	if _, err := os.Stat(cfg.StateDir); errors.Is(err, fs.ErrNotExist) {
		out := make([]tokens.AccountStatus, len(cfg.Accounts))
		for i, a := range cfg.Accounts {
			out[i] = tokens.AccountStatus{Account: a.Username, Flow: tokens.Flow(a.Flow), State: tokens.StateNotAuthorized}
			if a.Flow == config.FlowServiceAccount || a.Flow == config.FlowClientCredentials {
				out[i].State = tokens.StateAuthorized // no consent to store
			}
		}
		return out, nil
	}
	m, _, err := daemon.OpenTokens(cfg, daemon.ManagerOptions(cfg))
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.Status(), nil
}

// daemonQuery is daemonStatus plus the accounts the daemon reported.
type daemonQuery struct {
	daemonStatus
	accounts []admin.Account
}

// queryDaemon reads the running daemon's /status.json.
func queryDaemon(cfg *config.Config) daemonQuery {
	listen := cfg.HTTP.Listen
	if listen == "" {
		return daemonQuery{daemonStatus: daemonStatus{Error: "no admin endpoint configured (http.listen)"}}
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return daemonQuery{daemonStatus: daemonStatus{Error: "http.listen " + listen + " names no fixed port"}}
	}
	if host == "" || host == "0.0.0.0" || host == "::" || host == "[::]" {
		host = "127.0.0.1"
	}
	u := "http://" + net.JoinHostPort(host, port) + "/status.json"
	q := daemonQuery{daemonStatus: daemonStatus{URL: u}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		q.Error = "not reachable: " + shortNetErr(err)
		return q
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		q.Error = "answered " + resp.Status
		return q
	}
	var st admin.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&st); err != nil {
		q.Error = "unreadable status: " + err.Error()
		return q
	}
	if st.Schema != admin.SchemaVersion {
		q.Error = fmt.Sprintf("status schema %d, this oauthbridge reads %d: versions differ", st.Schema, admin.SchemaVersion)
		return q
	}
	q.Reachable, q.Healthy, q.Health, q.Sessions, q.accounts = true, st.Healthy, st.Health, st.Sessions, st.Accounts
	return q
}

// shortNetErr drops the request prefix ("Get \"http://...\": ") that
// repeats the URL printed next to it.
func shortNetErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s, "dial tcp") {
		return s[i+2:]
	}
	return s
}

func printStatus(w io.Writer, out statusOutput, now time.Time) {
	for _, a := range out.Accounts {
		fmt.Fprintf(w, "%s  (flow %s)\n", a.Account, a.Flow)
		fmt.Fprintf(w, "  state               %s\n", stateText(a.AccountStatus))
		if !a.AccessExpiry.IsZero() {
			fmt.Fprintf(w, "  access token        expires %s\n", when(a.AccessExpiry, now))
		}
		if !a.RefreshTokenIssuedAt.IsZero() {
			line := "issued " + when(a.RefreshTokenIssuedAt, now)
			if !a.RefreshTokenLastUsed.IsZero() {
				line += ", last used " + when(a.RefreshTokenLastUsed, now)
			}
			fmt.Fprintf(w, "  refresh token       %s\n", line)
		}
		if a.Subjects > 0 {
			fmt.Fprintf(w, "  users with a token  %d\n", a.Subjects)
		}
		lastErr := a.LastError
		if lastErr == "" {
			lastErr = "none"
		}
		fmt.Fprintf(w, "  last refresh error  %s\n", lastErr)
		if a.Sessions != nil {
			fmt.Fprintf(w, "  sessions            %s\n", sessionsText(a.Sessions))
		}
	}
	d := out.Daemon
	switch {
	case d.Reachable && d.Healthy:
		fmt.Fprintf(w, "daemon: running (%s), healthy, sessions %s\n", d.URL, sessionsText(d.Sessions))
	case d.Reachable:
		fmt.Fprintf(w, "daemon: running (%s), NOT healthy: %s; sessions %s\n", d.URL, d.Health, sessionsText(d.Sessions))
	case d.URL != "":
		fmt.Fprintf(w, "daemon: %s (%s); sessions unknown\n", d.Error, d.URL)
	default:
		fmt.Fprintf(w, "daemon: not reachable: %s; sessions unknown\n", d.Error)
	}
}

func stateText(a tokens.AccountStatus) string {
	switch a.State {
	case tokens.StateAuthorized:
		return "authorized"
	case tokens.StateConsentRequired:
		return "consent required: run \"oauthbridge authorize " + a.Account + "\""
	case tokens.StateNotAuthorized:
		return "not authorized: run \"oauthbridge authorize " + a.Account + "\""
	}
	return string(a.State)
}

// when is "2006-01-02 15:04 MST (in 41m)" or "(3d ago)".
func when(t, now time.Time) string {
	d := t.Sub(now)
	rel := "in " + span(d)
	if d < 0 {
		rel = span(-d) + " ago"
	}
	return t.Local().Format("2006-01-02 15:04 MST") + " (" + rel + ")"
}

func span(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return fmt.Sprintf("%ds", int(d/time.Second))
}

func sessionsText(m map[string]int) string {
	parts := make([]string, 0, 3)
	for _, p := range []string{"imap", "pop3", "smtp"} {
		parts = append(parts, fmt.Sprintf("%s %d", p, m[p]))
	}
	return strings.Join(parts, ", ")
}
