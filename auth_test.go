package pushhub_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

const jwtSecret = "jwt-secret-of-at-least-16-bytes"

// TestAuthJWTSecret: auth jwt with an HS256 secret from
// {env.PUSH_JWT_SECRET}; the token in the first frame, in an Authorization
// header and in ?token=; the uid from sub or from a named claim; a bad
// token in the upgrade request is refused with 401 (in a login frame: see
// TestHostileInput).
func TestAuthJWTSecret(t *testing.T) {
	t.Setenv("PUSH_JWT_SECRET", jwtSecret)
	h := harness.Start(t, `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET}
	}
	push_hub /ws-claim {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET} {
			uid_claim user_id
		}
	}
	push_hub /ws-text {
		hub {$HUB}
		protocol text
		auth jwt {env.PUSH_JWT_SECRET}
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`)
	api := h.API()
	hs := func(c jwt.MapClaims) string { return harness.Token(t, jwt.SigningMethodHS256, []byte(jwtSecret), c) }

	// The token in the first frame.
	alice := harness.Dial(t, "alice (first frame)", h.WS+"/ws", nil)
	alice.SendJSON(map[string]string{"type": "login", "token": hs(harness.Claims("alice"))})
	alice.ExpectWelcome("alice")
	// In the Authorization header: logged in at the upgrade, greeted at once.
	bob := harness.Dial(t, "bob (header)", h.WS+"/ws", harness.Bearer(hs(harness.Claims("bob"))))
	bob.ExpectWelcome("bob")
	// In ?token=.
	carol := harness.Dial(t, "carol (query)", h.WS+"/ws?token="+url.QueryEscape(hs(harness.Claims("carol"))), nil)
	carol.ExpectWelcome("carol")
	// The uid from a named claim, not from sub.
	dave := harness.Dial(t, "dave (uid_claim)", h.WS+"/ws-claim", nil)
	dave.SendJSON(map[string]string{"type": "login", "token": hs(jwt.MapClaims{"sub": "not-dave", "user_id": "dave", "exp": harness.Claims("")["exp"]})})
	dave.ExpectWelcome("dave")
	// The recipe's protocol: the first frame is the token.
	erin := harness.Dial(t, "erin (text)", h.WS+"/ws-text", nil)
	erin.Send(hs(harness.Claims("erin")))
	erin.Expect("login success, your uid is erin")

	api.Post(t, "/send", `{"uids":["alice","bob","carol","dave","erin","not-dave"],"data":"hi"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(5, 0))
	for _, c := range []*harness.Conn{alice, bob, carol, dave} {
		c.Expect(`{"type":"message","seq":1,"data":"hi"}`)
	}
	erin.Expect("hi")

	// The text protocol has no error frames: a refused token closes 4001
	// with the reason in the close frame.
	text := harness.Dial(t, "expired (text)", h.WS+"/ws-text", nil)
	text.Send(hs(harness.ExpiredClaims("mallory")))
	if reason := text.ExpectClose(4001); reason == "" {
		t.Fatal("4001 without a reason")
	}

	// Refused in the header or the query: HTTP 401 on the upgrade.
	for _, token := range []string{hs(harness.ExpiredClaims("mallory")), harness.NoneToken(t, harness.Claims("mallory"))} {
		harness.DialRefused(t, h.WS+"/ws", harness.Bearer(token), http.StatusUnauthorized)
		harness.DialRefused(t, h.WS+"/ws?token="+url.QueryEscape(token), nil, http.StatusUnauthorized)
	}
	harness.DialRefused(t, h.WS+"/ws", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("a:b"))}}, http.StatusUnauthorized)
	api.Get(t, "/online?uid=mallory").ExpectJSON(http.StatusOK, harness.OnlineJSON("mallory", 0))

	// /stats counts every login and every refusal, by the code the client
	// was told (or would have been, for a 401).
	st := api.Stats(t)
	if want := map[string]uint64{"token_expired": 3, "token_algorithm_refused": 2, "auth_failed": 1}; st.Logins != 5 || !maps.Equal(st.LoginRefusals, want) {
		t.Fatalf("stats: %d logins, refusals %v; want 5 and %v", st.Logins, st.LoginRefusals, want)
	}
}

// TestAuthJWTKeys: auth jwt_key with PEM public keys written at test time:
// RS256 and ES256, and no algorithm but the key's.
func TestAuthJWTKeys(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaFile, ecFile := filepath.Join(dir, "rsa-public.pem"), filepath.Join(dir, "ec-public.pem")
	rsaPEM := harness.WritePublicKey(t, rsaFile, &rsaKey.PublicKey)
	ecPEM := harness.WritePublicKey(t, ecFile, &ecKey.PublicKey)

	h := harness.Start(t, fmt.Sprintf(`
{$WS_SITE} {
	push_hub /ws-rs {
		hub {$HUB}
		auth jwt_key %q
	}
	push_hub /ws-es {
		hub {$HUB}
		auth jwt_key %q {
			uid_claim uid
		}
	}
}`, rsaFile, ecFile))
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string { return harness.Token(t, m, key, c) }

	rs := harness.Dial(t, "RS256 (first frame)", h.WS+"/ws-rs", nil)
	rs.SendJSON(map[string]string{"type": "login", "token": sign(jwt.SigningMethodRS256, rsaKey, harness.Claims("rsa-user"))})
	rs.ExpectWelcome("rsa-user")
	rsH := harness.Dial(t, "RS256 (header)", h.WS+"/ws-rs", harness.Bearer(sign(jwt.SigningMethodRS256, rsaKey, harness.Claims("rsa-user-2"))))
	rsH.ExpectWelcome("rsa-user-2")
	es := harness.Dial(t, "ES256 (header)", h.WS+"/ws-es",
		harness.Bearer(sign(jwt.SigningMethodES256, ecKey, jwt.MapClaims{"sub": "ignored", "uid": "ec-user"})))
	es.ExpectWelcome("ec-user")
	esQ := harness.Dial(t, "ES256 (query)", h.WS+"/ws-es?token="+url.QueryEscape(
		sign(jwt.SigningMethodES256, ecKey, jwt.MapClaims{"uid": 42})), nil)
	esQ.ExpectWelcome("42")

	for _, tc := range []struct{ name, path, token, code string }{
		{"ES256 token on the RSA endpoint", "/ws-rs", sign(jwt.SigningMethodES256, ecKey, harness.Claims("x")), "token_algorithm_refused"},
		// The classic confusion: HS256 keyed with the public key's PEM.
		{"HS256 keyed with the RSA public key", "/ws-rs", sign(jwt.SigningMethodHS256, rsaPEM, harness.Claims("x")), "token_algorithm_refused"},
		{"HS256 keyed with the EC public key", "/ws-es", sign(jwt.SigningMethodHS256, ecPEM, jwt.MapClaims{"uid": "x"}), "token_algorithm_refused"},
		{"alg none", "/ws-es", harness.NoneToken(t, jwt.MapClaims{"uid": "x"}), "token_algorithm_refused"},
		{"expired RS256", "/ws-rs", sign(jwt.SigningMethodRS256, rsaKey, harness.ExpiredClaims("x")), "token_expired"},
		{"ES256 without the uid claim", "/ws-es", sign(jwt.SigningMethodES256, ecKey, harness.Claims("x")), "token_claims_invalid"},
	} {
		c := harness.Dial(t, tc.name, h.WS+tc.path, nil)
		c.SendJSON(map[string]string{"type": "login", "token": tc.token})
		c.ExpectError(tc.code, "")
		c.ExpectClose(4001)
		harness.DialRefused(t, h.WS+tc.path, harness.Bearer(tc.token), http.StatusUnauthorized)
	}
}

// TestAuthPlaceholder: basic_auth in front and auth placeholder
// {http.auth.user.id}: logged in at once as the basic-auth user, published
// as {http.push_hub.uid}; no or wrong credentials get 401.
func TestAuthPlaceholder(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("open sesame"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	accessLog := filepath.Join(t.TempDir(), "access.log")
	h := harness.Start(t, `
{$WS_SITE} {
	log {
		output file `+accessLog+`
		format json
	}
	log_append uid {http.push_hub.uid}
	basic_auth /ws {
		alice `+string(hash)+`
	}
	push_hub /ws {
		hub {$HUB}
		auth placeholder {http.auth.user.id}
	}
	push_hub /ws-text {
		hub {$HUB}
		protocol text
		auth placeholder {http.auth.user.id}
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`)
	api := h.API()
	basic := func(user, pass string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
	}
	alice := harness.Dial(t, "alice", h.WS+"/ws", basic("alice", "open sesame"))
	alice.ExpectWelcome("alice")
	api.Post(t, "/send", `{"uid":"alice","data":"hello alice"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	alice.Expect(`{"type":"message","seq":1,"data":"hello alice"}`)
	// A login frame is refused: the connection is already logged in.
	alice.Send(`{"type":"login","id":1,"uid":"bob"}`)
	alice.ExpectError("already_logged_in", "1")

	harness.DialRefused(t, h.WS+"/ws", nil, http.StatusUnauthorized)
	harness.DialRefused(t, h.WS+"/ws", basic("alice", "wrong"), http.StatusUnauthorized)
	// Without basic_auth in front the placeholder is empty: 401, never an
	// anonymous connection.
	harness.DialRefused(t, h.WS+"/ws-text", nil, http.StatusUnauthorized)
	api.Get(t, "/online?uid=alice").ExpectJSON(http.StatusOK, harness.OnlineJSON("alice", 1))

	// The uid known at the upgrade is the placeholder {http.push_hub.uid}:
	// here in the access log of the upgrade request.
	harness.Eventually(t, "the access log shows the uid", func() (bool, string) {
		b, err := os.ReadFile(accessLog)
		return strings.Contains(string(b), `"uid":"alice"`), fmt.Sprintf("%s %v", b, err)
	})
}

// TestAuthTimeout: a connection that does not log in within auth_timeout
// is closed with 4002 and let go of, in both protocols, even if it pings;
// logged-in connections stay and receive.
func TestAuthTimeout(t *testing.T) {
	h := harness.Start(t, harness.BothProtocols("auth_timeout 1s"))
	api := h.API()
	ok := harness.LoggedIn(t, h.WS+"/ws", "ok")
	okText := harness.LoggedInText(t, h.WS+"/text", "ok-text")

	silent := harness.Dial(t, "silent", h.WS+"/ws", nil)
	silentText := harness.Dial(t, "silent (text)", h.WS+"/text", nil)
	pinger := harness.Dial(t, "pings but never logs in", h.WS+"/ws", nil)
	pinger.Send(`{"type":"ping","id":1}`)
	pinger.Expect(`{"type":"pong","id":1}`)
	for _, c := range []*harness.Conn{silent, silentText, pinger} {
		c.ExpectClose(4002)
		c.ExpectHangup()
	}

	api.Post(t, "/send", `{"all":true,"data":"still here"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	ok.Expect(`{"type":"message","seq":1,"data":"still here"}`)
	okText.Expect("still here")
	if s := api.Stats(t); s.Pending != 0 || s.Connections != 2 {
		t.Fatalf("stats %+v, want no pending connection and 2 connections", s)
	}
}

// TestOrigins: same-origin by default; an origins list allows exactly the
// listed origins, and a reload that sets one applies it; * allows any.
// Clients without an Origin header always pass.
func TestOrigins(t *testing.T) {
	h := harness.Start(t, harness.OneHub())
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	url := h.WS + "/ws"

	// Default: same origin only.
	harness.DialRefused(t, url, origin("http://evil.example.com"), http.StatusForbidden)
	harness.DialRefused(t, url, origin(fmt.Sprintf("http://localhost:%d", h.APIPort)), http.StatusForbidden)
	harness.DialRefused(t, url, origin("null"), http.StatusForbidden)
	harness.Dial(t, "same origin", url, origin(h.HTTP)).Login("a")
	harness.Dial(t, "no origin", url, nil).Login("b")

	// A list: the listed origin (case does not matter), nothing else, not
	// even the site's own.
	h.Load(harness.OneHub("origins https://app.example.com"))
	harness.Dial(t, "listed origin", url, origin("https://app.example.com")).Login("c")
	harness.Dial(t, "listed origin, upper case", url, origin("HTTPS://APP.EXAMPLE.COM")).Login("d")
	harness.DialRefused(t, url, origin("http://app.example.com"), http.StatusForbidden)
	harness.DialRefused(t, url, origin("https://app.example.com.evil.net"), http.StatusForbidden)
	harness.DialRefused(t, url, origin(h.HTTP), http.StatusForbidden)
	harness.Dial(t, "no origin (list)", url, nil).Login("e")

	// * allows any.
	h.Load(harness.OneHub("origins *"))
	harness.Dial(t, "any origin", url, origin("http://evil.example.com")).Login("f")
}
