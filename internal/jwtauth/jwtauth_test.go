package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keys are generated once per test binary run; no key files are committed.
type testKeys struct {
	rsa, rsaOther *rsa.PrivateKey
	ec, ecOther   *ecdsa.PrivateKey
	ec384         *ecdsa.PrivateKey
	ed            ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keysVal  testKeys
)

const testSecret = "0123456789abcdef-test-secret"

func keys(tb testing.TB) *testKeys {
	tb.Helper()
	keysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		keysVal.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keysVal.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keysVal.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		keysVal.ecOther, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		keysVal.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		_, keysVal.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
	})
	return &keysVal
}

func pkixPEM(tb testing.TB, pub any) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func pkcs1PEM(pub *rsa.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
}

func certPEM(tb testing.TB, priv *rsa.PrivateKey) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "jwt signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		tb.Fatal(err)
	}
	// Leading text, as in many .crt files, must be skipped.
	return append([]byte("subject=CN = jwt signer\n"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
}

func sign(tb testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

var b64 = base64.RawURLEncoding

// signRaw signs hand-written header and payload JSON, for payloads
// jwt.MapClaims cannot express (4.2e1, huge integers, odd headers).
func signRaw(tb testing.TB, m jwt.SigningMethod, key any, header, payload string) string {
	tb.Helper()
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	sig, err := m.Sign(in, key)
	if err != nil {
		tb.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig)
}

// unsigned builds header.payload. with an empty signature (alg "none" style).
func unsigned(header, payload string) string {
	return b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload)) + "."
}

