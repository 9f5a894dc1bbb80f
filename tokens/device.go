package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"golang.org/x/oauth2"
)

// DeviceOptions tune AuthorizeDevice.
type DeviceOptions struct {
	// Out gets the code and the address to enter it at (required).
	Out io.Writer
	// Timeout for the whole flow; default the code's lifetime as the
	// provider states it.
	Timeout time.Duration
	// Wait pauses between polls; nil uses a timer. Tests inject a clock.
	Wait func(ctx context.Context, d time.Duration) error
}

// AuthorizeDevice runs the device flow (RFC 8628) for spec: it prints the
// user code and the address where to enter it, polls the token endpoint at
// the announced interval (5 s longer after each slow_down, §3.5), and
// stores the tokens once the user has approved.
func (m *Manager) AuthorizeDevice(ctx context.Context, spec AccountSpec, opts DeviceOptions) error {
	a, err := newAccount(spec, m.opts.HTTPClient)
	if err != nil {
		return err
	}
	name := spec.Name
	if spec.DeviceAuthURL == "" || !spec.Flow.persisted() {
		e := &Error{Account: name, Op: "device", Description: "the provider has no device authorization endpoint for this account",
			Fix: fmt.Sprintf("run \"oauthbridge authorize %s --no-browser\" and paste the address the browser ends on", name)}
		if a.googleTokenURL() {
			e.Description += " (Google does not allow the Gmail scope https://mail.google.com/ in the device flow)"
		}
		return e
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	wait := opts.Wait
	if wait == nil {
		wait = sleep
	}
	da, err := a.oauthConfig("").DeviceAuth(a.httpContext(ctx))
	if err != nil {
		return classify(a, "device", err)
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	} else if !da.Expiry.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, da.Expiry)
		defer cancel()
	}
	fmt.Fprintf(out, "To authorize %s, open %s and enter the code %s\n", name, da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(out, "(or open %s)\n", da.VerificationURIComplete)
	}
	fmt.Fprintln(out, "Waiting for approval...")

	// RFC 8628 §3.2: 5 seconds when the server names no interval.
	interval := time.Duration(da.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	form := url.Values{"grant_type": {grantDeviceCode}, "device_code": {da.DeviceCode}, "client_id": {spec.ClientID}}
	if spec.ClientSecret != "" {
		form.Set("client_secret", spec.ClientSecret)
	}
	again := fmt.Sprintf("run \"oauthbridge authorize %s --device\" again", name)
	for {
		if err := wait(ctx, interval); err != nil {
			return &Error{Account: name, Op: "device", Description: "not approved in time", Fix: again, err: err}
		}
		tok, err := tokenRequest(ctx, a.client, a.tokenURL, form)
		if err == nil {
			if err := m.saveAuthorized(ctx, a, tok, FlowDevice); err != nil {
				return err
			}
			fmt.Fprintf(out, "Authorized %s: tokens stored.\n", name)
			return nil
		}
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
			switch re.ErrorCode {
			case "authorization_pending":
				continue
			case "slow_down":
				interval += 5 * time.Second
				continue
			case "access_denied":
				return &Error{Account: name, Op: "device", Code: re.ErrorCode, Description: "the sign-in was refused", Fix: again}
			case "expired_token":
				return &Error{Account: name, Op: "device", Code: re.ErrorCode, Description: "the code expired before it was approved", Fix: again}
			}
		}
		e := classify(a, "device", err)
		if !e.temporary {
			return e
		}
		// §3.5: back off on connection trouble, then keep polling.
		interval = min(2*interval, time.Minute)
		m.log.Warn("device flow poll failed, will retry", "account", name, "err", e.Error())
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
