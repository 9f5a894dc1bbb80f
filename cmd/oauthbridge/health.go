package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealth is the container health probe (Dockerfile HEALTHCHECK):
// distroless images have no curl, so the binary asks its own /healthz.
func runHealth(e *env, args []string) error {
	fs := newFlagSet("health", "oauthbridge health [-url URL]",
		"Ask a running daemon's admin endpoint whether it is healthy (listeners up, token store\n"+
			"readable). Exit 0 when /healthz answers 200, else 1 with the reason.")
	url := fs.String("url", "http://127.0.0.1:8025/healthz", "the daemon's /healthz `URL` (http.listen)")
	if _, err := fs.parse(e, args, 0, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("bad -url: %v", err), usage: fs.usage()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("daemon not reachable at %s: %w (is http.listen set and the daemon running?)", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy (%s): %s", resp.Status, text)
	}
	fmt.Fprintln(e.stdout, text)
	return nil
}
