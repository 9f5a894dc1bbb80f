package fakeoauth

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// jwtHeader is the JOSE header of an RS256 JWT (RFC 7515 §4.1).
type jwtHeader struct {
	Alg     string `json:"alg"`
	Kid     string `json:"kid"`
	X5t     string `json:"x5t"`
	X5tS256 string `json:"x5t#S256"`
}

// jwtClaims are the claims RFC 7523 §3 and Google's service-account
// assertions use. aud may be a string or an array (RFC 7519 §4.1.3).
type jwtClaims struct {
	Iss   string          `json:"iss"`
	Sub   string          `json:"sub"`
	Aud   json.RawMessage `json:"aud"`
	Scope string          `json:"scope"`
	Exp   int64           `json:"exp"`
	Iat   int64           `json:"iat"`
	Nbf   int64           `json:"nbf"`
	Jti   string          `json:"jti"`
}

func (c *jwtClaims) hasAudience(want string) bool {
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return one == want
	}
	var many []string
	return json.Unmarshal(c.Aud, &many) == nil && slices.Contains(many, want)
}

// parseJWT splits and decodes a compact JWS without verifying it.
func parseJWT(tok string) (h jwtHeader, c jwtClaims, signed, sig []byte, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return h, c, nil, nil, errors.New("not a compact JWT")
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return h, c, nil, nil, errors.New("JWT is not base64url")
	}
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		return h, c, nil, nil, errors.New("JWT header or claims are not JSON")
	}
	if h.Alg != "RS256" {
		return h, c, nil, nil, fmt.Errorf("JWT alg %q is not RS256", h.Alg)
	}
	return h, c, []byte(parts[0] + "." + parts[1]), sig, nil
}

func verifyRS256(pub *rsa.PublicKey, signed, sig []byte) error {
	sum := sha256.Sum256(signed)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// checkTimes checks exp, iat and nbf: the assertion must be current and,
// like Google's, live at most an hour.
func (s *Server) checkTimes(c *jwtClaims) error {
	now := s.now().Unix()
	const skew = 60
	switch {
	case c.Exp == 0 || c.Exp <= now-skew:
		return errors.New("JWT expired or has no exp")
	case c.Iat != 0 && c.Iat > now+skew:
		return errors.New("JWT iat is in the future")
	case c.Nbf != 0 && c.Nbf > now+skew:
		return errors.New("JWT not valid yet (nbf)")
	case c.Iat != 0 && c.Exp-c.Iat > 3600:
		return errors.New("JWT lifetime exceeds one hour")
	}
	return nil
}

// jwtBearerLocked serves Google's service-account grant (RFC 7523 §2.1):
// iss is the service account, the assertion is signed with its key, aud is
// the token URL, sub is the user the token is for (domain-wide
// delegation); without sub the token is for the service account itself.
func (s *Server) jwtBearerLocked(form url.Values) (*tokenResponse, *oauthError) {
	h, c, signed, sig, err := parseJWT(form.Get("assertion"))
	if err != nil {
		return nil, errInvalidGrant("invalid assertion: " + err.Error())
	}
	sa := s.serviceAccounts[c.Iss]
	switch {
	case sa == nil:
		return nil, errInvalidGrant("invalid_grant: unknown service account (iss)")
	case h.Kid != "" && h.Kid != sa.keyID:
		return nil, errInvalidGrant("invalid JWT signature: unknown kid")
	case verifyRS256(sa.pub, signed, sig) != nil:
		return nil, errInvalidGrant("invalid JWT signature")
	case !c.hasAudience(s.TokenURL()):
		return nil, errInvalidGrant("invalid JWT: aud must be the token URL")
	case c.Scope == "":
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "empty or missing scope not allowed"}
	}
	if err := s.checkTimes(&c); err != nil {
		return nil, errInvalidGrant("invalid JWT: " + err.Error())
	}
	if sa.scopes != nil {
		for _, sc := range strings.Fields(c.Scope) {
			if !slices.Contains(sa.scopes, sc) {
				return nil, &oauthError{status: http.StatusUnauthorized, code: "unauthorized_client",
					desc: "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}
			}
		}
	}
	user := c.Sub
	if user == "" {
		user = c.Iss
	}
	at, life := s.issueAccessLocked(nil, user, c.Iss, c.Scope)
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(life.Seconds())}, nil
}

