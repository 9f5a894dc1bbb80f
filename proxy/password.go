package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters of a password hash.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultArgon2 is what HashPassword uses: OWASP's first argon2id
// recommendation (m=19 MiB, t=2, p=1), which costs about 30ms on one core
// of the 2-core reference machine (BenchmarkHashPassword).
//
// Why not RFC 9106's m=64 MiB, t=3, p=4: that is ~200ms here and 64 MiB
// per concurrent login, and a cached login never runs argon2 anyway, so
// the cost only matters for first logins and guesses; 19 MiB x the argon2
// concurrency bound (LocalAuth) keeps memory small under a guessing flood.
// One lane (p=1) leaves the second core to the relays during a login.
var DefaultArgon2 = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on parameters read from config, so a typo (m=1000000000) cannot
// make every login allocate gigabytes.
const (
	maxArgon2Memory  = 1 << 20 // KiB: 1 GiB
	maxArgon2Time    = 64
	maxArgon2Threads = 64
)

// ErrBadHash is matched by errors for hash strings that are not argon2id
// PHC strings this package can verify.
var ErrBadHash = errors.New("proxy: not an argon2id password hash")

// HashPassword returns an argon2id PHC string for pw with DefaultArgon2:
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (salt and hash in
// unpadded standard base64, as the PHC string format specifies).
func HashPassword(pw string) (string, error) {
	return HashPasswordParams(pw, DefaultArgon2)
}

// HashPasswordParams is HashPassword with explicit parameters.
func HashPasswordParams(pw string, p Argon2Params) (string, error) {
	if pw == "" {
		return "", errors.New("proxy: empty password")
	}
	h := &phcHash{Argon2Params: p, salt: make([]byte, p.SaltLen)}
	if err := h.check(); err != nil {
		return "", err
	}
	rand.Read(h.salt)
	h.key = h.derive(pw)
	return h.String(), nil
}

// VerifyPassword reports whether pw matches the PHC string phc. The
// comparison is constant time; the error is for a malformed phc only.
func VerifyPassword(phc, pw string) (bool, error) {
	h, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	return h.verify(pw), nil
}

// phcHash is a parsed argon2id PHC string.
type phcHash struct {
	Argon2Params
	salt, key []byte
}

func (h *phcHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.Memory, h.Time, h.Threads,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

func (h *phcHash) derive(pw string) []byte {
	return argon2.IDKey([]byte(pw), h.salt, h.Time, h.Memory, h.Threads, h.KeyLen)
}

func (h *phcHash) verify(pw string) bool {
	return subtle.ConstantTimeCompare(h.derive(pw), h.key) == 1
}

func (h *phcHash) check() error {
	switch {
	case h.Threads < 1 || h.Threads > maxArgon2Threads:
		return fmt.Errorf("%w: p=%d out of range 1..%d", ErrBadHash, h.Threads, maxArgon2Threads)
	case h.Time < 1 || h.Time > maxArgon2Time:
		return fmt.Errorf("%w: t=%d out of range 1..%d", ErrBadHash, h.Time, maxArgon2Time)
	case h.Memory < 8*uint32(h.Threads) || h.Memory > maxArgon2Memory:
		return fmt.Errorf("%w: m=%d out of range %d..%d KiB", ErrBadHash, h.Memory, 8*uint32(h.Threads), maxArgon2Memory)
	case h.SaltLen < 8 || h.SaltLen > 64:
		return fmt.Errorf("%w: salt of %d bytes (want 8..64)", ErrBadHash, h.SaltLen)
	case h.KeyLen < 16 || h.KeyLen > 64:
		return fmt.Errorf("%w: hash of %d bytes (want 16..64)", ErrBadHash, h.KeyLen)
	}
	return nil
}

// parsePHC parses "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH". The error never
// quotes the input: a misplaced plain password must not reach a log.
func parsePHC(s string) (*phcHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return nil, fmt.Errorf("%w: want $argon2id$v=19$m=...,t=...,p=...$salt$hash", ErrBadHash)
	}
	if parts[1] != "argon2id" {
		return nil, fmt.Errorf("%w: algorithm is not argon2id", ErrBadHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("%w: version is not v=%d", ErrBadHash, argon2.Version)
	}
	h := &phcHash{}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("%w: malformed parameters", ErrBadHash)
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: malformed parameter %s", ErrBadHash, k)
		}
		switch k {
		case "m":
			h.Memory = uint32(n)
		case "t":
			h.Time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("%w: p out of range", ErrBadHash)
			}
			h.Threads = uint8(n)
		default:
			return nil, fmt.Errorf("%w: unknown parameter %s", ErrBadHash, k)
		}
	}
	if len(seen) != 3 {
		return nil, fmt.Errorf("%w: want parameters m, t and p", ErrBadHash)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return nil, fmt.Errorf("%w: salt is not unpadded base64", ErrBadHash)
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil {
		return nil, fmt.Errorf("%w: hash is not unpadded base64", ErrBadHash)
	}
	h.SaltLen, h.KeyLen = uint32(len(h.salt)), uint32(len(h.key))
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}
