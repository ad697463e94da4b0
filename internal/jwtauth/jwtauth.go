// Package jwtauth verifies the login tokens (JWTs) that bind a push hub
// connection to a uid.
//
// A Verifier is built once from a Config and is safe for concurrent use.
// The signing algorithm is fixed by the configured key, never by the token:
// a token whose header names another algorithm ("none", or HS256 signed with
// an RSA public key as the HMAC secret) is refused before any signature check.
package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config selects how tokens are verified.
//
// Registered time claims: "exp" and "nbf" are enforced when present, but
// neither is required — a token without "exp" never expires. Issue
// short-lived tokens if that matters to you. "iat" is not checked.
type Config struct {
	// Secret is the HMAC secret: HS256 only. At least MinSecretLength bytes.
	// Exactly one of Secret and KeyPEM is set.
	Secret []byte

	// KeyPEM is a PEM public key: a PKIX "PUBLIC KEY" block, a PKCS #1
	// "RSA PUBLIC KEY" block, or a "CERTIFICATE" (only its key is used; its
	// validity dates and chain are not checked). The algorithm follows the
	// key: RSA (>= 2048 bits) -> RS256, ECDSA P-256 -> ES256,
	// P-384 -> ES384, P-521 -> ES512, Ed25519 -> EdDSA.
	// Private keys are refused: the hub only ever needs the public half.
	KeyPEM []byte

	// UIDClaim names the claim holding the uid; "" means "sub". The claim
	// must be a non-empty string or a JSON number (42 -> "42", 4.2e1 -> "42").
	UIDClaim string

	// Issuer, if set, must equal the token's "iss" (which is then required).
	Issuer string

	// Audience, if set, must be one of the token's "aud" values (which is
	// then required).
	Audience string

	// Leeway is the clock skew allowed for "exp" and "nbf"; 0 means none.
	Leeway time.Duration
}

// MinSecretLength is the shortest HMAC secret New accepts; shorter secrets
// are guessable offline from a single captured token.
const MinSecretLength = 16

// MaxTokenLength caps the token size, checked before any decoding so a
// hostile client cannot make the server base64- and JSON-decode megabytes.
const MaxTokenLength = 8 << 10

// Errors returned (wrapped) by New; test with errors.Is.
var (
	ErrNoKey          = errors.New("jwtauth: no key configured (set a secret or a public key)")
	ErrBothKeys       = errors.New("jwtauth: both a secret and a public key are configured (set exactly one)")
	ErrWeakSecret     = errors.New("jwtauth: HMAC secret too short")
	ErrBadPEM         = errors.New("jwtauth: cannot parse PEM public key")
	ErrUnsupportedKey = errors.New("jwtauth: unsupported key type")
	ErrBadConfig      = errors.New("jwtauth: invalid configuration")
)

// Stable error codes carried by *Error.
const (
	CodeMalformed        = "token_malformed"
	CodeExpired          = "token_expired"
	CodeNotYetValid      = "token_not_yet_valid"
	CodeSignatureInvalid = "token_signature_invalid"
	CodeAlgorithmRefused = "token_algorithm_refused"
	CodeClaimsInvalid    = "token_claims_invalid"
)

const (
	defaultUIDClaim = "sub"
	maxExactFloat   = 1 << 53 // float64 holds every integer below this
)

// Error is the error Verify returns. Code is stable and machine-readable;
// Message is for humans and safe to show to the client (it never contains
// key material or claim values).
type Error struct {
	Code    string
	Message string
	err     error // underlying golang-jwt error, for logs and errors.Is
}

func (e *Error) Error() string { return e.Message }

// Unwrap exposes the golang-jwt cause (e.g. jwt.ErrTokenExpired).
func (e *Error) Unwrap() error { return e.err }

func newErr(code, msg string, cause error) *Error {
	return &Error{Code: code, Message: msg, err: cause}
}

// Verifier checks tokens against one key and one algorithm.
type Verifier struct {
	alg      string
	key      any
	uidClaim string
	parser   *jwt.Parser
}

