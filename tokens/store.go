package tokens

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrNoToken means no token file exists for the account: it was never
// authorized.
var ErrNoToken = errors.New("tokens: no stored token")

// Store keeps one encrypted file per account under <state_dir>/tokens.
//
// Files are XChaCha20-Poly1305 sealed under a 32-byte master key, with the
// account name as additional data, so a file copied to another account's
// name does not open. Writes are atomic (temp file in the same directory,
// fsync, rename, fsync of the directory): a reader sees the old record or
// the new one, never a mix, even when the writer is killed.
//
// Several processes (the daemon and the authorize CLI) may use one store at
// once; Lock serialises their read-modify-write cycles per account.
type Store struct {
	dir  string // <state_dir>/tokens
	aead cipher.AEAD
}

const (
	fileMagic   = "OBT1" // format version 1: magic | 24-byte nonce | sealed JSON Record
	tokenSuffix = ".token"
	lockSuffix  = ".lock"
	tmpMarker   = ".tmp-"
	keySize     = chacha20poly1305.KeySize
	maxFileSize = 1 << 20 // a record is a few KB; refuse to read more
)

// OpenStore opens (creating when missing) the store in stateDir with the
// master key in keyFile ("" means <stateDir>/master.key).
//
// It refuses to open, with an error naming the path and the chmod that
// fixes it, when the tokens directory is accessible by group or others, or
// the key or a token file is readable by them. stateDir itself is created
// 0700 but not checked: systemd's StateDirectory= is 0755 by default, and
// every secret inside it is protected on its own.
func OpenStore(stateDir, keyFile string) (*Store, error) {
	if stateDir == "" {
		return nil, errors.New("tokens: no state directory")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("tokens: state directory: %w", err)
	}
	dir := filepath.Join(stateDir, "tokens")
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("tokens: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("tokens: directory %s is accessible by group or others (mode %04o): run \"chmod 700 %s\"",
			dir, fi.Mode().Perm(), dir)
	}
	if keyFile == "" {
		keyFile = filepath.Join(stateDir, "master.key")
	}
	key, err := loadOrCreateKey(keyFile)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	s := &Store{dir: dir, aead: aead}
	if err := s.checkFiles(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is the directory holding the token files.
func (s *Store) Dir() string { return s.dir }

// checkFiles refuses token files readable by group or others, and removes
// temp files that a killed writer left behind an hour or more ago (a live
// writer renames its temp file within milliseconds).
func (s *Store) checkFiles() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		p := filepath.Join(s.dir, name)
		switch {
		case strings.HasSuffix(name, tokenSuffix):
			if err := checkPrivate(p, fi); err != nil {
				return err
			}
		case strings.Contains(name, tmpMarker) && time.Since(fi.ModTime()) > time.Hour:
			_ = os.Remove(p)
		}
	}
	return nil
}

func checkPrivate(path string, fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("tokens: %s is readable by group or others (mode %04o): run \"chmod 600 %s\"",
			path, fi.Mode().Perm(), path)
	}
	return nil
}

// loadOrCreateKey reads the 32-byte master key, creating it when missing.
// Creation writes a temp file, fsyncs it and publishes it with link(2),
// which fails when the name exists: of a CLI and a daemon racing to create
// the key, one wins and both then read the same complete key (a plain
// O_EXCL create would let the loser read a file not yet written).
func loadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tmpMarker+"*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	key = make([]byte, keySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		f.Close()
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path) // another process won the race
		}
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	return key, nil
}

func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	key, err := io.ReadAll(io.LimitReader(f, keySize+1))
	if err != nil {
		return nil, fmt.Errorf("tokens: master key: %w", err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("tokens: master key %s has %d bytes, want %d (restore it from a backup, or delete it and every token file, then authorize again)",
			path, len(key), keySize)
	}
	return key, nil
}