func mustNew(tb testing.TB, c Config) *Verifier {
	tb.Helper()
	v, err := New(c)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

func TestVerify(t *testing.T) {
	k := keys(t)
	now := time.Now()
	hour := time.Hour
	secret := []byte(testSecret)
	rsaPub := pkixPEM(t, &k.rsa.PublicKey)

	hsCfg := Config{Secret: secret}
	rsCfg := Config{KeyPEM: rsaPub}
	esCfg := Config{KeyPEM: pkixPEM(t, &k.ec.PublicKey)}
	hdrHS := `{"alg":"HS256","typ":"JWT"}`

	// A valid HS256 token padded to n bytes of "pad" claim.
	padded := func(n int) string {
		return sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "pad": strings.Repeat("x", n)})
	}
	// The longest padded token that still fits the cap.
	fitting := func() string {
		best := ""
		for n := 5000; ; n++ {
			s := padded(n)
			if len(s) > MaxTokenLength {
				return best
			}
			best = s
		}
	}()

	tests := []struct {
		name     string
		cfg      Config
		token    string
		wantUID  string
		wantCode string // "" means success
	}{
		// Valid tokens, one per algorithm family and key encoding.
		{"hs256 valid", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(hour).Unix()}), "alice", ""},
		{"hs256 no exp accepted", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice"}), "alice", ""},
		{"rs256 valid", rsCfg, sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"sub": "bob", "exp": now.Add(hour).Unix()}), "bob", ""},
		{"rs256 pkcs1 pem", Config{KeyPEM: pkcs1PEM(&k.rsa.PublicKey)}, sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"sub": "bob"}), "bob", ""},
		{"rs256 certificate pem", Config{KeyPEM: certPEM(t, k.rsa)}, sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"sub": "bob"}), "bob", ""},
		{"es256 valid", esCfg, sign(t, jwt.SigningMethodES256, k.ec, jwt.MapClaims{"sub": "carol", "exp": now.Add(hour).Unix()}), "carol", ""},
		{"es384 valid", Config{KeyPEM: pkixPEM(t, &k.ec384.PublicKey)}, sign(t, jwt.SigningMethodES384, k.ec384, jwt.MapClaims{"sub": "dave"}), "dave", ""},
		{"eddsa valid", Config{KeyPEM: pkixPEM(t, k.ed.Public())}, sign(t, jwt.SigningMethodEdDSA, k.ed, jwt.MapClaims{"sub": "erin"}), "erin", ""},

		// uid claim shapes.
		{"custom claim", Config{Secret: secret, UIDClaim: "user_id"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ignored", "user_id": "u-7"}), "u-7", ""},
		{"custom claim missing", Config{Secret: secret, UIDClaim: "user_id"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice"}), "", CodeClaimsInvalid},
		{"numeric claim", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": 42}), "42", ""},
		{"numeric claim exponent", hsCfg, signRaw(t, jwt.SigningMethodHS256, secret, hdrHS, `{"sub":4.2e1}`), "42", ""},
		{"numeric claim 42.0", hsCfg, signRaw(t, jwt.SigningMethodHS256, secret, hdrHS, `{"sub":42.0}`), "42", ""},
		{"numeric claim big integer exact", hsCfg, signRaw(t, jwt.SigningMethodHS256, secret, hdrHS, `{"sub":12345678901234567890}`), "12345678901234567890", ""},
		{"numeric claim negative", hsCfg, signRaw(t, jwt.SigningMethodHS256, secret, hdrHS, `{"sub":-3}`), "-3", ""},
		{"numeric claim 1e20", hsCfg, signRaw(t, jwt.SigningMethodHS256, secret, hdrHS, `{"sub":1e20}`), "100000000000000000000", ""},
		{"numeric claim out of range", hsCfg, signRaw(t, jwt.SigningMethodHS256, secret, hdrHS, `{"sub":1e999999999}`), "", CodeClaimsInvalid},
		{"uid missing", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"name": "alice"}), "", CodeClaimsInvalid},
		{"uid empty", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": ""}), "", CodeClaimsInvalid},
		{"uid bool", Config{Secret: secret, UIDClaim: "uid"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"uid": true}), "", CodeClaimsInvalid},
		{"uid object", Config{Secret: secret, UIDClaim: "uid"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"uid": map[string]any{"id": 1}}), "", CodeClaimsInvalid},
		{"uid null", Config{Secret: secret, UIDClaim: "uid"}, signRaw(t, jwt.SigningMethodHS256, secret, hdrHS, `{"uid":null}`), "", CodeClaimsInvalid},

		// Time claims.
		{"expired", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-hour).Unix()}), "", CodeExpired},
		{"expired rs256", rsCfg, sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"sub": "bob", "exp": now.Add(-hour).Unix()}), "", CodeExpired},
		{"nbf in future", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "nbf": now.Add(hour).Unix()}), "", CodeNotYetValid},
		{"nbf in past", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "nbf": now.Add(-hour).Unix()}), "alice", ""},
		{"slightly expired no leeway", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-5 * time.Second).Unix()}), "", CodeExpired},
		{"leeway accepts slightly expired", Config{Secret: secret, Leeway: time.Minute}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-5 * time.Second).Unix()}), "alice", ""},
		{"leeway accepts slightly early", Config{Secret: secret, Leeway: time.Minute}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "nbf": now.Add(5 * time.Second).Unix()}), "alice", ""},
		{"leeway too small", Config{Secret: secret, Leeway: time.Minute}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-hour).Unix()}), "", CodeExpired},
		{"exp wrong type", hsCfg, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": "tomorrow"}), "", CodeClaimsInvalid},

		// Signatures.
		{"wrong secret", hsCfg, sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-enough-length"), jwt.MapClaims{"sub": "alice"}), "", CodeSignatureInvalid},
		{"rs256 other key", rsCfg, sign(t, jwt.SigningMethodRS256, k.rsaOther, jwt.MapClaims{"sub": "bob"}), "", CodeSignatureInvalid},
		{"es256 other key", esCfg, sign(t, jwt.SigningMethodES256, k.ecOther, jwt.MapClaims{"sub": "carol"}), "", CodeSignatureInvalid},
		{"rs256 tampered payload", rsCfg, func() string {
			good := strings.Split(sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"sub": "bob"}), ".")
			return good[0] + "." + b64.EncodeToString([]byte(`{"sub":"admin"}`)) + "." + good[2]
		}(), "", CodeSignatureInvalid},
		{"hs256 empty signature", hsCfg, unsigned(hdrHS, `{"sub":"alice"}`), "", CodeSignatureInvalid},

		// Algorithm pinning.
		{"alg none to hs256", hsCfg, unsigned(`{"alg":"none","typ":"JWT"}`, `{"sub":"admin"}`), "", CodeAlgorithmRefused},
		{"alg none to rs256", rsCfg, unsigned(`{"alg":"none"}`, `{"sub":"admin"}`), "", CodeAlgorithmRefused},
		{"alg NONE uppercase", hsCfg, unsigned(`{"alg":"NONE"}`, `{"sub":"admin"}`), "", CodeAlgorithmRefused},
		{"alg missing", hsCfg, unsigned(`{"typ":"JWT"}`, `{"sub":"admin"}`), "", CodeAlgorithmRefused},
		{"alg not a string", hsCfg, unsigned(`{"alg":256}`, `{"sub":"admin"}`), "", CodeAlgorithmRefused},
		{"alg unknown", hsCfg, unsigned(`{"alg":"HS1024"}`, `{"sub":"admin"}`), "", CodeAlgorithmRefused},
		// The classic key-confusion attack: the public key, being public,
		// is used as an HMAC secret.
		{"hs256 signed with rsa public pem to rs256", rsCfg, sign(t, jwt.SigningMethodHS256, rsaPub, jwt.MapClaims{"sub": "admin"}), "", CodeAlgorithmRefused},
		{"rs256 to hs256", hsCfg, sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"sub": "bob"}), "", CodeAlgorithmRefused},
		{"es256 to rs256", rsCfg, sign(t, jwt.SigningMethodES256, k.ec, jwt.MapClaims{"sub": "carol"}), "", CodeAlgorithmRefused},
		{"ps256 to rs256", rsCfg, sign(t, jwt.SigningMethodPS256, k.rsa, jwt.MapClaims{"sub": "bob"}), "", CodeAlgorithmRefused},
		{"hs384 to hs256", hsCfg, sign(t, jwt.SigningMethodHS384, secret, jwt.MapClaims{"sub": "alice"}), "", CodeAlgorithmRefused},

		// Issuer and audience.
		{"issuer match", Config{Secret: secret, Issuer: "auth.example"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "iss": "auth.example"}), "alice", ""},
		{"issuer mismatch", Config{Secret: secret, Issuer: "auth.example"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "iss": "evil.example"}), "", CodeClaimsInvalid},
		{"issuer missing", Config{Secret: secret, Issuer: "auth.example"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice"}), "", CodeClaimsInvalid},
		{"audience match string", Config{Secret: secret, Audience: "push"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "aud": "push"}), "alice", ""},
		{"audience match in list", Config{Secret: secret, Audience: "push"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "aud": []string{"api", "push"}}), "alice", ""},
		{"audience mismatch", Config{Secret: secret, Audience: "push"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "aud": []string{"api", "billing"}}), "", CodeClaimsInvalid},
		{"audience missing", Config{Secret: secret, Audience: "push"}, sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice"}), "", CodeClaimsInvalid},

		// Malformed input.
		{"garbage", hsCfg, "this is not a token", "", CodeMalformed},
		{"empty", hsCfg, "", "", CodeMalformed},
		{"two segments", hsCfg, "abc.def", "", CodeMalformed},
		{"four segments", hsCfg, "a.b.c.d", "", CodeMalformed},
		{"bad base64", hsCfg, "a.b.c", "", CodeMalformed},
		{"header not json", hsCfg, b64.EncodeToString([]byte("nope")) + "." + b64.EncodeToString([]byte(`{"sub":"a"}`)) + ".", "", CodeMalformed},
		{"payload not object", hsCfg, signRaw(t, jwt.SigningMethodHS256, secret, hdrHS, `["alice"]`), "", CodeMalformed},
		{"signature bad base64", hsCfg, b64.EncodeToString([]byte(hdrHS)) + "." + b64.EncodeToString([]byte(`{"sub":"a"}`)) + ".!!!", "", CodeMalformed},
		{"crit header", hsCfg, signRaw(t, jwt.SigningMethodHS256, secret, `{"alg":"HS256","crit":["exp"]}`, `{"sub":"alice"}`), "", CodeMalformed},
		{"oversize", hsCfg, padded(MaxTokenLength), "", CodeMalformed},
		{"just under the cap", hsCfg, fitting, "alice", ""},
		{"one byte over the cap", hsCfg, fitting + strings.Repeat("A", MaxTokenLength+1-len(fitting)), "", CodeMalformed},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustNew(t, tc.cfg)
			uid, err := v.Verify(tc.token)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Verify: unexpected error %v (%#v)", err, err)
				}
				if uid != tc.wantUID {
					t.Fatalf("uid = %q, want %q", uid, tc.wantUID)
				}
				return
			}
			if uid != "" {
				t.Errorf("uid = %q alongside an error", uid)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error with code %s", err, err, tc.wantCode)
			}
			if e.Code != tc.wantCode {
				t.Fatalf("code = %s, want %s (message %q, cause %v)", e.Code, tc.wantCode, e.Message, e.Unwrap())
			}
			if e.Error() == "" || e.Error() != e.Message {
				t.Errorf("Error() = %q, Message = %q", e.Error(), e.Message)
			}
		})
	}
}

