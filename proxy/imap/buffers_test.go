package imap

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// chunkReader returns data in the chunk sizes given, cycling: a network
// that delivers bytes unevenly.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzConnReader runs the same operations on connReader and bufio.Reader
// over the same unevenly chunked input: every result must match.
func FuzzConnReader(f *testing.F) {
	f.Add([]byte("a1 NOOP\r\n* 1 FETCH (BODY[] {5}\r\nhello)\r\na1 OK\r\n"), []byte{1, 7, 255}, uint64(1))
	f.Add(bytes.Repeat([]byte("x"), 9000), []byte{200, 3}, uint64(2))
	f.Fuzz(fuzzConnReaderBody)
}

func fuzzConnReaderBody(t *testing.T, data, sizes []byte, seed uint64) {
	{
		if len(sizes) == 0 {
			sizes = []byte{1}
		}
		sz := make([]int, len(sizes))
		for i, s := range sizes {
			sz[i] = int(s)%300 + 1
		}
		a := newConnReader(&chunkReader{data: data, sizes: sz})
		b := bufio.NewReaderSize(&chunkReader{data: data, sizes: sz}, bufSize)
		rng := rand.New(rand.NewPCG(seed, 0))
		for step := 0; step < 50; step++ {
			switch rng.IntN(4) {
			case 0:
				la, ea := a.ReadSlice('\n')
				lb, eb := b.ReadSlice('\n')
				if !bytes.Equal(la, lb) || ea != eb {
					t.Fatalf("ReadSlice: %q %v vs bufio %q %v", la, ea, lb, eb)
				}
			case 1:
				n := rng.IntN(300)
				pa, pb := make([]byte, n), make([]byte, n)
				na, ea := io.ReadFull(a, pa)
				nb, eb := io.ReadFull(b, pb)
				if na != nb || !bytes.Equal(pa[:na], pb[:nb]) || ea != eb {
					t.Fatalf("ReadFull(%d): %d %v vs bufio %d %v", n, na, ea, nb, eb)
				}
			case 2:
				n := rng.IntN(64) + 1
				pa, ea := a.Peek(n)
				pb, eb := b.Peek(n)
				if !bytes.Equal(pa, pb) || (ea == nil) != (eb == nil) {
					t.Fatalf("Peek(%d): %q %v vs bufio %q %v", n, pa, ea, pb, eb)
				}
				k := min(len(pa), rng.IntN(n+1))
				a.Discard(k)
				b.Discard(k)
			case 3:
				var wa, wb bytes.Buffer
				n := int64(rng.IntN(500))
				na, ea := a.copyN(&wa, n)
				nb, eb := io.CopyN(&wb, b, n)
				if eb == io.EOF {
					eb = io.ErrUnexpectedEOF
				}
				if na != nb || !bytes.Equal(wa.Bytes(), wb.Bytes()) || ea != eb {
					t.Fatalf("copyN(%d): %d %v vs bufio %d %v", n, na, ea, nb, eb)
				}
			}
		}
	}
}

func TestConnReaderReleasesWhenQuiet(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 1000)
	data := append(append(long, "\r\nshort\r\n"...), "last\r\n"...)
	// The network delivers the long line and "short" at once, then
	// "last" alone.
	r := newConnReader(&chunkReader{data: data, sizes: []int{256, len(data) - 262, 6}})
	if l, err := r.ReadSlice('\n'); err != nil || len(l) != 1002 {
		t.Fatalf("long line: %d %v", len(l), err)
	}
	if r.pooled == nil {
		t.Fatal("a 1000-byte line did not move to a pooled buffer")
	}
	r.ReadSlice('\n') // "short": buffered
	// The stream was busy: the next wait keeps the buffer...
	if l, _ := r.ReadSlice('\n'); string(l) != "last\r\n" || r.pooled == nil {
		t.Fatalf("got %q; a busy stream should keep its buffer", l)
	}
	// ...but after a short read, waiting for more happens without it.
	if _, err := r.ReadSlice('\n'); err != io.EOF || r.pooled != nil {
		t.Fatalf("after a short read the reader still holds its pooled buffer (%v)", err)
	}
}

func TestConnWriter(t *testing.T) {
	var out bytes.Buffer
	w := newConnWriter(&out)
	w.WriteString("a1 OK\r\n")
	w.Write(bytes.Repeat([]byte("y"), 10000))
	if w.buf == nil {
		t.Fatal("no buffer while data is pending")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.buf != nil {
		t.Fatal("Flush kept the buffer")
	}
	if out.Len() != 10007 || !bytes.HasPrefix(out.Bytes(), []byte("a1 OK\r\nyyy")) {
		t.Fatalf("wrote %d bytes", out.Len())
	}
	w = newConnWriter(shortWriter{})
	w.WriteString("hello")
	if err := w.Flush(); err != io.ErrShortWrite {
		t.Fatalf("short write: %v", err)
	}
	if _, err := w.WriteString("more"); err != io.ErrShortWrite {
		t.Fatalf("error not sticky: %v", err)
	}
}

// shortWriter accepts one byte less than asked.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return max(len(p)-1, 0), nil }
