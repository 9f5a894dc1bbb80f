package testpeers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// doveadmTimeout bounds one doveadm run.
const doveadmTimeout = 30 * time.Second

// runDoveadm runs doveadm against this instance's config with stdin and
// returns its stdout.
func (d *Dovecot) runDoveadm(stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), doveadmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.doveadmBin, append([]string{"-c", d.confPath}, args...)...)
	cmd.Env = d.env
	cmd.Dir = d.dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("testpeers: doveadm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.Bytes(), nil
}

// Deliver puts msg into user's INBOX, as a new, unseen message, the way
// local delivery would: IMAP sessions in IDLE see an EXISTS for it.
func (d *Dovecot) Deliver(user string, msg []byte) error {
	return d.Save(user, "INBOX", msg)
}

// Save puts msg into user's mailbox (which must exist; INBOX always does).
func (d *Dovecot) Save(user, mailbox string, msg []byte) error {
	_, err := d.runDoveadm(msg, "save", "-u", user, "-m", mailbox)
	return err
}

// CreateMailbox creates a mailbox for user.
func (d *Dovecot) CreateMailbox(user, mailbox string) error {
	_, err := d.runDoveadm(nil, "mailbox", "create", "-u", user, mailbox)
	return err
}

// Kick ends every session of user now (`doveadm kick`): the fault a real
// upstream produces when an admin or a shutdown cuts sessions. Dovecot's
// imap, pop3 and submission processes get SIGTERM and say goodbye as on
// shutdown. It fails when user had no session.
func (d *Dovecot) Kick(user string) error {
	out, err := d.runDoveadm(nil, "kick", user)
	if err != nil {
		return err
	}
	if !strings.Contains(string(out), user) {
		return fmt.Errorf("testpeers: doveadm kick %s: no session kicked: %q", user, out)
	}
	return nil
}

// MessageCount returns how many messages user's mailbox holds.
func (d *Dovecot) MessageCount(user, mailbox string) (int, error) {
	out, err := d.runDoveadm(nil, "-f", "flow", "mailbox", "status", "-u", user, "messages", mailbox)
	if err != nil {
		return 0, err
	}
	// flow format: "INBOX messages=N" (the mailbox name is printed bare).
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "messages="); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("testpeers: doveadm mailbox status: unexpected output %q", out)
}

// StoredMessage is one message as Dovecot stores it.
type StoredMessage struct {
	UID   uint32
	Flags string // space-separated, e.g. `\Seen \Deleted`
	// Text is the full message (header and body) with CRLF line ends, as
	// IMAP and POP3 serve it. (Dovecot stores bare LF: mail_save_crlf=no.)
	Text []byte
}

// Messages returns user's mailbox content in UID order.
func (d *Dovecot) Messages(user, mailbox string) ([]StoredMessage, error) {
	out, err := d.runDoveadm(nil, "-f", "json", "fetch", "-u", user, "uid flags text", "mailbox", mailbox)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		UID   string `json:"uid"`
		Flags string `json:"flags"`
		Text  string `json:"text"`
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("testpeers: doveadm fetch output: %w", err)
	}
	msgs := make([]StoredMessage, 0, len(rows))
	for _, r := range rows {
		uid, err := strconv.ParseUint(r.UID, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("testpeers: doveadm fetch uid %q: %w", r.UID, err)
		}
		msgs = append(msgs, StoredMessage{UID: uint32(uid), Flags: r.Flags, Text: toCRLF(r.Text)})
	}
	return msgs, nil
}

// WaitDelivered waits until the submission relay has delivered at least n
// messages in total and returns them all.
func (d *Dovecot) WaitDelivered(ctx context.Context, n int) ([]Message, error) {
	return d.capture.wait(ctx, n)
}

// toCRLF turns every bare LF of s into CRLF.
func toCRLF(s string) []byte {
	b := make([]byte, 0, len(s)+len(s)/32)
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b = append(b, '\r')
		}
		b = append(b, s[i])
	}
	return b
}
