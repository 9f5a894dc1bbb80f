package testpeers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one message the capture server accepted from Dovecot's
// submission relay: the envelope and the data as received.
type Message struct {
	From string
	To   []string
	Data []byte
}

// captureServer is the SMTP server Dovecot's submission service relays to
// (submission_relay_host): whatever reaches it counts as delivered.
type captureServer struct {
	srv  *smtp.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned

	mu      sync.Mutex    // guards msgs and changed
	msgs    []Message     // accepted, in order
	changed chan struct{} // closed and replaced on every accepted message
}

func newCaptureServer(errLog io.Writer) (*captureServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testpeers: capture listen: %w", err)
	}
	c := &captureServer{ln: ln, done: make(chan struct{}), changed: make(chan struct{})}
	c.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &captureSession{c: c}, nil
	}))
	c.srv.Domain = "capture.localhost"
	c.srv.MaxMessageBytes = 256 << 20
	c.srv.ReadTimeout = time.Minute
	c.srv.WriteTimeout = time.Minute
	c.srv.EnableSMTPUTF8 = true
	c.srv.ErrorLog = log.New(errLog, "capture smtp: ", 0)
	go func() {
		defer close(c.done)
		_ = c.srv.Serve(ln) // returns smtp.ErrServerClosed on close
	}()
	return c, nil
}

func (c *captureServer) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

func (c *captureServer) close() {
	_ = c.srv.Close()
	<-c.done
}

func (c *captureServer) add(m Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *captureServer) snapshot() ([]Message, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...), c.changed
}

// wait returns once at least n messages were accepted.
func (c *captureServer) wait(ctx context.Context, n int) ([]Message, error) {
	for {
		msgs, changed := c.snapshot()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return msgs, fmt.Errorf("testpeers: %d of %d messages delivered: %w", len(msgs), n, ctx.Err())
		}
	}
}

// captureSession records one SMTP transaction.
type captureSession struct {
	c    *captureServer
	from string
	to   []string
}

func (s *captureSession) Reset()        { s.from, s.to = "", nil }
func (s *captureSession) Logout() error { return nil }

func (s *captureSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *captureSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *captureSession) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "read failed"}
	}
	s.c.add(Message{From: s.from, To: append([]string(nil), s.to...), Data: b.Bytes()})
	return nil
}
