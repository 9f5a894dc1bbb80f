package tokens

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Flow is how an account obtains tokens.
type Flow string

const (
	// FlowAuthCode: authorization code with PKCE and a loopback redirect
	// (Gmail). Refresh token in the store.
	FlowAuthCode Flow = "authcode"
	// FlowDevice: RFC 8628 device flow (Microsoft). Refresh token in the
	// store.
	FlowDevice Flow = "device"
	// FlowServiceAccount: Google service account with domain-wide
	// delegation, a JWT bearer grant per subject. No refresh token.
	FlowServiceAccount Flow = "service_account"
	// FlowClientCredentials: app-only client credentials (Microsoft), with a
	// secret or a certificate. No refresh token.
	FlowClientCredentials Flow = "client_credentials"
)

// persisted reports whether the flow's tokens live in the store. The grant
// flows (service account, client credentials) keep theirs in memory only:
// their credential is the key or secret in the config, a new token costs
// one request and no consent, and not writing access tokens to disk is one
// secret less at rest.
func (f Flow) persisted() bool { return f == FlowAuthCode || f == FlowDevice }

// AccountSpec is one account as the token manager needs it; the daemon
// builds it from the config.
type AccountSpec struct {
	// Name is the account's username in the config, "*@example.com" for a
	// wildcard. It names the token file and appears in messages.
	Name string
	// Subject is the upstream identity a service-account token is for (the
	// JWT sub) when the account is not a wildcard; default Name.
	Subject string
	Flow    Flow

	ClientID, ClientSecret string
	AuthURL, TokenURL      string
	DeviceAuthURL          string // "" when the provider has no device flow for these scopes
	Scopes                 []string

	// ServiceAccountKey is Google's JSON key file (flow service_account).
	// Its token_uri is used when TokenURL is empty.
	ServiceAccountKey []byte
	// ClientCertPEM and ClientKeyPEM (RSA) authenticate flow
	// client_credentials with a signed client assertion (RFC 7523 §2.2)
	// instead of ClientSecret.
	ClientCertPEM, ClientKeyPEM []byte

	// RootCAs verifies the token endpoint's TLS certificate; nil means the
	// system roots. Ignored when Options.HTTPClient is set.
	RootCAs *x509.CertPool
	// Wildcard: Name is "*@domain" and every login in the domain gets its
	// own token (flow service_account only).
	Wildcard bool
}

// account is a validated spec with its parsed credentials.
type account struct {
	spec     AccountSpec
	tokenURL string
	client   *http.Client
	domain   string // wildcard: "@example.com", lower case

	saEmail, saKeyID string
	saKeyPEM         []byte

	certKey      *rsa.PrivateKey
	x5t, x5tS256 string
}

type serviceAccountFile struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// newAccount validates spec and parses its credentials, so that a bad key
// file is a reload error rather than a failed login later.
func newAccount(spec AccountSpec, hc *http.Client) (*account, error) {
	a := &account{spec: spec, tokenURL: spec.TokenURL, client: hc}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("tokens: account %q: %s", spec.Name, fmt.Sprintf(format, args...))
	}
	if spec.Name == "" {
		return nil, errors.New("tokens: account without a name")
	}
	if spec.Wildcard {
		at := strings.IndexByte(spec.Name, '@')
		if !strings.HasPrefix(spec.Name, "*@") || at != 1 || len(spec.Name) < 3 {
			return nil, bad("a wildcard account is named *@domain")
		}
		if spec.Flow != FlowServiceAccount {
			return nil, bad("a wildcard account needs flow service_account")
		}
		a.domain = strings.ToLower(spec.Name[1:])
	}
	switch spec.Flow {
	case FlowAuthCode, FlowDevice:
		if spec.ClientID == "" {
			return nil, bad("flow %s needs a client id", spec.Flow)
		}
		if spec.Flow == FlowAuthCode && spec.AuthURL == "" {
			return nil, bad("flow authcode needs an authorization URL")
		}
	case FlowServiceAccount:
		var f serviceAccountFile
		if err := json.Unmarshal(spec.ServiceAccountKey, &f); err != nil {
			return nil, bad("service account key is not JSON: %v", err)
		}
		if f.Type != "service_account" || f.ClientEmail == "" || f.PrivateKey == "" {
			return nil, bad(`service account key is not a Google key file (needs "type": "service_account", client_email, private_key)`)
		}
		if _, err := parseRSAKey([]byte(f.PrivateKey)); err != nil {
			return nil, bad("service account private_key: %v", err)
		}
		a.saEmail, a.saKeyID, a.saKeyPEM = f.ClientEmail, f.PrivateKeyID, []byte(f.PrivateKey)
		if a.tokenURL == "" {
			a.tokenURL = f.TokenURI
		}
	case FlowClientCredentials:
		if spec.ClientID == "" {
			return nil, bad("flow client_credentials needs a client id")
		}
		if len(spec.Scopes) == 0 {
			return nil, bad("flow client_credentials needs scopes (for Microsoft https://outlook.office365.com/.default)")
		}
		if len(spec.ClientCertPEM) > 0 || len(spec.ClientKeyPEM) > 0 {
			if err := a.parseCertificate(); err != nil {
				return nil, bad("client certificate: %v", err)
			}
		} else if spec.ClientSecret == "" {
			return nil, bad("flow client_credentials needs a client secret or a certificate and key")
		}
	default:
		return nil, bad("unknown flow %q", spec.Flow)
	}
	if a.tokenURL == "" {
		return nil, bad("no token URL")
	}
	if a.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: spec.RootCAs, MinVersion: tls.VersionTLS12}
		a.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	return a, nil
}

func (a *account) parseCertificate() error {
	blk, _ := pem.Decode(a.spec.ClientCertPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	key, err := parseRSAKey(a.spec.ClientKeyPEM)
	if err != nil {
		return err
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("the key does not belong to the certificate")
	}
	s1 := sha1.Sum(cert.Raw) // x5t is defined as SHA-1 (RFC 7515 §4.1.7); Microsoft documents it
	s256 := sha256.Sum256(cert.Raw)
	a.certKey = key
	a.x5t = base64.RawURLEncoding.EncodeToString(s1[:])
	a.x5tS256 = base64.RawURLEncoding.EncodeToString(s256[:])
	return nil
}

// parseRSAKey reads a PEM RSA private key, PKCS#8 or PKCS#1.
func parseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, errors.New("not a PKCS#8 or PKCS#1 private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

// subjectKey says which token a Source for subject uses: service accounts
// have one per subject, every other flow one per account.
func (a *account) subjectKey(subject string) (string, error) {
	if a.spec.Flow != FlowServiceAccount {
		return "", nil
	}
	if a.spec.Wildcard {
		s := strings.ToLower(subject)
		if len(s) <= len(a.domain) || !strings.HasSuffix(s, a.domain) {
			return "", fmt.Errorf("tokens: %q is not in the domain of account %q", subject, a.spec.Name)
		}
		return s, nil
	}
	if subject == "" {
		if subject = a.spec.Subject; subject == "" {
			subject = a.spec.Name
		}
	}
	return subject, nil
}

// googleTokenURL: Google-specific hints (the 7-day Testing status) apply.
func (a *account) googleTokenURL() bool {
	u := strings.ToLower(a.tokenURL)
	return strings.Contains(u, "googleapis.com/") || strings.Contains(u, "google.com/")
}