func TestErrorUnwrapsJWTCause(t *testing.T) {
	secret := []byte(testSecret)
	v := mustNew(t, Config{Secret: secret})
	_, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-time.Hour).Unix()}))
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("errors.Is(err, jwt.ErrTokenExpired) = false for %v", err)
	}
}

func TestAlgorithm(t *testing.T) {
	k := keys(t)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"hmac", Config{Secret: []byte(testSecret)}, "HS256"},
		{"rsa pkix", Config{KeyPEM: pkixPEM(t, &k.rsa.PublicKey)}, "RS256"},
		{"rsa pkcs1", Config{KeyPEM: pkcs1PEM(&k.rsa.PublicKey)}, "RS256"},
		{"rsa certificate", Config{KeyPEM: certPEM(t, k.rsa)}, "RS256"},
		{"ecdsa p256", Config{KeyPEM: pkixPEM(t, &k.ec.PublicKey)}, "ES256"},
		{"ecdsa p384", Config{KeyPEM: pkixPEM(t, &k.ec384.PublicKey)}, "ES384"},
		{"ed25519", Config{KeyPEM: pkixPEM(t, k.ed.Public())}, "EdDSA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustNew(t, tc.cfg).Algorithm(); got != tc.want {
				t.Fatalf("Algorithm() = %s, want %s", got, tc.want)
			}
		})
	}
	if got := mustNew(t, Config{Secret: []byte(testSecret)}).UIDClaim(); got != "sub" {
		t.Errorf("default UIDClaim() = %q, want sub", got)
	}
}