// New validates c and builds a Verifier.
func New(c Config) (*Verifier, error) {
	if c.Leeway < 0 {
		return nil, fmt.Errorf("%w: negative leeway %s", ErrBadConfig, c.Leeway)
	}
	var (
		alg string
		key any
	)
	switch {
	case len(c.Secret) > 0 && len(c.KeyPEM) > 0:
		return nil, ErrBothKeys
	case len(c.Secret) > 0:
		if len(c.Secret) < MinSecretLength {
			return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrWeakSecret, len(c.Secret), MinSecretLength)
		}
		// Copy so later changes to the caller's slice cannot alter the key.
		alg, key = jwt.SigningMethodHS256.Alg(), append([]byte(nil), c.Secret...)
	case len(c.KeyPEM) > 0:
		pub, err := parsePublicKeyPEM(c.KeyPEM)
		if err != nil {
			return nil, err
		}
		if alg, err = algorithmFor(pub); err != nil {
			return nil, err
		}
		key = pub
	default:
		return nil, ErrNoKey
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{alg}),
		jwt.WithLeeway(c.Leeway),
		// Keep numeric claims exact: a uid like 12345678901234567890 must not
		// be rounded through float64.
		jwt.WithJSONNumber(),
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	uidClaim := c.UIDClaim
	if uidClaim == "" {
		uidClaim = defaultUIDClaim
	}
	return &Verifier{alg: alg, key: key, uidClaim: uidClaim, parser: jwt.NewParser(opts...)}, nil
}

// Algorithm returns the only algorithm this Verifier accepts ("HS256",
// "RS256", "ES256", ...).
func (v *Verifier) Algorithm() string { return v.alg }

// UIDClaim returns the name of the claim the uid is read from.
func (v *Verifier) UIDClaim() string { return v.uidClaim }

// errCrit is returned from the key function for tokens with a "crit" header:
// RFC 7515 §4.1.11 requires refusing critical extensions we do not implement
// (we implement none).
var errCrit = errors.New(`unsupported "crit" header`)

// Verify checks token and returns its uid. On failure uid is "" and err is
// an *Error.
func (v *Verifier) Verify(token string) (uid string, err error) {
	uid, _, err = v.VerifyClaims(token)
	return uid, err
}

// VerifyClaims is Verify that also returns the token's claims.
func (v *Verifier) VerifyClaims(token string) (uid string, claims map[string]any, err error) {
	if len(token) > MaxTokenLength {
		return "", nil, newErr(CodeMalformed, fmt.Sprintf("token is longer than %d bytes", MaxTokenLength), nil)
	}
	tok, perr := v.parser.Parse(token, v.keyFunc)
	if perr != nil {
		return "", nil, v.classify(tok, perr)
	}
	// Belt and braces: golang-jwt already enforced both through
	// WithValidMethods and the key function.
	if !tok.Valid || tok.Method == nil || tok.Method.Alg() != v.alg {
		return "", nil, newErr(CodeAlgorithmRefused, "token algorithm is not accepted", nil)
	}
	mc, ok := tok.Claims.(jwt.MapClaims)
	if !ok {
		return "", nil, newErr(CodeClaimsInvalid, "token claims are invalid", nil)
	}
	uid, err = v.uidFrom(mc)
	if err != nil {
		return "", nil, err
	}
	return uid, map[string]any(mc), nil
}

// keyFunc hands golang-jwt the configured key, re-checking the algorithm so
// the pin does not rest on a single option.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if t.Method == nil || t.Method.Alg() != v.alg {
		return nil, fmt.Errorf("algorithm %v refused", t.Header["alg"])
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, errCrit
	}
	return v.key, nil
}

