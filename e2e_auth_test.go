package pushhub_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

const jwtSecret = "e2e-secret-of-at-least-16-bytes"

// TestE2EAuthJWTSecret: auth jwt with an HS256 secret from
// {env.PUSH_JWT_SECRET}; the token in the first frame, in an Authorization
// header and in ?token=; expired and unsigned tokens refused; the uid from
// sub or from a named claim.
func TestE2EAuthJWTSecret(t *testing.T) {
	t.Setenv("PUSH_JWT_SECRET", jwtSecret)
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_jwt
		auth jwt {env.PUSH_JWT_SECRET}
	}
	push_hub /ws-claim {
		hub e2e_jwt
		auth jwt {env.PUSH_JWT_SECRET} {
			uid_claim user_id
		}
	}
	push_hub /ws-text {
		hub e2e_jwt
		protocol text
		auth jwt {env.PUSH_JWT_SECRET}
	}
}

http://localhost:%d {
	push_api {
		hub e2e_jwt
	}
}
`, wsPort, apiPort))
	secret := []byte(jwtSecret)
	hs := func(c jwt.MapClaims) string { return signToken(t, jwt.SigningMethodHS256, secret, c) }

	// The token in the first frame.
	alice := dial(t, "alice (first frame)", wsURL+"/ws", nil)
	alice.loginJSON("token", hs(validClaims("alice")), "alice", 0)
	// In the Authorization header: logged in at the upgrade, greeted at once.
	bob := dial(t, "bob (header)", wsURL+"/ws", bearer(hs(validClaims("bob"))))
	bob.expectWelcome("bob", 0)
	// In ?token=.
	carol := dial(t, "carol (query)", wsURL+"/ws?token="+url.QueryEscape(hs(validClaims("carol"))), nil)
	carol.expectWelcome("carol", 0)
	// The uid from a named claim, not from sub.
	dave := dial(t, "dave (uid_claim)", wsURL+"/ws-claim", nil)
	dave.loginJSON("token", hs(jwt.MapClaims{"sub": "not-dave", "user_id": "dave", "exp": validClaims("")["exp"]}), "dave", 0)
	// The recipe's protocol: the first frame is the token.
	erin := dial(t, "erin (text)", wsURL+"/ws-text", nil)
	erin.send(hs(validClaims("erin")))
	erin.expect("login success, your uid is erin")

	post(t, apiURL+"/send", `{"uids":["alice","bob","carol","dave","erin","not-dave"],"data":"hi"}`).expectJSON(t, http.StatusOK, receipt(5, 0))
	for _, c := range []*wsConn{alice, bob, carol, dave} {
		c.expect(`{"type":"message","seq":1,"data":"hi"}`)
	}
	erin.expect("hi")

	// Refused in the first frame: an error frame with the token's code, then 4001.
	for _, tc := range []struct{ name, token, code string }{
		{"expired", hs(expiredClaims("mallory")), "token_expired"},
		{"alg none", noneToken(validClaims("mallory")), "token_algorithm_refused"},
		{"wrong secret", signToken(t, jwt.SigningMethodHS256, []byte("another-secret-16-bytes+"), validClaims("mallory")), "token_signature_invalid"},
		{"garbage", "not.a.token", "token_malformed"},
	} {
		c := dial(t, tc.name+" (first frame)", wsURL+"/ws", nil)
		c.send(`{"type":"login","token":"` + tc.token + `"}`)
		c.expectError(tc.code, "")
		c.expectClose(4001)
	}
	// The text protocol has no error frames: 4001 only.
	t1 := dial(t, "expired (text)", wsURL+"/ws-text", nil)
	t1.send(hs(expiredClaims("mallory")))
	t1.expectClose(4001)

	// Refused in the header or the query: HTTP 401 on the upgrade.
	dialRefused(t, wsURL+"/ws", bearer(hs(expiredClaims("mallory"))), http.StatusUnauthorized)
	dialRefused(t, wsURL+"/ws", bearer(noneToken(validClaims("mallory"))), http.StatusUnauthorized)
	dialRefused(t, wsURL+"/ws?token="+url.QueryEscape(hs(expiredClaims("mallory"))), nil, http.StatusUnauthorized)
	dialRefused(t, wsURL+"/ws?token="+url.QueryEscape(noneToken(validClaims("mallory"))), nil, http.StatusUnauthorized)
	dialRefused(t, wsURL+"/ws", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("a:b"))}}, http.StatusUnauthorized)
	get(t, apiURL+"/online?uid=mallory").expectJSON(t, http.StatusOK, online("mallory", 0))
}

// TestE2EAuthJWTKeys: auth jwt_key with PEM public keys written at test
// time: RS256 and ES256, and no algorithm but the key's.
func TestE2EAuthJWTKeys(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := writePublicKey(t, filepath.Join(dir, "rsa-public.pem"), &rsaKey.PublicKey)
	ecPEM := writePublicKey(t, filepath.Join(dir, "ec-public.pem"), &ecKey.PublicKey)

	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws-rs {
		hub e2e_jwt_keys
		auth jwt_key %s
	}
	push_hub /ws-es {
		hub e2e_jwt_keys
		auth jwt_key %s {
			uid_claim uid
		}
	}
}
`, wsPort, filepath.Join(dir, "rsa-public.pem"), filepath.Join(dir, "ec-public.pem")))

	rs := dial(t, "RS256 (first frame)", wsURL+"/ws-rs", nil)
	rs.loginJSON("token", signToken(t, jwt.SigningMethodRS256, rsaKey, validClaims("rsa-user")), "rsa-user", 0)
	rsH := dial(t, "RS256 (header)", wsURL+"/ws-rs", bearer(signToken(t, jwt.SigningMethodRS256, rsaKey, validClaims("rsa-user-2"))))
	rsH.expectWelcome("rsa-user-2", 0)
	es := dial(t, "ES256 (header)", wsURL+"/ws-es",
		bearer(signToken(t, jwt.SigningMethodES256, ecKey, jwt.MapClaims{"sub": "ignored", "uid": "ec-user"})))
	es.expectWelcome("ec-user", 0)
	esQ := dial(t, "ES256 (query)", wsURL+"/ws-es?token="+url.QueryEscape(
		signToken(t, jwt.SigningMethodES256, ecKey, jwt.MapClaims{"uid": 42})), nil)
	esQ.expectWelcome("42", 0)

	for _, tc := range []struct{ name, path, token, code string }{
		{"ES256 token on the RSA endpoint", "/ws-rs", signToken(t, jwt.SigningMethodES256, ecKey, validClaims("x")), "token_algorithm_refused"},
		// The classic confusion: HS256 keyed with the public key's PEM.
		{"HS256 keyed with the RSA public key", "/ws-rs", signToken(t, jwt.SigningMethodHS256, rsaPEM, validClaims("x")), "token_algorithm_refused"},
		{"HS256 keyed with the EC public key", "/ws-es", signToken(t, jwt.SigningMethodHS256, ecPEM, jwt.MapClaims{"uid": "x"}), "token_algorithm_refused"},
		{"alg none", "/ws-es", noneToken(jwt.MapClaims{"uid": "x"}), "token_algorithm_refused"},
		{"expired RS256", "/ws-rs", signToken(t, jwt.SigningMethodRS256, rsaKey, expiredClaims("x")), "token_expired"},
		{"ES256 without the uid claim", "/ws-es", signToken(t, jwt.SigningMethodES256, ecKey, validClaims("x")), "token_claims_invalid"},
	} {
		c := dial(t, tc.name, wsURL+tc.path, nil)
		c.send(`{"type":"login","token":"` + tc.token + `"}`)
		c.expectError(tc.code, "")
		c.expectClose(4001)
		dialRefused(t, wsURL+tc.path, bearer(tc.token), http.StatusUnauthorized)
	}
}

