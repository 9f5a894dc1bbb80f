package fakegmail

import (
	"net"
	"time"
)

// Cuts and kicks: how a wireConn ends a session at the right byte.

// startCutLocked applies an armed response cut to the first response line
// out; it reports whether the connection is now closed.
func (c *wireConn) startCutLocked(out []byte, lit int64) bool {
	switch c.cut.mode {
	case KickNoReply:
		c.cutNowLocked()
		return true
	case KickMidResponse:
		if lit > 0 {
			// Cut inside the literal, after half of it.
			c.cut.inLit, c.cut.left = true, lit/2
			if c.cut.left == 0 {
				c.writeLocked(out)
				c.cutNowLocked()
				return true
			}
			return false
		}
		c.writeLocked(out[:len(out)/2])
		c.cutNowLocked()
		return true
	}
	return false
}

// cutNowLocked ends an armed response cut: its text, then a TCP close.
func (c *wireConn) cutNowLocked() {
	cut := c.cut
	c.cut = nil
	if cut.text != "" {
		c.Conn.SetWriteDeadline(time.Now().Add(kickTimeout))
		c.writeLocked([]byte(cut.text))
	}
	c.closed = true
	c.bareClose()
	cut.fault.fire()
}

// armCut arms a KickMidResponse or KickNoReply for the next response.
func (c *wireConn) armCut(f *armedFault, text string) {
	c.mu.Lock()
	c.cut = &responseCut{mode: f.Kick, text: text, fault: f}
	c.mu.Unlock()
}

// applyFault acts on a fault that matched a client line about to be handed
// to the library.
func (c *wireConn) applyFault(f *armedFault, midText string) readAction {
	switch f.Kick {
	case KickMidResponse:
		c.armCut(f, midText)
		return actPass
	case KickNoReply:
		c.armCut(f, "")
		return actPass
	}
	if line := byeLine(c.proto, f.Kick); line != "" {
		c.mu.Lock()
		c.kickLocked(line)
		c.mu.Unlock()
	} else {
		c.bareClose()
	}
	f.fire()
	return actCut
}

// kickLocked writes line and closes the connection (TLS close_notify
// included).
func (c *wireConn) kickLocked(line string) {
	if c.closed {
		return
	}
	c.closed = true
	c.Conn.SetWriteDeadline(time.Now().Add(kickTimeout))
	c.writeLocked([]byte(line))
	c.closeOnce.Do(func() {
		c.Conn.Close()
		close(c.done)
	})
}

// end implements ender: the BYE goes out at the next boundary between
// responses; a writer stuck for kickTimeout gets a bare close.
func (c *wireConn) end(mode KickMode) {
	line := byeLine(c.proto, mode)
	if line == "" {
		c.bareClose()
		return
	}
	fired := make(chan struct{})
	t := time.AfterFunc(kickTimeout, func() {
		defer close(fired)
		c.bareClose()
	})
	defer func() {
		if !t.Stop() {
			<-fired
		}
	}()
	c.pending.Store(&line)
	c.mu.Lock()
	if c.boundary {
		if l := c.pending.Swap(nil); l != nil {
			c.kickLocked(*l)
		}
	}
	c.mu.Unlock()
	<-c.done
}

func (c *wireConn) closeNow() { c.bareClose() }

// bareClose closes the TCP connection without TLS close_notify, like a
// dropped connection. It never blocks on the write side.
func (c *wireConn) bareClose() {
	c.closeOnce.Do(func() {
		c.raw.Close()
		close(c.done)
	})
}

// Close is the library closing its connection.
func (c *wireConn) Close() error {
	c.closeOnce.Do(func() {
		c.raw.SetDeadline(time.Now().Add(kickTimeout))
		c.Conn.Close()
		close(c.done)
	})
	c.mu.Lock()
	c.closed = true
	onClose := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	if onClose != nil {
		onClose()
	}
	return nil
}

// remoteIP is the client's IP address as text.
func remoteIP(conn net.Conn) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return conn.RemoteAddr().String()
}
