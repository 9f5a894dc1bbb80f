package fakegmail

import (
	"bytes"
	"compress/flate"
	"io"
	"time"
)

// Write passes the library's output through the framer.
//
// It never fails: once the connection is closed (a kick, a cut, a client
// gone) further output is discarded. imapmemserver leaves its response
// encoder locked when a write fails inside a literal, and imapserver then
// blocks forever on its next response; a silent sink lets the library
// finish the response and notice the closed connection on its next read.
func (c *wireConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	for len(p) > 0 && !c.closed {
		if c.wlit > 0 {
			k := int(min(int64(len(p)), c.wlit))
			if c.cut != nil && c.cut.inLit {
				if int64(k) >= c.cut.left {
					c.writeLocked(p[:c.cut.left])
					c.cutNowLocked()
					break
				}
				c.cut.left -= int64(k)
			}
			c.writeLocked(p[:k])
			p, c.wlit = p[k:], c.wlit-int64(k)
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.wline = append(c.wline, p...)
			c.boundary = false
			break
		}
		c.wline = append(c.wline, p[:i+1]...)
		p = p[i+1:]
		out, lit, boundary := c.fr.serverLine(c, c.wline)
		if c.cut != nil && !bytes.HasPrefix(out, []byte("+")) {
			if c.startCutLocked(out, lit) {
				break
			}
		}
		c.writeLocked(out)
		c.wline = c.wline[:0]
		c.wlit = lit
		c.boundary = boundary && lit == 0
		if c.boundary {
			if line := c.pending.Swap(nil); line != nil {
				c.kickLocked(*line)
			}
		}
	}
	return n, nil
}

// writeLocked writes to the network; a failure closes the connection.
func (c *wireConn) writeLocked(b []byte) {
	_, err := c.w.Write(b)
	if err == nil && c.fw != nil {
		err = c.fw.Flush()
	}
	if err != nil {
		c.closed = true
		c.bareClose()
	}
}

// startDeflate turns both directions into DEFLATE streams (RFC 4978 §4).
// It runs on the reading goroutine right after the tagged OK was written;
// bytes already read beyond the COMPRESS line are compressed ones.
func (c *wireConn) startDeflate() {
	rest := append([]byte(nil), c.in...)
	c.in = nil
	c.r = flate.NewReader(io.MultiReader(bytes.NewReader(rest), c.Conn))
	c.mu.Lock()
	defer c.mu.Unlock()
	// Level 1: the fake favours speed; any level is valid DEFLATE.
	c.fw, _ = flate.NewWriter(c.Conn, flate.BestSpeed)
	c.w = c.fw
}

func (c *wireConn) compressed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fw != nil
}

// writeDirect writes a response the framer composed itself (ID, COMPRESS):
// the library is waiting for input, so the output is between responses.
func (c *wireConn) writeDirect(b string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	// The library cleared its write deadline after its last response.
	c.Conn.SetWriteDeadline(time.Now().Add(kickTimeout * 10))
	c.writeLocked([]byte(b))
	c.Conn.SetWriteDeadline(time.Time{})
}
