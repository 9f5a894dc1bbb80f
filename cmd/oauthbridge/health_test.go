package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealth(t *testing.T) {
	var unhealthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if unhealthy.Load() {
			http.Error(w, "token store unreadable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	if code, out, _ := runCmd(t, "", nil, "health", "-url", srv.URL+"/healthz"); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Fatalf("healthy daemon: exit %d, %q", code, out)
	}
	unhealthy.Store(true)
	if code, _, stderr := runCmd(t, "", nil, "health", "--url", srv.URL+"/healthz"); code != 1 || !strings.Contains(stderr, "token store unreadable") {
		t.Fatalf("unhealthy daemon: exit %d, %q", code, stderr)
	}
	srv.Close()
	if code, _, stderr := runCmd(t, "", nil, "health", "-url", srv.URL+"/healthz"); code != 1 || !strings.Contains(stderr, "not reachable") {
		t.Fatalf("no daemon: exit %d, %q", code, stderr)
	}
}
