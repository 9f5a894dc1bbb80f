package proxytest

import (
	"runtime"
	"testing"
	"time"
)

// VerifyNoLeaks records the number of goroutines now and, in t.Cleanup,
// fails t with all stacks when that number is not back within 5s. Call it
// first in a test (cleanups run last-in first-out, so its check runs after
// the other cleanups, e.g. Serve's shutdown). Not for parallel tests: it
// counts the whole process.
func VerifyNoLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("proxytest: %d goroutines leaked (%d before, %d after):\n%s", n-before, before, n, buf)
				return
			}
			// Polling is the only way: goroutine exit has no event.
			time.Sleep(10 * time.Millisecond)
		}
	})
}
