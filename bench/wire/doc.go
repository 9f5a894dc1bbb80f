// Package wire holds the benchmark's own minimal IMAP and POP3 clients:
// a raw socket, one small buffered reader and a few lines of state per
// connection, so that ten thousand idle sessions cost the benchmark
// process little and a measured command costs the client almost nothing
// next to what the bridge adds.
//
// Typical use:
//
//	c, err := wire.DialIMAP(addr, nil, 4<<10) // nil: plaintext; a *tls.Config: TLS
//	if err != nil { ... }
//	defer c.Close()
//	if err := c.Login("alice@bench.test", "app-password"); err != nil { ... }
//	if _, err := c.Do("SELECT INBOX", nil); err != nil { ... }
//	res, err := c.Do("UID FETCH 7 BODY.PEEK[]", nil) // res.LiteralBytes: octets skipped
//
// They parse only what finding the end of a response needs (lines,
// literals, the tagged status); they are not general clients. The
// bridge's correctness is proven by its own tests with real client
// libraries; these clients exist to measure it.
package wire
