package smtp

import (
	"bytes"
	"io"
	"os"
	"testing"
)

func TestSpoolMemoryThenFile(t *testing.T) {
	dir := t.TempDir()
	sp := newSpool(dir, 10)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes
	for i := 0; i < len(msg); i += 7 {
		if _, err := sp.Write(msg[i:min(i+7, len(msg))]); err != nil {
			t.Fatal(err)
		}
	}
	if sp.Len() != int64(len(msg)) || !sp.OnDisk() {
		t.Fatalf("Len %d OnDisk %v", sp.Len(), sp.OnDisk())
	}
	// Unlinked at creation: no name in the directory even while in use.
	assertEmptyDir(t, dir)
	for range 2 { // readable more than once (the retry reads it again)
		got, err := io.ReadAll(sp.Reader())
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read back %d bytes, err %v", len(got), err)
		}
	}
	if err := sp.reset(); err != nil {
		t.Fatal(err)
	}
	if sp.Len() != 0 || sp.OnDisk() {
		t.Fatalf("after reset: Len %d OnDisk %v", sp.Len(), sp.OnDisk())
	}
	assertEmptyDir(t, dir)
	// Reusable after reset, in memory again.
	sp.Write([]byte("small"))
	if got, _ := io.ReadAll(sp.Reader()); string(got) != "small" || sp.OnDisk() {
		t.Fatalf("reuse: %q OnDisk %v", got, sp.OnDisk())
	}
}

func TestSpoolBadDirIsStickyError(t *testing.T) {
	sp := newSpool("/nonexistent/oauthbridge-test", 4)
	if _, err := sp.Write([]byte("0123456789")); err == nil {
		t.Fatal("write past memory into a missing dir succeeded")
	}
	if _, err := sp.Write([]byte("x")); err == nil {
		t.Fatal("error not sticky")
	}
	sp.reset()
	if _, err := sp.Write([]byte("abc")); err != nil {
		t.Fatalf("after reset: %v", err)
	}
}

func TestSpoolDropsBigBuffer(t *testing.T) {
	sp := newSpool(t.TempDir(), 1<<20)
	sp.Write(make([]byte, keepCap+1))
	sp.reset()
	if cap(sp.mem) != 0 {
		t.Fatalf("kept %d bytes of buffer after a big message", cap(sp.mem))
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("spool dir not empty: %v", ents)
	}
}
