package harness

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token signs claims with method and key.
func Token(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing %v with %s: %v", claims, method.Alg(), err)
	}
	return s
}

// NoneToken is an unsigned token (alg none) carrying claims.
func NoneToken(t testing.TB, claims jwt.MapClaims) string {
	return Token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims)
}

// Claims are valid claims for uid: its sub, expiring in an hour.
func Claims(uid string) jwt.MapClaims {
	return jwt.MapClaims{"sub": uid, "exp": time.Now().Add(time.Hour).Unix()}
}

// ExpiredClaims are claims for uid that expired an hour ago.
func ExpiredClaims(uid string) jwt.MapClaims {
	return jwt.MapClaims{"sub": uid, "exp": time.Now().Add(-time.Hour).Unix()}
}

// Bearer is an Authorization header carrying token.
func Bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// WritePublicKey writes pub to path as a PEM "PUBLIC KEY" and returns the PEM.
func WritePublicKey(t testing.TB, path string, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}
