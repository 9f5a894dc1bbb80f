package testpeers

import "github.com/oauthbridge/oauthbridge/internal/fakegmail"

// testPKI is a throw-away CA and one server certificate for 127.0.0.1 and
// localhost, all PEM-encoded, for a peer started by a test. It comes from
// fakegmail's CA (ECDSA P-256, fast to make; Dovecot 2.3 on OpenSSL 3
// serves it).
type testPKI struct {
	caPEM, certPEM, keyPEM []byte
}

func newTestPKI() (*testPKI, error) {
	ca, err := fakegmail.NewCA()
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.LeafPEM("localhost", "127.0.0.1", "::1")
	if err != nil {
		return nil, err
	}
	return &testPKI{caPEM: ca.PEM(), certPEM: cert, keyPEM: key}, nil
}