func TestNewErrors(t *testing.T) {
	k := keys(t)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"no key", Config{}, ErrNoKey},
		{"empty secret slice", Config{Secret: []byte{}}, ErrNoKey},
		{"both keys", Config{Secret: []byte(testSecret), KeyPEM: pkixPEM(t, &k.rsa.PublicKey)}, ErrBothKeys},
		{"short secret", Config{Secret: []byte("fifteen-bytes!!")}, ErrWeakSecret},
		{"garbage pem", Config{KeyPEM: []byte("not a pem file")}, ErrBadPEM},
		{"bad der", Config{KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})}, ErrBadPEM},
		{"bad pkcs1 der", Config{KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: []byte("junk")})}, ErrBadPEM},
		{"bad certificate der", Config{KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})}, ErrBadPEM},
		{"private key refused", Config{KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})}, ErrBadPEM},
		{"unrelated block only", Config{KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("x")})}, ErrBadPEM},
		{"ecdsa p224 unsupported", Config{KeyPEM: pkixPEM(t, &p224.PublicKey)}, ErrUnsupportedKey},
		{"rsa 1024 too small", Config{KeyPEM: pkixPEM(t, &rsa1024.PublicKey)}, ErrUnsupportedKey},
		{"negative leeway", Config{Secret: []byte(testSecret), Leeway: -time.Second}, ErrBadConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.cfg)
			if v != nil {
				t.Errorf("New returned a Verifier alongside error %v", err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("New error = %v, want %v", err, tc.want)
			}
		})
	}
}

