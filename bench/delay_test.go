package bench

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestDelayProxy: bytes arrive intact and in order, a round trip takes at
// least the configured time, and close ends every goroutine.
func TestDelayProxy(t *testing.T) {
	before := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { // an echo server
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	const rtt = 20 * time.Millisecond
	p, err := startDelayProxy(ln.Addr().String(), rtt)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789"), 100000) // 1 MB, many chunks
	start := time.Now()
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < rtt {
		t.Errorf("echo took %v, less than the %v round trip", el, rtt)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d bytes, differing from the %d sent", len(got), len(msg))
	}
	c.Close()
	<-served
	p.close()
	ln.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before { // goroutine exit has no event to wait on
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left running", runtime.NumGoroutine()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
