package bench

import (
	"fmt"
	"time"

	"github.com/oauthbridge/oauthbridge/bench/wire"
)

// loginTarget is DESIGN §7's bound on what a repeat login through the
// bridge (cached app password, warm token) may add to the upstream's
// XOAUTH2 exchange.
const loginTarget = 2 * time.Millisecond

// measureLogin times complete logins on fresh connections: directly
// (TCP, TLS handshake, greeting, AUTHENTICATE XOAUTH2 with SASL-IR) and
// through the bridge (TCP, greeting, LOGIN, during which the bridge does
// the upstream's TLS handshake, greeting, CAPABILITY and XOAUTH2). Then
// LOGOUT. The bridge's password cache and token are warm: the warm-up
// logins before the timed ones paid the one argon2 run.
func (t *target) measureLogin() error {
	type sample struct{ login, total time.Duration }
	direct := func() (sample, error) {
		start := time.Now()
		c, err := wire.DialIMAP(t.up.info.IMAP, t.up.tls, 4<<10)
		if err != nil {
			return sample{}, err
		}
		defer c.Close()
		if err := c.AuthXOAuth2(fetchUser, t.up.info.Tokens[fetchUser]); err != nil {
			return sample{}, fmt.Errorf("bench: direct login: %w", err)
		}
		login := time.Since(start)
		if err := c.Logout(); err != nil {
			return sample{}, fmt.Errorf("bench: direct LOGOUT: %w", err)
		}
		return sample{login, time.Since(start)}, nil
	}
	bridged := func() (sample, error) {
		start := time.Now()
		c, err := wire.DialIMAP(t.br.info.IMAP, nil, 4<<10)
		if err != nil {
			return sample{}, err
		}
		defer c.Close()
		if err := c.Login(fetchUser, appPassword); err != nil {
			return sample{}, fmt.Errorf("bench: bridge login: %w", err)
		}
		login := time.Since(start)
		if err := c.Logout(); err != nil {
			return sample{}, fmt.Errorf("bench: bridge LOGOUT: %w", err)
		}
		return sample{login, time.Since(start)}, nil
	}
	n := t.cfg.LoginSamples
	var d, b [2][]time.Duration // [0] login, [1] login + LOGOUT
	stop := func() {}
	for i := -5; i < n; i++ { // five warm-up pairs
		if i == 0 {
			stop = t.profile(MeasureLogin)
		}
		first, second := direct, bridged
		if i%2 != 0 {
			first, second = bridged, direct
		}
		x, err := first()
		if err != nil {
			stop()
			return err
		}
		y, err := second()
		if err != nil {
			stop()
			return err
		}
		if i%2 != 0 {
			x, y = y, x
		}
		if i >= 0 {
			d[0], d[1] = append(d[0], x.login), append(d[1], x.total)
			b[0], b[1] = append(b[0], y.login), append(b[1], y.total)
		}
	}
	stop()
	cmd := t.cfg.command(t.name(), MeasureLogin)
	for _, p := range []float64{50, 99} {
		dp, bp := percentile(d[0], p), percentile(b[0], p)
		row := Row{Upstream: t.name(), Command: cmd,
			What:   fmt.Sprintf("login, connect to authenticated, p%.0f (direct XOAUTH2 vs bridge LOGIN, warm token; %d each)", p, n),
			Direct: fmtDur(dp), Bridge: fmtDur(bp), Delta: fmtDelta(bp - dp)}
		if p == 50 {
			row.Target, row.Met = "added ≤ "+fmtDur(loginTarget), verdict(bp-dp <= loginTarget)
		}
		t.rep.add(row)
	}
	dp, bp := percentile(d[1], 50), percentile(b[1], 50)
	t.rep.add(Row{Upstream: t.name(), Command: cmd,
		What:   "login + LOGOUT, connect to tagged LOGOUT OK, p50",
		Direct: fmtDur(dp), Bridge: fmtDur(bp), Delta: fmtDelta(bp - dp)})
	return nil
}
