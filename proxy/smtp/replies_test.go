package smtp

import (
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

func TestSplitEnhanced(t *testing.T) {
	tests := []struct {
		in   string
		code gosmtp.EnhancedCode
		text string
	}{
		{"2.0.0 OK  1700000000 x1-abc.12 - gsmtp", gosmtp.EnhancedCode{2, 0, 0}, "OK  1700000000 x1-abc.12 - gsmtp"},
		{"2.6.0 queued\n2.6.0 more", gosmtp.EnhancedCode{2, 6, 0}, "queued\nmore"},
		{"OK queued", gosmtp.EnhancedCodeNotSet, "OK queued"},
		{"5.0.0 odd", gosmtp.EnhancedCodeNotSet, "5.0.0 odd"},
		{"2.x.0 odd", gosmtp.EnhancedCodeNotSet, "2.x.0 odd"},
		{"", gosmtp.EnhancedCodeNotSet, ""},
	}
	for _, tt := range tests {
		code, text := splitEnhanced(tt.in)
		if code != tt.code || text != tt.text {
			t.Errorf("splitEnhanced(%q) = %v %q", tt.in, code, text)
		}
	}
}

func TestSizeCache(t *testing.T) {
	var c sizeCache
	if size, utf8 := c.advertise(1000); size != 1000 || utf8 {
		t.Fatalf("empty: %d %v", size, utf8)
	}
	c.learn("a:465", upstreamCaps{size: 500, utf8: true})
	c.learn("b:587", upstreamCaps{size: 0, utf8: true}) // no limit
	if size, utf8 := c.advertise(1000); size != 500 || !utf8 {
		t.Fatalf("two: %d %v", size, utf8)
	}
	c.learn("c:587", upstreamCaps{size: 2000})
	if size, utf8 := c.advertise(1000); size != 500 || utf8 {
		t.Fatalf("three: %d %v", size, utf8)
	}
	if size, utf8 := c.forEndpoint("b:587", 1000); size != 1000 || !utf8 {
		t.Fatalf("b: %d %v", size, utf8)
	}
	if size, _ := c.forEndpoint("c:587", 1000); size != 1000 {
		t.Fatalf("c capped: %d", size)
	}
	if size, _ := c.forEndpoint("unknown:1", 1000); size != 500 {
		t.Fatalf("unknown: %d", size)
	}
}
