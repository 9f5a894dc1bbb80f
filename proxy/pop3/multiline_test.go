package pop3

import (
	"bytes"
	"testing"
)

// scanAll feeds data to a fresh scanner in chunks of the given sizes
// (cycled) and returns the offset just past the terminator, or -1.
func scanAll(data []byte, sizes []int) int {
	sc := newTermScanner()
	off := 0
	for i := 0; off < len(data); i++ {
		n := min(sizes[i%len(sizes)], len(data)-off)
		if end := sc.scan(data[off : off+n]); end >= 0 {
			return off + end
		}
		off += n
	}
	return -1
}

// naiveEnd is the reference: the body starts at a line start, so prefix
// it with the status line's CRLF and search.
func naiveEnd(data []byte) int {
	i := bytes.Index(append([]byte("\r\n"), data...), []byte(terminator))
	if i < 0 {
		return -1
	}
	return i + len(terminator) - 2
}

func TestTermScanner(t *testing.T) {
	tests := []struct {
		body string
		want int
	}{
		{".\r\n", 3},                         // empty body
		{"a\r\n.\r\n", 6},                    // one line
		{"..\r\n.\r\n", 7},                   // a stuffed "." line
		{"..\r\n", -1},                       // only a stuffed line
		{"a\r\n.b\r\n", -1},                  // "." starting a line is not the end
		{"a\n.\r\n", -1},                     // bare LF does not end a line
		{"a\r\n.\r\nafter", 6},               // bytes after the terminator are not the body's
		{"x\r\n.\r", -1},                     // incomplete
		{"\r\n.\r\n", 2 + 3},                 // empty first line
		{"abc\r\n.\r\n.\r\n", 8},             // first terminator wins
		{".\r\n.\r\n", 3},                    // the first line already terminates
		{"line\r\n..\r\n..\r\n.\r\n", 17},    //
		{"\r\n\r\n\r\n.\r\nxyz\r\n.\r\n", 9}, //
	}
	chunkings := [][]int{{1}, {2}, {3}, {4}, {5}, {7}, {1, 4}, {2, 3, 1}, {1 << 20}}
	for _, tt := range tests {
		if got := naiveEnd([]byte(tt.body)); got != tt.want {
			t.Fatalf("reference for %q = %d, want %d", tt.body, got, tt.want)
		}
		for _, ch := range chunkings {
			if got := scanAll([]byte(tt.body), ch); got != tt.want {
				t.Errorf("scan(%q) in chunks %v = %d, want %d", tt.body, ch, got, tt.want)
			}
		}
	}
}

// FuzzTermScanner checks the chunked scanner against the one-shot
// reference for any body and chunking: the terminator comes from the
// upstream, which the relay trusts no more than a client.
func FuzzTermScanner(f *testing.F) {
	f.Add([]byte("a\r\n.\r\n"), uint8(1), uint8(3))
	f.Add([]byte("..\r\n.\r\n"), uint8(2), uint8(2))
	f.Add([]byte(".\r\n"), uint8(4), uint8(1))
	f.Add([]byte("\r\n.\r"), uint8(5), uint8(7))
	f.Fuzz(func(t *testing.T, body []byte, a, b uint8) {
		sizes := []int{int(a%16) + 1, int(b%16) + 1}
		if got, want := scanAll(body, sizes), naiveEnd(body); got != want {
			t.Fatalf("scan(%q) in chunks %v = %d, want %d", body, sizes, got, want)
		}
	})
}

// BenchmarkTermScanner measures the scan alone over a 1 MiB text body in
// 16 KiB chunks (a TLS record each), terminator at the end.
func BenchmarkTermScanner(b *testing.B) {
	line := []byte("The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrstu\r\n")
	body := bytes.Repeat(line, (1<<20)/len(line))
	body = append(body, ".\r\n"...)
	b.SetBytes(int64(len(body)))
	for range b.N {
		if scanAll(body, []int{16 << 10}) != len(body) {
			b.Fatal("terminator not found")
		}
	}
}
