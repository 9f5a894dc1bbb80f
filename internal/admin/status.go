package admin

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/oauthbridge/oauthbridge/tokens"
)

// SchemaVersion is the "schema" of /status.json. Fields may be added
// within a version; it changes only when a field is removed, renamed or
// changes meaning, so "oauthbridge status" and monitoring scripts can
// refuse what they do not understand.
const SchemaVersion = 1

// Status is the document at /status.json (schema 1):
//
//	{
//	  "schema": 1,
//	  "time": "2026-05-01T12:00:00Z",            // when the snapshot was taken (UTC)
//	  "healthy": true,
//	  "health": "",                              // the reason when healthy is false
//	  "sessions": {"imap": 2, "pop3": 0, "smtp": 1},  // open client sessions; the three keys always present
//	  "accounts": [{
//	    "account": "alice@gmail.com",
//	    "flow": "authcode",                      // authcode | device | service_account | client_credentials
//	    "state": "authorized",                   // authorized | consent_required | not_authorized | error
//	    "access_expiry": "2026-05-01T12:41:07Z", // omitted when unknown
//	    "access_expires_in_seconds": 2467,       // negative once expired; omitted with access_expiry
//	    "obtained_at": "...",                    // consent time; omitted when unknown
//	    "refresh_token_issued_at": "...",
//	    "refresh_token_age_seconds": 86400,      // omitted with refresh_token_issued_at
//	    "refresh_token_last_used": "...",
//	    "last_refresh_at": "...",
//	    "last_error": "",                        // omitted when none; never holds a secret
//	    "subjects": 0,                           // service accounts: subjects with a token in memory; omitted when 0
//	    "sessions": {"imap": 1, "pop3": 0, "smtp": 0},
//	    "authorize": true                        // the status page can authorize it (flow authcode)
//	  }],
//	  "recent_errors": [{"time": "...", "message": "...", "attrs": {"account": "...", "proto": "imap"}}]  // newest first
//	}
//
// Times are RFC 3339 in UTC; durations are whole seconds.
type Status struct {
	Schema       int            `json:"schema"`
	Time         time.Time      `json:"time"`
	Healthy      bool           `json:"healthy"`
	Health       string         `json:"health,omitempty"`
	Sessions     map[string]int `json:"sessions"`
	Accounts     []Account      `json:"accounts"`
	RecentErrors []ErrorEntry   `json:"recent_errors"`
}

// Account is one account in Status.
type Account struct {
	Account                string         `json:"account"`
	Flow                   string         `json:"flow"`
	State                  string         `json:"state"`
	AccessExpiry           time.Time      `json:"access_expiry,omitzero"`
	AccessExpiresInSeconds *int64         `json:"access_expires_in_seconds,omitempty"`
	ObtainedAt             time.Time      `json:"obtained_at,omitzero"`
	RefreshTokenIssuedAt   time.Time      `json:"refresh_token_issued_at,omitzero"`
	RefreshTokenAgeSeconds *int64         `json:"refresh_token_age_seconds,omitempty"`
	RefreshTokenLastUsed   time.Time      `json:"refresh_token_last_used,omitzero"`
	LastRefreshAt          time.Time      `json:"last_refresh_at,omitzero"`
	LastError              string         `json:"last_error,omitempty"`
	Subjects               int            `json:"subjects,omitempty"`
	Sessions               map[string]int `json:"sessions"`
	Authorize              bool           `json:"authorize"`
}

// protocols are always present in session maps, so a reader can index
// them without checking.
var protocols = []string{"imap", "pop3", "smtp"}

// snapshot reads the Source once and builds the scrubbed Status that both
// /status.json and the page render.
func (h *handler) snapshot() Status {
	now := h.now().UTC()
	st := Status{Schema: SchemaVersion, Time: now, Healthy: true,
		Sessions: sessionMap(h.src.Sessions()), Accounts: []Account{}, RecentErrors: []ErrorEntry{}}
	if err := h.src.Healthy(); err != nil {
		st.Healthy, st.Health = false, scrub(err.Error())
	}
	for _, a := range h.src.Accounts() {
		st.Accounts = append(st.Accounts, accountOf(a, now, sessionMap(h.src.AccountSessions(a.Account))))
	}
	for _, e := range h.src.RecentErrors() {
		st.RecentErrors = append(st.RecentErrors, ErrorEntry{Time: e.Time.UTC(), Message: scrub(e.Message), Attrs: scrubAttrs(e.Attrs)})
	}
	sort.SliceStable(st.RecentErrors, func(i, j int) bool { return st.RecentErrors[i].Time.After(st.RecentErrors[j].Time) })
	return st
}

func accountOf(a tokens.AccountStatus, now time.Time, sessions map[string]int) Account {
	out := Account{
		Account: a.Account, Flow: string(a.Flow), State: string(a.State),
		AccessExpiry: utc(a.AccessExpiry), ObtainedAt: utc(a.ObtainedAt),
		RefreshTokenIssuedAt: utc(a.RefreshTokenIssuedAt), RefreshTokenLastUsed: utc(a.RefreshTokenLastUsed),
		LastRefreshAt: utc(a.LastRefreshAt), LastError: scrub(a.LastError), Subjects: a.Subjects,
		Sessions: sessions, Authorize: a.Flow == tokens.FlowAuthCode,
	}
	if !a.AccessExpiry.IsZero() {
		out.AccessExpiresInSeconds = seconds(a.AccessExpiry.Sub(now))
	}
	if !a.RefreshTokenIssuedAt.IsZero() {
		out.RefreshTokenAgeSeconds = seconds(now.Sub(a.RefreshTokenIssuedAt))
	}
	return out
}

func seconds(d time.Duration) *int64 {
	s := int64(d / time.Second)
	return &s
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func sessionMap(in map[string]int) map[string]int {
	out := make(map[string]int, len(protocols)+len(in))
	for _, p := range protocols {
		out[p] = 0
	}
	for p, n := range in {
		out[p] = n
	}
	return out
}

func (h *handler) statusJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(h.snapshot()); err != nil {
		h.log.Debug("admin: writing status.json", "err", err)
	}
}