// fileName maps an account name to a file name: letters, digits and
// "@._+-" are kept, everything else is %XX, and a leading dot is escaped so
// that no account can name a hidden or temp file.
func fileName(account string) string {
	var b strings.Builder
	for i := 0; i < len(account); i++ {
		c := account[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("@_+-", c) >= 0 || (c == '.' && i > 0)
		if ok {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (s *Store) path(account string) string {
	return filepath.Join(s.dir, fileName(account)+tokenSuffix)
}

// additionalData binds a sealed record to its account name.
func additionalData(account string) []byte {
	return []byte("oauthbridge token v1\x00" + account)
}

// fileVersion identifies one written state of a token file. Every write
// replaces the file (rename), so the inode changes even when two writes
// fall in the same clock tick. The zero fileVersion means "no file".
type fileVersion struct {
	ino, size int64
	mtime     int64
}

func versionOf(fi fs.FileInfo) fileVersion {
	v := fileVersion{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		v.ino = int64(st.Ino)
	}
	return v
}

// version stats an account's file: the cheap check for "did another
// process write it?". Missing file: zero fileVersion.
func (s *Store) version(account string) (fileVersion, error) {
	fi, err := os.Stat(s.path(account))
	if errors.Is(err, fs.ErrNotExist) {
		return fileVersion{}, nil
	}
	if err != nil {
		return fileVersion{}, fmt.Errorf("tokens: %w", err)
	}
	return versionOf(fi), nil
}

// Load reads and decrypts an account's record. It returns an error
// matching ErrNoToken when there is none.
func (s *Store) Load(account string) (*Record, error) {
	r, _, err := s.load(account)
	return r, err
}

func (s *Store) load(account string) (*Record, fileVersion, error) {
	p := s.path(account)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileVersion{}, fmt.Errorf("%w for %s", ErrNoToken, account)
	}
	if err != nil {
		return nil, fileVersion{}, fmt.Errorf("tokens: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileVersion{}, fmt.Errorf("tokens: %w", err)
	}
	if err := checkPrivate(p, fi); err != nil {
		return nil, fileVersion{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize))
	if err != nil {
		return nil, fileVersion{}, fmt.Errorf("tokens: %w", err)
	}
	r, err := s.open(account, data)
	if err != nil {
		return nil, fileVersion{}, fmt.Errorf("tokens: %s: %w", p, err)
	}
	return r, versionOf(fi), nil
}

func (s *Store) open(account string, data []byte) (*Record, error) {
	ns := s.aead.NonceSize()
	if len(data) < len(fileMagic)+ns+s.aead.Overhead() || !bytes.HasPrefix(data, []byte(fileMagic)) {
		return nil, errors.New("not a token file")
	}
	data = data[len(fileMagic):]
	plain, err := s.aead.Open(nil, data[:ns], data[ns:], additionalData(account))
	if err != nil {
		return nil, errors.New("cannot decrypt: wrong master key, damaged file, or a file of another account")
	}
	var r Record
	if err := json.Unmarshal(plain, &r); err != nil {
		return nil, fmt.Errorf("bad record: %w", err)
	}
	return &r, nil
}

func (s *Store) seal(account string, r *Record) ([]byte, error) {
	plain, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	ns := s.aead.NonceSize()
	out := make([]byte, len(fileMagic)+ns, len(fileMagic)+ns+len(plain)+s.aead.Overhead())
	copy(out, fileMagic)
	if _, err := io.ReadFull(rand.Reader, out[len(fileMagic):]); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out[len(fileMagic):], plain, additionalData(account)), nil
}

// Save writes an account's record atomically. Callers that read, modify and
// write hold Lock around the whole cycle.
func (s *Store) Save(account string, r *Record) error {
	_, err := s.save(account, r)
	return err
}

func (s *Store) save(account string, r *Record) (fileVersion, error) {
	data, err := s.seal(account, r)
	if err != nil {
		return fileVersion{}, fmt.Errorf("tokens: seal: %w", err)
	}
	final := s.path(account)
	f, err := os.CreateTemp(s.dir, "."+fileName(account)+tmpMarker+"*") // mode 0600
	if err != nil {
		return fileVersion{}, fmt.Errorf("tokens: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	var fi fs.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return fileVersion{}, fmt.Errorf("tokens: write %s: %w", final, err)
	}
	// The rename is durable only once the directory is synced.
	if err := syncDir(s.dir); err != nil {
		return fileVersion{}, fmt.Errorf("tokens: write %s: %w", final, err)
	}
	// Rename keeps the inode, size and mtime of the temp file.
	return versionOf(fi), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Lock takes the account's cross-process lock (flock(2) on
// <account>.lock), waiting until ctx is done. The returned func releases
// it. flock has no wake-up that a context can interrupt, so waiting polls
// with a short, growing interval.
func (s *Store) Lock(ctx context.Context, account string) (unlock func(), err error) {
	p := filepath.Join(s.dir, fileName(account)+lockSuffix)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tokens: lock: %w", err)
	}
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("tokens: lock %s: %w", p, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("tokens: lock %s: %w", p, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
