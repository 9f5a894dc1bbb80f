package bench

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// smtpTarget is issue 3's bound for submission through the bridge.
const smtpTarget = 0.9

// measureSMTP sends small messages over one session per path, in blocks
// that alternate between the paths, and compares messages per second.
// go-smtp's client is used on both sides: it is what the bridge's tests
// use as the legacy client, and it does not pipeline, so each message
// costs MAIL, RCPT and DATA round trips on either path.
func (t *target) measureSMTP() error {
	raw, err := net.DialTimeout("tcp", t.up.info.SMTP, 30*time.Second)
	if err != nil {
		return err
	}
	direct := gosmtp.NewClient(tls.Client(raw, t.up.tls))
	defer direct.Close()
	if err := direct.Hello("client.bench.test"); err != nil {
		return fmt.Errorf("bench: direct EHLO: %w", err)
	}
	if err := direct.Auth(xoauth2{smtpUser, t.up.info.Tokens[smtpUser]}); err != nil {
		return fmt.Errorf("bench: direct SMTP login: %w", err)
	}
	bridged, err := gosmtp.Dial(t.br.info.SMTP)
	if err != nil {
		return err
	}
	defer bridged.Close()
	if err := bridged.Hello("client.bench.test"); err != nil {
		return fmt.Errorf("bench: bridge EHLO: %w", err)
	}
	if err := bridged.Auth(plainClient(smtpUser)); err != nil {
		return fmt.Errorf("bench: bridge SMTP login: %w", err)
	}
	msg := message(smtpUser, 0, 1<<10)
	send := func(c *gosmtp.Client) error {
		if err := c.Mail(smtpUser, nil); err != nil {
			return err
		}
		if err := c.Rcpt("rcpt@"+benchDomain, nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write(msg); err != nil {
			return err
		}
		return w.Close()
	}
	// Blocks of 50 (fewer when fewer are asked for), alternating which
	// path goes first.
	n := t.cfg.SMTPMessages
	block := min(50, n)
	paths := [2]*gosmtp.Client{direct, bridged}
	var elapsed [2]time.Duration
	var sent [2]int
	run := func(p, k int) error {
		start := time.Now()
		for range k {
			if err := send(paths[p]); err != nil {
				return fmt.Errorf("bench: message %d (path %d): %w", sent[p]+1, p, err)
			}
			sent[p]++
		}
		elapsed[p] += time.Since(start)
		return nil
	}
	for p := range paths { // warm-up
		if err := run(p, 5); err != nil {
			return err
		}
	}
	elapsed, sent = [2]time.Duration{}, [2]int{}
	stop := t.profile(MeasureSMTP)
	for b := 0; sent[0] < n; b++ {
		k := min(block, n-sent[0])
		for _, p := range [2][2]int{{0, 1}, {1, 0}}[b%2] {
			if err := run(p, k); err != nil {
				stop()
				return err
			}
		}
	}
	stop()
	dr := float64(sent[0]) / elapsed[0].Seconds()
	br := float64(sent[1]) / elapsed[1].Seconds()
	ratio := br / dr
	t.rep.add(Row{
		Upstream: t.name(),
		What:     fmt.Sprintf("SMTP: %d messages of 1 KiB over one session (messages/s)", n),
		Direct:   fmt.Sprintf("%.0f/s", dr), Bridge: fmt.Sprintf("%.0f/s", br), Delta: fmtRatio(ratio),
		Target: fmt.Sprintf("≥ %.1f× direct", smtpTarget), Met: verdict(ratio >= smtpTarget),
		Command: t.cfg.command(t.name(), MeasureSMTP),
	})
	return nil
}
