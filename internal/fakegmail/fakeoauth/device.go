package fakeoauth

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// deviceCode is one RFC 8628 device authorization.
type deviceCode struct {
	clientID, scope, userCode string
	expiry                    time.Time
	interval                  time.Duration // grows by 5 s per slow_down (§3.5)
	lastPoll                  time.Time
	approvedFor               string // user who approved; "" while pending
	denied, used              bool
}

// handleDevice is the device authorization endpoint (RFC 8628 §3.1-3.2).
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, errInvalidRequest("malformed form body"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clientID, oe := s.authClientLocked(r, r.PostForm, false)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	scope := r.PostForm.Get("scope")
	if scope == "" {
		writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "scope is required"})
		return
	}
	dc := &deviceCode{clientID: clientID, scope: scope, userCode: newUserCode(),
		expiry: s.now().Add(s.opts.DeviceCodeLifetime), interval: s.opts.DeviceInterval}
	device := "fake-dc-" + randomString(24)
	s.devices[device] = dc
	s.userCodes[dc.userCode] = dc
	verify := s.url + "/activate"
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               device,
		"user_code":                 dc.userCode,
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + url.QueryEscape(dc.userCode),
		"expires_in":                int64(s.opts.DeviceCodeLifetime.Seconds()),
		"interval":                  int64(dc.interval.Seconds()),
	})
}

// newUserCode is 8 characters from an alphabet without vowels and
// look-alikes, shown as XXXX-XXXX (RFC 8628 §6.1).
func newUserCode() string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	out := make([]byte, 0, 9)
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}

// pollDeviceLocked answers a device access token request (RFC 8628 §3.4-3.5).
func (s *Server) pollDeviceLocked(r *http.Request, form url.Values) (*tokenResponse, *oauthError) {
	clientID, oe := s.authClientLocked(r, form, false)
	if oe != nil {
		return nil, oe
	}
	dc := s.devices[form.Get("device_code")]
	now := s.now()
	pollErr := func(code string) *oauthError {
		return &oauthError{status: http.StatusBadRequest, code: code, desc: code}
	}
	switch {
	case dc == nil || dc.clientID != clientID:
		return nil, errInvalidGrant("unknown device code")
	case dc.used:
		return nil, errInvalidGrant("device code already used")
	case !now.Before(dc.expiry):
		return nil, pollErr("expired_token")
	}
	tooFast := !dc.lastPoll.IsZero() && now.Sub(dc.lastPoll) < dc.interval
	dc.lastPoll = now
	if s.slowDownNext > 0 || tooFast {
		if s.slowDownNext > 0 {
			s.slowDownNext--
		}
		dc.interval += 5 * time.Second
		return nil, pollErr("slow_down")
	}
	switch {
	case dc.denied:
		return nil, pollErr("access_denied")
	case dc.approvedFor == "":
		return nil, pollErr("authorization_pending")
	}
	dc.used = true
	g := s.newGrantLocked(dc.approvedFor, clientID, dc.scope)
	return s.grantTokensLocked(g, true), nil
}

// ErrUnknownUserCode is returned by ApproveDevice and DenyDevice.
var ErrUnknownUserCode = errors.New("fakeoauth: unknown or expired user code")

// ApproveDevice approves a pending device authorization as user.
func (s *Server) ApproveDevice(userCode, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc := s.userCodes[userCode]
	if dc == nil || dc.used || !s.now().Before(dc.expiry) {
		return ErrUnknownUserCode
	}
	dc.approvedFor = user
	return nil
}

// DenyDevice refuses a pending device authorization (the user clicked
// "Cancel").
func (s *Server) DenyDevice(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc := s.userCodes[userCode]
	if dc == nil || dc.used {
		return ErrUnknownUserCode
	}
	dc.denied = true
	return nil
}

// handleActivate is the verification URI: GET ?user_code=X&user=U approves
// (for manual runs with curl; tests call ApproveDevice).
func (s *Server) handleActivate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	user := q.Get("user")
	if user == "" {
		user = s.opts.DefaultUser
	}
	if err := s.ApproveDevice(q.Get("user_code"), user); err != nil {
		http.Error(w, "unknown or expired code", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("Device approved. You may close this window.\n"))
}