// verifyClientAssertionLocked checks an RFC 7523 §3 client assertion
// (Microsoft's certificate credential): signed by a registered certificate
// of the client (chosen by x5t / x5t#S256 when present), iss = sub =
// client_id, aud = token URL, current, jti never seen before.
func (s *Server) verifyClientAssertionLocked(formClientID string, form url.Values) (string, *oauthError) {
	if form.Get("client_assertion_type") != clientAssertionType {
		return "", errInvalidRequest("client_assertion_type must be " + clientAssertionType)
	}
	h, c, signed, sig, err := parseJWT(form.Get("client_assertion"))
	if err != nil {
		return "", errInvalidClient("invalid client assertion: " + err.Error())
	}
	id := c.Iss
	if formClientID != "" && formClientID != id {
		return "", errInvalidClient("client_id does not match the assertion's iss")
	}
	cl := s.clients[id]
	switch {
	case cl == nil:
		return "", errInvalidClient("unknown client")
	case c.Sub != id:
		return "", errInvalidClient("client assertion sub must equal iss")
	case !c.hasAudience(s.TokenURL()):
		return "", errInvalidClient("client assertion aud must be the token URL")
	case c.Jti == "":
		return "", errInvalidClient("client assertion has no jti")
	case s.usedJTI[c.Jti]:
		return "", errInvalidClient("client assertion replayed (jti already used)")
	}
	if err := s.checkTimes(&c); err != nil {
		return "", errInvalidClient("invalid client assertion: " + err.Error())
	}
	for _, rc := range cl.certs {
		if (h.X5t != "" && h.X5t != rc.x5t) || (h.X5tS256 != "" && h.X5tS256 != rc.x5tS256) {
			continue
		}
		if verifyRS256(rc.pub, signed, sig) == nil {
			s.usedJTI[c.Jti] = true
			return id, nil
		}
	}
	return "", errInvalidClient("client assertion is not signed by a registered certificate")
}

type registeredCert struct {
	pub          *rsa.PublicKey
	x5t, x5tS256 string // base64url thumbprints of the DER certificate
}

// RegisterCertificate adds an RSA certificate (PEM) to a client's
// credentials for client assertions, creating the client (without a secret)
// when it does not exist.
func (s *Server) RegisterCertificate(clientID string, certPEM []byte) error {
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("fakeoauth: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("fakeoauth: %w", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("fakeoauth: certificate key is not RSA")
	}
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	rc := &registeredCert{pub: pub,
		x5t:     base64.RawURLEncoding.EncodeToString(s1[:]),
		x5tS256: base64.RawURLEncoding.EncodeToString(s256[:])}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[clientID]
	if c == nil {
		c = &client{id: clientID}
		s.clients[clientID] = c
	}
	c.certs = append(c.certs, rc)
	return nil
}

// GenerateCertificate makes a self-signed RSA 2048 certificate and its
// PKCS#8 key, both PEM, for RegisterCertificate.
func GenerateCertificate(commonName string) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("fakeoauth: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("fakeoauth: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("fakeoauth: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

// ServiceAccountKey is Google's JSON key file format for a service account.
type ServiceAccountKey struct {
	Type         string `json:"type"` // "service_account"
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"` // PKCS#8 PEM
	ClientEmail  string `json:"client_email"`
	ClientID     string `json:"client_id"`
	AuthURI      string `json:"auth_uri"`
	TokenURI     string `json:"token_uri"`
}

// RegisterServiceAccount creates a service account with a fresh RSA key and
// returns its key file in Google's JSON format (token_uri is this server).
// scopes, when given, are the only scopes its domain-wide delegation allows
// (others get unauthorized_client, as Google answers).
func (s *Server) RegisterServiceAccount(email string, scopes ...string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("fakeoauth: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("fakeoauth: %w", err)
	}
	kid := make([]byte, 20)
	_, _ = rand.Read(kid)
	f := ServiceAccountKey{
		Type:         "service_account",
		ProjectID:    "fake-project",
		PrivateKeyID: hex.EncodeToString(kid),
		PrivateKey:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})),
		ClientEmail:  email,
		ClientID:     "1" + strings.Repeat("0", 20),
		AuthURI:      s.AuthURL(),
		TokenURI:     s.TokenURL(),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("fakeoauth: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serviceAccounts[email] = &serviceAccount{email: email, keyID: f.PrivateKeyID, pub: &key.PublicKey, scopes: scopes}
	return buf.Bytes(), nil
}
