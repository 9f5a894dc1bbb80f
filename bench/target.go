package bench

import (
	"fmt"
	"path/filepath"

	"github.com/emersion/go-sasl"

	"github.com/oauthbridge/oauthbridge/bench/wire"
)

// target is one upstream with a bridge child in front of it: every
// measurement opens the same kind of session twice, directly to the
// upstream (TLS, XOAUTH2 with the token the bridge also has) and through
// the bridge (plaintext loopback, the app password), the way a client
// would use each.
type target struct {
	cfg *Config
	rep *Report
	up  *upstream
	br  *bridge
}

func (t *target) name() string { return t.up.info.Name }

func (t *target) imapDirect(user string, bufSize int) (*wire.IMAP, error) {
	c, err := wire.DialIMAP(t.up.info.IMAP, t.up.tls, bufSize)
	if err != nil {
		return nil, err
	}
	if err := c.AuthXOAuth2(user, t.up.info.Tokens[user]); err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: direct login as %s: %w", user, err)
	}
	return c, nil
}

func (t *target) imapBridge(user string, bufSize int) (*wire.IMAP, error) {
	c, err := wire.DialIMAP(t.br.info.IMAP, nil, bufSize)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, appPassword); err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: bridge login as %s: %w", user, err)
	}
	return c, nil
}

// imapPair opens a direct and a bridged session as user with INBOX
// selected.
func (t *target) imapPair(user string, bufSize int) (direct, bridged *wire.IMAP, err error) {
	if direct, err = t.imapDirect(user, bufSize); err != nil {
		return nil, nil, err
	}
	if bridged, err = t.imapBridge(user, bufSize); err != nil {
		direct.Close()
		return nil, nil, err
	}
	for _, c := range []*wire.IMAP{direct, bridged} {
		if _, err := c.Do("SELECT INBOX", nil); err != nil {
			direct.Close()
			bridged.Close()
			return nil, nil, fmt.Errorf("bench: SELECT: %w", err)
		}
	}
	return direct, bridged, nil
}

// profile starts a CPU profile of the bridge child when -profile is set;
// the returned function stops it and notes the file.
func (t *target) profile(what string) func() {
	return profileBridge(t.cfg, t.rep, t.br, t.name()+"-"+what)
}

func profileBridge(cfg *Config, rep *Report, br *bridge, name string) func() {
	if cfg.ProfileDir == "" {
		return func() {}
	}
	file := filepath.Join(cfg.ProfileDir, name+".cpu.pprof")
	stop, err := br.debug.cpuProfile(file)
	if err != nil {
		rep.note("CPU profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		if err := stop(); err != nil {
			rep.note("CPU profile %s: %v", name, err)
			return
		}
		rep.note("bridge CPU profile: %s", file)
	}
}

// xoauth2 is a go-sasl client for the direct SMTP path, written from the
// wire format rather than taken from the bridge.
type xoauth2 struct{ user, token string }

var _ sasl.Client = xoauth2{}

func (x xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", wire.XOAuth2(x.user, x.token), nil
}

// Next answers an error challenge with an empty response; the server's
// failure reply follows.
func (x xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }

func plainClient(user string) sasl.Client { return sasl.NewPlainClient("", user, appPassword) }
