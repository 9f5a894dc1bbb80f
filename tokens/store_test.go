package tokens

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestStoreRoundTripAndModes(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state") // created by OpenStore
	s := openStore(t, state)
	if _, err := s.Load(alice); !errors.Is(err, ErrNoToken) {
		t.Fatalf("Load before Save: %v, want ErrNoToken", err)
	}
	now := time.Now().Round(0)
	want := &Record{AccessToken: "at-1", TokenType: "Bearer", Expiry: now.Add(time.Hour), RefreshToken: "rt-1",
		Flow: FlowAuthCode, Scopes: []string{"https://mail.google.com/"}, ObtainedAt: now, LastError: "x"}
	if err := s.Save(alice, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(alice)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "at-1" || got.RefreshToken != "rt-1" || !got.Expiry.Equal(want.Expiry) || got.Scopes[0] != want.Scopes[0] || got.LastError != "x" {
		t.Fatalf("round trip: %+v", got)
	}
	for p, m := range map[string]os.FileMode{
		state:                                  0o700,
		s.Dir():                                0o700,
		filepath.Join(state, "master.key"):     0o600,
		filepath.Join(s.Dir(), alice+".token"): 0o600,
	} {
		if got := mode(t, p); got != m {
			t.Errorf("%s: mode %04o, want %04o", p, got, m)
		}
	}
	raw, err := os.ReadFile(filepath.Join(s.Dir(), alice+".token"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "at-1") || strings.Contains(string(raw), "rt-1") {
		t.Fatal("token file holds a token in clear")
	}
	// A second open (a restart, or the CLI) uses the same key.
	if r, err := openStore(t, state).Load(alice); err != nil || r.RefreshToken != "rt-1" {
		t.Fatalf("reopen: %v %v", r, err)
	}
}

func TestStoreFileBoundToAccount(t *testing.T) {
	s := openStore(t, t.TempDir())
	if err := s.Save(alice, &Record{AccessToken: "a", RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(s.path(alice))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.path("mallory@gmail.com"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("mallory@gmail.com"); err == nil || !strings.Contains(err.Error(), "cannot decrypt") {
		t.Fatalf("copied file opened under another account: %v", err)
	}
	// Another master key cannot open it either.
	other, err := OpenStore(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other.path(alice), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Load(alice); err == nil {
		t.Fatal("file opened with another master key")
	}
}

func TestStoreRefusesLooseModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		path func(state string) string
		mode os.FileMode
		fix  string
	}{
		{"key", func(st string) string { return filepath.Join(st, "master.key") }, 0o644, "chmod 600"},
		{"token file", func(st string) string { return filepath.Join(st, "tokens", alice+".token") }, 0o644, "chmod 600"},
		{"tokens dir", func(st string) string { return filepath.Join(st, "tokens") }, 0o755, "chmod 700"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			s := openStore(t, state)
			if err := s.Save(alice, &Record{RefreshToken: "r"}); err != nil {
				t.Fatal(err)
			}
			p := tc.path(state)
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := OpenStore(state, "")
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.fix+" "+p) {
				t.Fatalf("OpenStore with %s %04o: %v; want an error naming %s and %q", tc.name, tc.mode, err, p, tc.fix)
			}
		})
	}
}

func TestStoreKeyCreationRace(t *testing.T) {
	state := t.TempDir()
	const n = 8
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = OpenStore(state, "") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := stores[0].Save(alice, &Record{RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if _, err := s.Load(alice); err != nil {
			t.Fatalf("store %d has another key: %v", i, err)
		}
	}
	ents, _ := os.ReadDir(state)
	for _, e := range ents {
		if strings.Contains(e.Name(), tmpMarker) {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"alice@gmail.com":    "alice@gmail.com",
		"../etc/passwd":      "%2E.%2Fetc%2Fpasswd",
		".hidden":            "%2Ehidden",
		"a b/c\x00":          "a%20b%2Fc%00",
		"*@example.com":      "%2A@example.com",
		"First.Last+tag@x.y": "First.Last+tag@x.y",
	} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStoreLock(t *testing.T) {
	dir := t.TempDir()
	a, b := openStore(t, dir), openStore(t, dir) // two opens: like two processes, each its own flock
	unlock, err := a.Lock(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(ctx, alice); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held: %v, want deadline exceeded", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := b.Lock(context.Background(), alice)
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	// Locks are per account.
	u1, err := a.Lock(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	defer u1()
	u2, err := b.Lock(ctx, "bob@gmail.com")
	if err != nil {
		t.Fatalf("lock of another account blocked: %v", err)
	}
	u2()
}

// crashWriterEnv makes the test binary a writer that saves records in a
// loop until killed (see TestStoreAtomicUnderSIGKILL).
const crashWriterEnv = "TOKENS_TEST_CRASH_WRITER"

// bigRecord is large enough (about 900 KB) that a write takes a while and
// a kill usually lands inside one.
func bigRecord(i int) *Record {
	return &Record{AccessToken: strconv.Itoa(i) + ":" + strings.Repeat("x", 900<<10), RefreshToken: "rt-" + strconv.Itoa(i)}
}

func checkBigRecord(r *Record) error {
	n, rest, ok := strings.Cut(r.AccessToken, ":")
	if !ok || len(rest) != 900<<10 || strings.Trim(rest, "x") != "" || r.RefreshToken != "rt-"+n {
		return fmt.Errorf("record is not complete: access token of %d bytes, refresh %q", len(r.AccessToken), r.RefreshToken)
	}
	return nil
}

func TestStoreAtomicUnderSIGKILL(t *testing.T) {
	if dir := os.Getenv(crashWriterEnv); dir != "" {
		s, err := OpenStore(dir, "")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		for i := 1; ; i++ {
			if err := s.Save(alice, bigRecord(i)); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
			fmt.Println(i)
		}
	}
	if testing.Short() {
		t.Skip("spawns writer processes")
	}
	dir := t.TempDir()
	s := openStore(t, dir)
	if err := s.Save(alice, bigRecord(0)); err != nil {
		t.Fatal(err)
	}
	for round := range 30 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStoreAtomicUnderSIGKILL$")
		cmd.Env = append(os.Environ(), crashWriterEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		// Wait for its first completed write, then kill it at a random
		// point of the following ones: the delay is fault injection,
		// not synchronisation.
		if !sc.Scan() || strings.HasPrefix(sc.Text(), "error") {
			t.Fatalf("writer: %q", sc.Text())
		}
		last, _ := strconv.Atoi(sc.Text())
		<-time.After(time.Duration(rand.IntN(8000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		r, err := s.Load(alice)
		if err != nil {
			t.Fatalf("round %d: after SIGKILL: %v", round, err)
		}
		if err := checkBigRecord(r); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// The file holds the last write seen completed, or a later one.
		if n, _ := strconv.Atoi(strings.SplitN(r.AccessToken, ":", 2)[0]); n < last {
			t.Fatalf("round %d: file holds record %d, but write %d had completed", round, n, last)
		}
	}
}
