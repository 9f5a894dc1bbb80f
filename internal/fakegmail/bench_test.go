package fakegmail

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// BenchmarkFakeIMAPFetch measures a large FETCH from the fake over real
// TLS on loopback, read by a raw client that only counts octets (so the
// number is the fake's throughput, for sizing it against the bridge) and
// by go-imap's imapclient.
//
//	go test -run XXX -bench FakeIMAPFetch -benchmem ./internal/fakegmail/
func BenchmarkFakeIMAPFetch(b *testing.B) {
	for _, size := range []int{1 << 20, 16 << 20} {
		s := start(b, Options{Users: []string{alice}})
		msg := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), size/64)...)
		uid, err := s.Append(alice, "INBOX", msg)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("raw/%dMiB", size>>20), func(b *testing.B) {
			r := rawIMAPLogin(b, s, alice)
			r.send("s SELECT INBOX")
			r.readUntilTagged("s")
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fmt.Fprintf(r.c, "f UID FETCH %d BODY.PEEK[]\r\n", uid)
				head, err := r.r.ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				open := strings.LastIndexByte(head, '{')
				n, err := strconv.Atoi(head[open+1 : len(head)-3])
				if err != nil || n != len(msg) {
					b.Fatalf("header %q", head)
				}
				if _, err := io.CopyN(io.Discard, r.r, int64(n)); err != nil {
					b.Fatal(err)
				}
				for {
					l, err := r.r.ReadString('\n')
					if err != nil {
						b.Fatal(err)
					}
					if strings.HasPrefix(l, "f ") {
						break
					}
				}
			}
		})
		b.Run(fmt.Sprintf("imapclient/%dMiB", size>>20), func(b *testing.B) {
			c := imapLogin(b, s, alice, nil)
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
				if err != nil || len(msgs[0].BodySection[0].Bytes) != len(msg) {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFakeIMAPIdleSessions reports the heap one idle, logged-in IMAP
// session costs, fake and raw TLS client together (both live in this
// process), for sizing the fake under many concurrent sessions.
//
//	go test -run XXX -bench FakeIMAPIdleSessions ./internal/fakegmail/
func BenchmarkFakeIMAPIdleSessions(b *testing.B) {
	s := start(b, Options{Users: []string{alice}, IMAPConnectionLimit: -1})
	const n = 200
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]*rawConn, n)
		for j := range conns {
			conns[j] = rawIMAPLogin(b, s, alice)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/session")
		for _, c := range conns {
			c.c.Close()
		}
		s.WaitConnections(alice, ProtoIMAP, 0, 10*time.Second)
	}
}