// writePublicKey writes pub as a PEM "PUBLIC KEY" file and returns the PEM.
func writePublicKey(t *testing.T, path string, pub any) []byte {
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

// TestE2EAuthPlaceholder: basic_auth in front and auth placeholder
// {http.auth.user.id}: logged in at once as the basic-auth user; no or
// wrong credentials get 401.
func TestE2EAuthPlaceholder(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("open sesame"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	basic_auth /ws {
		alice %s
	}
	push_hub /ws {
		hub e2e_placeholder
		auth placeholder {http.auth.user.id}
	}
	push_hub /ws-text {
		hub e2e_placeholder
		protocol text
		auth placeholder {http.auth.user.id}
	}
}

http://localhost:%d {
	push_api {
		hub e2e_placeholder
	}
}
`, wsPort, hash, apiPort))

	basic := func(user, pass string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
	}
	alice := dial(t, "alice", wsURL+"/ws", basic("alice", "open sesame"))
	alice.expectWelcome("alice", 0)
	post(t, apiURL+"/send", `{"uid":"alice","data":"hello alice"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	alice.expect(`{"type":"message","seq":1,"data":"hello alice"}`)
	// A login frame is refused: the connection is already logged in.
	alice.send(`{"type":"login","id":1,"uid":"bob"}`)
	alice.expectError("already_logged_in", "1")

	dialRefused(t, wsURL+"/ws", nil, http.StatusUnauthorized)
	dialRefused(t, wsURL+"/ws", basic("alice", "wrong"), http.StatusUnauthorized)
	// Without basic_auth in front the placeholder is empty: 401, never an
	// anonymous connection.
	dialRefused(t, wsURL+"/ws-text", nil, http.StatusUnauthorized)
	get(t, apiURL+"/online?uid=alice").expectJSON(t, http.StatusOK, online("alice", 1))
}

// TestE2EAuthFirstMessageAndTimeout: first_message logs in with the first
// frame; a connection that never logs in is closed with 4002 after
// auth_timeout, in both protocols, and others are not disturbed.
func TestE2EAuthFirstMessageAndTimeout(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_first
		auth first_message
		auth_timeout 1s
	}
	push_hub /ws-text {
		hub e2e_first
		protocol text
		auth first_message
		auth_timeout 1s
	}
}

