package bench

import (
	"net"
	"sync"
	"time"
)

// delayProxy forwards TCP connections to an upstream, holding every chunk
// for half the round trip in each direction, so both paths see an
// upstream as far away as a real provider (10–50 ms), where on loopback
// the local hop a bridge adds is as long as the whole upstream exchange.
// TLS passes through untouched.
type delayProxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	wg     sync.WaitGroup // the accept loop and each connection pair

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
}

func startDelayProxy(target string, rtt time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &delayProxy{ln: ln, target: target, oneWay: rtt / 2, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *delayProxy) addr() string { return p.ln.Addr().String() }

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, 30*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			return
		}
		p.wg.Add(1)
		go p.serve(c, up)
	}
}

// serve runs both directions of one connection pair, then closes both.
func (p *delayProxy) serve(c, up net.Conn) {
	defer p.wg.Done()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, c) }()
	go func() { defer wg.Done(); p.pipe(c, up) }()
	wg.Wait()
	p.forget(c)
	p.forget(up)
}

// track registers a connection pair unless the proxy is closing.
func (p *delayProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

type delayed struct {
	data []byte // nil: the source ended
	at   time.Time
}

// pipe copies src to dst, each chunk delivered oneWay after it was read,
// in order; then half-closes dst.
func (p *delayProxy) pipe(dst, src net.Conn) {
	q := make(chan delayed, 4096)
	done := make(chan struct{})
	go func() { // the writer, owned by this pipe
		defer close(done)
		broken := false
		for d := range q {
			if broken {
				continue // drain, so the reader never blocks on a dead writer
			}
			time.Sleep(time.Until(d.at)) // the simulated network, not synchronisation
			if d.data == nil {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				continue
			}
			if _, err := dst.Write(d.data); err != nil {
				broken = true
				src.Close()
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- delayed{data: append([]byte(nil), buf[:n]...), at: time.Now().Add(p.oneWay)}
		}
		if err != nil {
			q <- delayed{at: time.Now().Add(p.oneWay)}
			break
		}
	}
	close(q)
	<-done
}

func (p *delayProxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// close stops accepting, cuts every connection and waits for the pipes.
func (p *delayProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
