package tokens

import (
	"fmt"
	"log/slog"
	"time"
)

// Record is what the store keeps for one account. It holds secrets: it
// formats and logs redacted (String, GoString, LogValue), but its fields
// must still never be logged one by one.
type Record struct {
	AccessToken  string    `json:"access_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"` // of the access token
	RefreshToken string    `json:"refresh_token,omitempty"`
	Flow         Flow      `json:"flow,omitempty"`
	Scopes       []string  `json:"scopes,omitempty"`

	ObtainedAt           time.Time `json:"obtained_at,omitzero"`             // consent (authorize) time
	RefreshTokenIssuedAt time.Time `json:"refresh_token_issued_at,omitzero"` // when the current refresh token was issued (rotation resets it)
	RefreshTokenLastUsed time.Time `json:"refresh_token_last_used,omitzero"` // last successful refresh with it
	LastRefreshAt        time.Time `json:"last_refresh_at,omitzero"`         // last refresh attempt, successful or not
	LastError            string    `json:"last_error,omitempty"`             // of the last attempt; never holds a secret
	ConsentRequired      bool      `json:"consent_required,omitempty"`       // the provider said invalid_grant: authorize again
}

// refreshTokenUsed is when the refresh token was last known to work, for
// the keepalive.
func (r *Record) refreshTokenUsed() time.Time {
	t := r.RefreshTokenLastUsed
	if r.RefreshTokenIssuedAt.After(t) {
		t = r.RefreshTokenIssuedAt
	}
	if r.ObtainedAt.After(t) {
		t = r.ObtainedAt
	}
	return t
}

func (r *Record) String() string {
	if r == nil {
		return "<nil>"
	}
	return fmt.Sprintf("tokens.Record{flow:%s expiry:%s has_refresh_token:%t consent_required:%t last_error:%q}",
		r.Flow, r.Expiry.Format(time.RFC3339), r.RefreshToken != "", r.ConsentRequired, r.LastError)
}

// GoString keeps %#v from printing the tokens.
func (r *Record) GoString() string { return r.String() }

// LogValue keeps slog from printing the tokens.
func (r *Record) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("flow", string(r.Flow)),
		slog.Time("expiry", r.Expiry),
		slog.Bool("has_refresh_token", r.RefreshToken != ""),
		slog.Bool("consent_required", r.ConsentRequired),
	)
}