http://localhost:%d {
	push_api {
		hub e2e_first
	}
}
`, wsPort, apiPort))

	ok := dial(t, "logged in", wsURL+"/ws", nil)
	ok.loginJSON("uid", "ok", "ok", 0)
	okText := dial(t, "logged in (text)", wsURL+"/ws-text", nil)
	okText.send("ok-text")
	okText.expect("login success, your uid is ok-text")

	silent := dial(t, "silent", wsURL+"/ws", nil)
	silentText := dial(t, "silent (text)", wsURL+"/ws-text", nil)
	pinger := dial(t, "pings but never logs in", wsURL+"/ws", nil)
	pinger.send(`{"type":"ping","id":1}`)
	pinger.expect(`{"type":"pong","id":1}`)
	silent.expectClose(4002)
	silent.expectHangup()
	silentText.expectClose(4002)
	silentText.expectHangup()
	pinger.expectClose(4002)
	pinger.expectHangup() // the server has let go of it: no longer pending

	// The logged-in connections stay and receive.
	post(t, apiURL+"/send", `{"all":true,"data":"still here"}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	ok.expect(`{"type":"message","seq":1,"data":"still here"}`)
	okText.expect("still here")
	if s := getStats(t, apiURL); s.Pending != 0 || s.Connections != 2 {
		t.Fatalf("stats %+v, want no pending connection and 2 connections", s)
	}
}

// TestE2EOrigins: same-origin by default; an origins list allows exactly
// the listed origins. Clients without an Origin header always pass.
func TestE2EOrigins(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_origins
		auth first_message
	}
	push_hub /ws-app {
		hub e2e_origins
		auth first_message
		origins https://app.example.com
	}
}
`, wsPort))
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }

	// Default: same origin only.
	dialRefused(t, wsURL+"/ws", origin("http://evil.example.com"), http.StatusForbidden)
	dialRefused(t, wsURL+"/ws", origin(fmt.Sprintf("http://localhost:%d", wsPort+1)), http.StatusForbidden)
	dialRefused(t, wsURL+"/ws", origin("null"), http.StatusForbidden)
	same := dial(t, "same origin", wsURL+"/ws", origin(siteURL))
	same.loginJSON("uid", "a", "a", 0)
	none := dial(t, "no origin", wsURL+"/ws", nil)
	none.loginJSON("uid", "b", "b", 0)

	// A list: the listed origin (case does not matter), nothing else, not
	// even the site's own.
	app := dial(t, "listed origin", wsURL+"/ws-app", origin("https://app.example.com"))
	app.loginJSON("uid", "c", "c", 0)
	appUpper := dial(t, "listed origin, upper case", wsURL+"/ws-app", origin("HTTPS://APP.EXAMPLE.COM"))
	appUpper.loginJSON("uid", "d", "d", 0)
	dialRefused(t, wsURL+"/ws-app", origin("http://app.example.com"), http.StatusForbidden)
	dialRefused(t, wsURL+"/ws-app", origin("https://app.example.com.evil.net"), http.StatusForbidden)
	dialRefused(t, wsURL+"/ws-app", origin(siteURL), http.StatusForbidden)
	noneApp := dial(t, "no origin (list)", wsURL+"/ws-app", nil)
	noneApp.loginJSON("uid", "e", "e", 0)
}
