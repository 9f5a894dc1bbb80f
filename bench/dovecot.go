package bench

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// DovecotAvailable reports whether the dovecot binaries are installed.
func DovecotAvailable() bool {
	_, err1 := testpeers.LookPath("dovecot")
	_, err2 := testpeers.LookPath("doveadm")
	return err1 == nil && err2 == nil
}

// startDovecot starts a private Dovecot through the test harness
// (internal/testpeers) and seeds it per spec. Dovecot is its own set of
// processes; its token introspection endpoint runs in this process.
func startDovecot(spec upstreamSpec, logTo io.Writer) (up *upstream, err error) {
	tb := &harnessTB{log: logTo}
	defer func() {
		if r := recover(); r != nil {
			tb.runCleanups()
			if a, ok := r.(tbAbort); ok {
				err = fmt.Errorf("bench: dovecot: %s", a)
				return
			}
			err = fmt.Errorf("bench: dovecot harness: %v", r)
		}
	}()
	users := make([]string, len(spec.Mailboxes))
	for i, m := range spec.Mailboxes {
		users[i] = m.User
	}
	d := testpeers.StartDovecot(tb, testpeers.DovecotOptions{Users: users})
	info := upstreamInfo{
		Name: "dovecot", IMAP: d.IMAPAddr(), POP3: d.POP3Addr(), SMTP: d.SMTPAddr(),
		CAPEM: d.CACertPEM(), Tokens: map[string]string{}, UIDs: map[string][]uint32{},
		Expiry: time.Now().Add(tokenLifetime), // Dovecot's test tokens do not expire
	}
	for _, m := range spec.Mailboxes {
		info.Tokens[m.User] = d.Token(m.User)
		for i, size := range m.Sizes {
			if err := d.Save(m.User, "INBOX", message(m.User, i, size)); err != nil {
				tb.Fatalf("seeding %s: %v", m.User, err)
			}
		}
		if len(m.Sizes) == 0 {
			continue
		}
		msgs, err := d.Messages(m.User, "INBOX")
		if err != nil || len(msgs) != len(m.Sizes) {
			tb.Fatalf("listing %s: %d messages, %v", m.User, len(msgs), err)
		}
		for _, msg := range msgs {
			info.UIDs[m.User] = append(info.UIDs[m.User], msg.UID)
		}
	}
	cfg, err := info.clientTLS()
	if err != nil {
		tb.runCleanups()
		return nil, err
	}
	return &upstream{info: info, tls: cfg, stop: tb.runCleanups}, nil
}

// harnessTB lets a program use the testpeers harness, which is written for
// tests: Fatal and Skip abort with a panic that startDovecot recovers,
// cleanups run when the benchmark is done with Dovecot. Methods the
// harness does not call are left to the nil embedded TB (calling one
// panics, which startDovecot reports as an error too).
type harnessTB struct {
	testing.TB
	log      io.Writer
	cleanups []func()
}

type tbAbort string

func (t *harnessTB) Helper()           {}
func (t *harnessTB) Name() string      { return "oauthbridge-bench" }
func (t *harnessTB) Cleanup(f func())  { t.cleanups = append(t.cleanups, f) }
func (t *harnessTB) Failed() bool      { return false }
func (t *harnessTB) Skipped() bool     { return false }
func (t *harnessTB) Log(args ...any)   { t.Logf("%s", fmt.Sprint(args...)) }
func (t *harnessTB) Error(args ...any) { t.Log(args...) }
func (t *harnessTB) Fatal(args ...any) { panic(tbAbort(fmt.Sprint(args...))) }
func (t *harnessTB) Skip(args ...any)  { panic(tbAbort(fmt.Sprint(args...))) }
func (t *harnessTB) FailNow()          { panic(tbAbort("failed")) }
func (t *harnessTB) SkipNow()          { panic(tbAbort("skipped")) }

func (t *harnessTB) Logf(format string, args ...any) {
	if t.log != nil {
		fmt.Fprintf(t.log, "dovecot harness: "+format+"\n", args...)
	}
}
func (t *harnessTB) Errorf(format string, args ...any) { t.Logf(format, args...) }
func (t *harnessTB) Fatalf(format string, args ...any) {
	panic(tbAbort(fmt.Sprintf(format, args...)))
}
func (t *harnessTB) Skipf(format string, args ...any) {
	panic(tbAbort(fmt.Sprintf(format, args...)))
}

// runCleanups runs the harness's cleanups, last first, once.
func (t *harnessTB) runCleanups() {
	for len(t.cleanups) > 0 {
		f := t.cleanups[len(t.cleanups)-1]
		t.cleanups = t.cleanups[:len(t.cleanups)-1]
		f()
	}
}

var errNoDovecot = errors.New("bench: dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d dovecot-submissiond)")