// The caller's secret slice may be reused; the Verifier must not follow it.
func TestSecretCopied(t *testing.T) {
	secret := []byte(testSecret)
	v := mustNew(t, Config{Secret: secret})
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": "alice"})
	for i := range secret {
		secret[i] = 0
	}
	if uid, err := v.Verify(tok); err != nil || uid != "alice" {
		t.Fatalf("Verify = %q, %v", uid, err)
	}
}

// One Verifier serves every connection; -race checks it is safe to share.
func TestConcurrentVerify(t *testing.T) {
	k := keys(t)
	v := mustNew(t, Config{KeyPEM: pkixPEM(t, &k.ec.PublicKey)})
	good := sign(t, jwt.SigningMethodES256, k.ec, jwt.MapClaims{"sub": "carol"})
	bad := sign(t, jwt.SigningMethodES256, k.ecOther, jwt.MapClaims{"sub": "carol"})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if uid, err := v.Verify(good); err != nil || uid != "carol" {
					t.Errorf("good: %q, %v", uid, err)
					return
				}
				if _, err := v.Verify(bad); err == nil {
					t.Error("bad token accepted")
					return
				}
			}
		}()
	}
	wg.Wait()
}

var knownCodes = map[string]bool{
	CodeMalformed: true, CodeExpired: true, CodeNotYetValid: true,
	CodeSignatureInvalid: true, CodeAlgorithmRefused: true, CodeClaimsInvalid: true,
}

func FuzzVerify(f *testing.F) {
	k := keys(f)
	secret := []byte(testSecret)
	rsaPub := pkixPEM(f, &k.rsa.PublicKey)
	verifiers := []*Verifier{
		mustNew(f, Config{Secret: secret}),
		mustNew(f, Config{Secret: secret, UIDClaim: "uid", Issuer: "iss", Audience: "aud", Leeway: time.Second}),
		mustNew(f, Config{KeyPEM: rsaPub}),
		mustNew(f, Config{KeyPEM: pkixPEM(f, &k.ec.PublicKey)}),
	}
	f.Add(sign(f, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}))
	f.Add(sign(f, jwt.SigningMethodHS256, secret, jwt.MapClaims{"uid": 42, "iss": "iss", "aud": []string{"aud"}}))
	f.Add(sign(f, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"sub": "bob"}))
	f.Add(sign(f, jwt.SigningMethodES256, k.ec, jwt.MapClaims{"sub": "carol", "nbf": 1}))
	f.Add(sign(f, jwt.SigningMethodHS256, rsaPub, jwt.MapClaims{"sub": "admin"}))
	f.Add(unsigned(`{"alg":"none"}`, `{"sub":"admin"}`))
	f.Add(signRaw(f, jwt.SigningMethodHS256, secret, `{"alg":"HS256"}`, `{"sub":1e400}`))
	f.Add("")
	f.Add("a.b.c")
	f.Add("....")
	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range verifiers {
			uid, err := v.Verify(token)
			if err == nil {
				if uid == "" {
					t.Fatalf("empty uid without error for %q", token)
				}
				continue
			}
			if uid != "" {
				t.Fatalf("uid %q returned with error %v", uid, err)
			}
			var e *Error
			if !errors.As(err, &e) || !knownCodes[e.Code] || e.Message == "" {
				t.Fatalf("error %#v is not an *Error with a known code", err)
			}
		}
	})
}