// classify maps a golang-jwt error to an *Error. Order matters: an algorithm
// mismatch surfaces from golang-jwt as ErrTokenSignatureInvalid (or
// ErrTokenUnverifiable for unknown algorithms), so it is tested first, on
// the header itself.
func (v *Verifier) classify(tok *jwt.Token, err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed), tok == nil:
		return newErr(CodeMalformed, "token is malformed", err)
	case headerAlg(tok) != v.alg:
		return newErr(CodeAlgorithmRefused, fmt.Sprintf("token algorithm is not accepted (want %s)", v.alg), err)
	case errors.Is(err, errCrit):
		return newErr(CodeMalformed, `token has an unsupported "crit" header`, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return newErr(CodeSignatureInvalid, "token signature is invalid", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return newErr(CodeExpired, "token is expired", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return newErr(CodeNotYetValid, "token is not valid yet", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return newErr(CodeClaimsInvalid, "token issuer is not accepted", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return newErr(CodeClaimsInvalid, "token audience is not accepted", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return newErr(CodeClaimsInvalid, "token lacks a required claim (iss or aud)", err)
	case errors.Is(err, jwt.ErrInvalidType):
		return newErr(CodeClaimsInvalid, "token has a registered claim of the wrong type", err)
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return newErr(CodeClaimsInvalid, "token claims are invalid", err)
	default:
		// Unexpected: refuse, without guessing a more specific reason.
		return newErr(CodeMalformed, "token is malformed", err)
	}
}

func headerAlg(t *jwt.Token) string {
	s, _ := t.Header["alg"].(string)
	return s
}

// uidFrom reads the uid claim: a non-empty string, or a JSON number
// rendered without exponent.
func (v *Verifier) uidFrom(claims jwt.MapClaims) (string, error) {
	raw, ok := claims[v.uidClaim]
	if !ok {
		return "", newErr(CodeClaimsInvalid, fmt.Sprintf("token lacks the %q claim", v.uidClaim), nil)
	}
	switch x := raw.(type) {
	case string:
		if x == "" {
			return "", newErr(CodeClaimsInvalid, fmt.Sprintf("token %q claim is empty", v.uidClaim), nil)
		}
		return x, nil
	case json.Number:
		if s, ok := formatNumber(x); ok {
			return s, nil
		}
		return "", newErr(CodeClaimsInvalid, fmt.Sprintf("token %q claim is not a usable number", v.uidClaim), nil)
	default:
		return "", newErr(CodeClaimsInvalid, fmt.Sprintf("token %q claim must be a string or a number", v.uidClaim), nil)
	}
}

// formatNumber renders a JSON number as a uid. Plain integer literals are
// kept digit for digit (no float rounding); anything else (fraction,
// exponent) goes through float64 and is printed without exponent, so 4.2e1
// and 42.0 both give "42". big.Rat is avoided on purpose: 1e999999999 would
// make it allocate gigabytes.
func formatNumber(n json.Number) (string, bool) {
	s := string(n)
	if isIntLiteral(s) {
		return s, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", false
	}
	if f == math.Trunc(f) && math.Abs(f) < maxExactFloat {
		return strconv.FormatInt(int64(f), 10), true
	}
	return strconv.FormatFloat(f, 'f', -1, 64), true
}

func isIntLiteral(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parsePublicKeyPEM returns the public key of the first key-bearing PEM
// block, skipping any text or unrelated blocks before it.
func parsePublicKeyPEM(data []byte) (any, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no PEM public key, RSA public key or certificate block found", ErrBadPEM)
		}
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadPEM, err)
			}
			return k, nil
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadPEM, err)
			}
			return k, nil
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadPEM, err)
			}
			return cert.PublicKey, nil
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			// Refuse rather than derive: the private key has no business on
			// the hub, and accepting it would invite copying it there.
			return nil, fmt.Errorf("%w: got a %s; give the public key instead (openssl pkey -in key.pem -pubout)", ErrBadPEM, block.Type)
		}
	}
}

// algorithmFor pins the algorithm to the key type.
func algorithmFor(pub any) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 {
			return "", fmt.Errorf("%w: RSA key of %d bits, need at least 2048", ErrUnsupportedKey, bits)
		}
		return jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256.Alg(), nil
		case elliptic.P384():
			return jwt.SigningMethodES384.Alg(), nil
		case elliptic.P521():
			return jwt.SigningMethodES512.Alg(), nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s (use P-256, P-384 or P-521)", ErrUnsupportedKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg(), nil
	default:
		return "", fmt.Errorf("%w: %T (use RSA, ECDSA or Ed25519)", ErrUnsupportedKey, pub)
	}
}
