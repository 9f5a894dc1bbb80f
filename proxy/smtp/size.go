package smtp

import "sync"

// sizeCache remembers what each upstream endpoint advertised (SIZE,
// SMTPUTF8), so the local EHLO can pass it on.
//
// The problem: a client's EHLO comes before its AUTH, so before the bridge
// knows the account and its upstream. RFC 1870 §4 wants the SIZE in the
// EHLO reply, and most clients never repeat EHLO after AUTH. The choice
// here:
//
//   - before AUTH the bridge advertises the smallest SIZE learned from any
//     upstream so far (in practice there is one provider), capped by
//     Server.MaxMessageBytes; until an upstream was seen, MaxMessageBytes
//     itself; SMTPUTF8 only when every upstream seen offers it;
//   - a relay_without_auth client's account is known at connect, so it
//     gets its own upstream's values;
//   - from AUTH on, the session's go-smtp server (one per connection)
//     enforces the session's upstream's actual SIZE: MAIL ... SIZE=n over
//     it, or a message growing past it, gets 552 5.3.4 (RFC 1870 §6.1,
//     RFC 3463), never a 250, and an EHLO repeated after AUTH shows it.
type sizeCache struct {
	mu sync.Mutex // guards m
	m  map[string]upstreamCaps
}

type upstreamCaps struct {
	size int64 // 0: the upstream advertised no limit
	utf8 bool
}

func (c *sizeCache) learn(addr string, caps upstreamCaps) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]upstreamCaps)
	}
	c.m[addr] = caps
}

// advertise returns the SIZE and SMTPUTF8 to offer before the upstream is
// known.
func (c *sizeCache) advertise(max int64) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return max, false
	}
	size, utf8 := max, true
	for _, caps := range c.m {
		if caps.size > 0 && caps.size < size {
			size = caps.size
		}
		utf8 = utf8 && caps.utf8
	}
	return size, utf8
}

// forEndpoint returns the SIZE and SMTPUTF8 to offer for an upstream
// endpoint, falling back to advertise when it was not seen yet.
func (c *sizeCache) forEndpoint(addr string, max int64) (int64, bool) {
	c.mu.Lock()
	caps, ok := c.m[addr]
	c.mu.Unlock()
	if !ok {
		return c.advertise(max)
	}
	return limitOf(caps, max), caps.utf8
}

// limitOf is the message size limit for an upstream: its SIZE, capped by
// the bridge's own maximum.
func limitOf(caps upstreamCaps, max int64) int64 {
	if caps.size > 0 && caps.size < max {
		return caps.size
	}
	return max
}
