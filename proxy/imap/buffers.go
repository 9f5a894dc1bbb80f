package imap

import (
	"bufio"
	"bytes"
	"io"
	"sync"
)

// An idle IMAP session is two connections blocked in Read, and there may be
// ten thousand of them. bufio's readers and writers would hold 16 KiB of
// buffers per session for nothing; connReader and connWriter take a 4 KiB
// buffer from a pool only while data flows and give it back when it stops.

const bufSize = 4 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// connReader is the one buffered reader of a connection, with bufio.Reader's
// semantics for the methods the bridge uses. While the stream is quiet it
// reads into a small inline array, so a session blocked waiting for its
// next command holds no pooled buffer; a line that does not fit moves to a
// pooled 4 KiB buffer, which goes back once the reader is drained by a
// short read (a busy stream keeps it).
type connReader struct {
	rd     io.Reader
	buf    []byte // tiny[:] or *pooled
	pooled *[]byte
	r, w   int
	err    error
	lastN  int // what the last Read from rd returned
	tiny   [256]byte
}

func newConnReader(rd io.Reader) *connReader {
	b := &connReader{rd: rd}
	b.buf = b.tiny[:]
	return b
}

// Reset discards buffered data and reads from rd from now on.
func (b *connReader) Reset(rd io.Reader) {
	b.release()
	b.rd, b.r, b.w, b.err, b.lastN = rd, 0, 0, nil, 0
}

func (b *connReader) release() {
	if b.pooled != nil {
		bufPool.Put(b.pooled)
		b.pooled = nil
	}
	b.buf = b.tiny[:]
}

// grow moves the buffered bytes into a pooled buffer.
func (b *connReader) grow() {
	p := bufPool.Get().(*[]byte)
	n := copy(*p, b.buf[b.r:b.w])
	b.buf, b.pooled, b.r, b.w = *p, p, 0, n
}

// fill reads once from rd into the free part of the buffer.
func (b *connReader) fill() {
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	if b.w == 0 && b.pooled != nil && b.lastN < len(b.tiny) {
		b.release() // the stream went quiet: wait without the big buffer
	}
	if b.w == len(b.buf) {
		if b.pooled != nil {
			return // full: the caller reports ErrBufferFull
		}
		b.grow()
	}
	for i := 0; i < 100; i++ {
		n, err := b.rd.Read(b.buf[b.w:])
		b.lastN = n
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

func (b *connReader) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// Buffered is the number of bytes that can be read without blocking.
func (b *connReader) Buffered() int { return b.w - b.r }

// ReadSlice reads until the first delim and returns a slice of the buffer
// valid until the next read, or bufio.ErrBufferFull when 4 KiB hold no
// delim (see bufio.Reader.ReadSlice).
func (b *connReader) ReadSlice(delim byte) ([]byte, error) {
	s := 0
	for {
		if i := indexByte(b.buf[b.r+s:b.w], delim); i >= 0 {
			i += s
			line := b.buf[b.r : b.r+i+1]
			b.r += i + 1
			return line, nil
		}
		if b.err != nil {
			line := b.buf[b.r:b.w]
			b.r = b.w
			return line, b.readErr()
		}
		if b.Buffered() >= bufSize {
			line := b.buf[b.r:b.w]
			b.r = b.w
			return line, bufio.ErrBufferFull
		}
		s = b.w - b.r
		b.fill()
	}
}

// Peek returns the next n bytes without consuming them; n <= 4096.
func (b *connReader) Peek(n int) ([]byte, error) {
	for b.w-b.r < n && b.w-b.r < bufSize && b.err == nil {
		if n > len(b.buf)-b.r && b.pooled == nil {
			b.grow()
		}
		b.fill()
	}
	if avail := b.w - b.r; avail < n {
		err := b.readErr()
		if err == nil {
			err = bufio.ErrBufferFull
		}
		return b.buf[b.r:b.w], err
	}
	return b.buf[b.r : b.r+n], nil
}

// Discard skips the next n buffered bytes (n <= Buffered()).
func (b *connReader) Discard(n int) {
	if n > b.w-b.r {
		n = b.w - b.r
	}
	b.r += n
}

// Read reads into p: from the buffer, or straight from the connection when
// the buffer is empty and p is large (no extra copy for big literals).
func (b *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= bufSize {
			n, err := b.rd.Read(p)
			b.lastN = n
			return n, err
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// copyN writes the next n bytes to w through the buffer.
func (b *connReader) copyN(w io.Writer, n int64) (int64, error) {
	var done int64
	for done < n {
		if b.r == b.w {
			if b.err != nil {
				err := b.readErr()
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return done, err
			}
			b.fill()
			continue
		}
		k := b.w - b.r
		if int64(k) > n-done {
			k = int(n - done)
		}
		m, err := w.Write(b.buf[b.r : b.r+k])
		b.r += m
		done += int64(m)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

// connWriter is a buffered writer that takes its 4 KiB buffer from the pool
// at the first write and returns it at Flush, so a quiet session holds
// none. Errors are sticky, as with bufio.Writer.
type connWriter struct {
	w   io.Writer
	buf *[]byte
	n   int
	err error
}

func newConnWriter(w io.Writer) *connWriter { return &connWriter{w: w} }

// Reset drops buffered data and writes to w from now on.
func (c *connWriter) Reset(w io.Writer) {
	c.put()
	c.w, c.n, c.err = w, 0, nil
}

func (c *connWriter) put() {
	if c.buf != nil {
		bufPool.Put(c.buf)
		c.buf = nil
	}
}

// Buffered is the number of bytes waiting for Flush.
func (c *connWriter) Buffered() int { return c.n }

// Available is the room left before a write reaches the connection.
func (c *connWriter) Available() int { return bufSize - c.n }

func (c *connWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 && c.err == nil {
		if c.buf == nil {
			if len(p) >= bufSize {
				n, err := c.w.Write(p)
				c.err = err
				return written + n, err
			}
			c.buf = bufPool.Get().(*[]byte)
		}
		k := copy((*c.buf)[c.n:], p)
		c.n += k
		written += k
		p = p[k:]
		if c.n == bufSize {
			c.flushBuf()
		}
	}
	return written, c.err
}

func (c *connWriter) WriteString(s string) (int, error) {
	written := 0
	for len(s) > 0 && c.err == nil {
		if c.buf == nil {
			c.buf = bufPool.Get().(*[]byte)
		}
		k := copy((*c.buf)[c.n:], s)
		c.n += k
		written += k
		s = s[k:]
		if c.n == bufSize {
			c.flushBuf()
		}
	}
	return written, c.err
}

// flushBuf writes the buffer out and keeps it for more.
func (c *connWriter) flushBuf() {
	if c.n == 0 || c.err != nil {
		return
	}
	n, err := c.w.Write((*c.buf)[:c.n])
	if err == nil && n < c.n {
		err = io.ErrShortWrite
	}
	c.err = err
	c.n = 0
}

// Flush writes out buffered data and returns the buffer to the pool.
func (c *connWriter) Flush() error {
	c.flushBuf()
	c.put()
	return c.err
}
