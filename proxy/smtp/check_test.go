package smtp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

func TestCheckUpstream(t *testing.T) {
	for _, starttls := range []bool{false, true} {
		b := startBridge(t, bridgeOpts{starttlsUpstream: starttls})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := CheckUpstream(ctx, &proxy.Dialer{}, b.accts[alice])
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, "SIZE ") {
			t.Fatalf("CheckUpstream = %q, want the upstream's SIZE", got)
		}
	}
	b := startBridge(t, bridgeOpts{})
	b.tokens[alice].Revoke()
	if _, err := CheckUpstream(context.Background(), &proxy.Dialer{}, b.accts[alice]); proxy.Classify(err) != proxy.FailConsent {
		t.Fatalf("CheckUpstream with a revoked grant: %v, want a consent-required error", err)
	}
}
