package pushhub_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// rbToken signs claims with method and key.
func rbToken(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rbNoneToken is an unsigned token (alg none).
func rbNoneToken(claims jwt.MapClaims) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(jsonText(claims))) + "."
}

// TestRobustHostileInput: one subtest per kind of hostile or broken input,
// each asserting the exact answer (error code, close code, HTTP status) and
// that a well-behaved client of the same hub still receives a broadcast
// afterwards.
func TestRobustHostileInput(t *testing.T) {
	hub, jwtHub := rbHubName("hostile"), rbHubName("hostile-jwt")
	ws := strings.NewReplacer("HUB", hub, "JWTHUB", jwtHub, "SECRET", rbSecret).Replace(`
	push_hub /ws {
		hub HUB
		auth first_message
		max_message_size 4KiB
		max_uid_length 16
		rate_limit 10 20
		auth_timeout 1s
		ping_interval 1s
		pong_timeout 1s
	}
	push_hub /jwt {
		hub JWTHUB
		auth jwt SECRET
	}`)
	api := strings.NewReplacer("HUB", hub, "JWTHUB", jwtHub, "KEY", rbKey).Replace(`
	handle /jwt/* {
		push_api {
			hub JWTHUB
			key KEY
		}
	}
	handle {
		push_api {
			hub HUB
			key KEY
			max_body_size 1KiB
		}
	}`)
	rbLoad(t, rbSites(ws, api))

	// The well-behaved clients: one per hub, reading all the time (so they
	// answer the 1 s pings), receiving only broadcasts.
	obs := rbDial(t, "observer", "/ws", nil)
	obs.login("observer", nil)
	obsR := obs.startReader()
	secret := []byte(rbSecret)
	good := rbToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "jwt-observer", "exp": time.Now().Add(time.Hour).Unix()})
	jobs := rbDial(t, "jwt-observer", "/jwt", http.Header{"Authorization": {"Bearer " + good}})
	if w := jobs.read(); w.Type != "welcome" || w.UID != "jwt-observer" {
		t.Fatalf("jwt-observer: got %s, want a welcome", w.raw)
	}
	jobsR := jobs.startReader()
	n := 0
	othersStillServed := func(t *testing.T, prefix string) {
		t.Helper()
		n++
		data := jsonText(fmt.Sprintf("after row %d", n))
		if rc := rbSend(t, prefix+"/send", `{"all":true,"data":`+data+`}`); rc.Delivered < 1 || rc.Dropped != 0 {
			t.Fatalf("broadcast receipt %v", rc)
		}
		r := obsR
		if prefix == "/jwt" {
			r = jobsR
		}
		r.expectMessage(t, data)
	}
	row := func(name, prefix string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			f(t)
			othersStillServed(t, prefix)
		})
	}
	loggedIn := func(t *testing.T, uid string) *rbClient {
		c := rbDial(t, uid, "/ws", nil)
		c.login(uid, nil)
		return c
	}
	refused := func(t *testing.T, c *rbClient, code string) {
		t.Helper()
		c.expectError(code, "")
		if reason := c.expectClose(4001); !strings.HasPrefix(reason, code+": ") {
			t.Fatalf("close reason %q, want it to start with %q", reason, code+": ")
		}
	}

	// WebSocket frames.
	row("oversize frame", "", func(t *testing.T) {
		c := loggedIn(t, "big")
		c.sendText(`{"type":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`)
		c.expectClose(websocket.CloseMessageTooBig)
	})
	row("invalid UTF-8", "", func(t *testing.T) {
		c := loggedIn(t, "utf")
		c.write(websocket.TextMessage, []byte{'"', 0xff, 0xfe, '"'})
		c.expectClose(websocket.CloseInvalidFramePayloadData)
	})
	row("binary frame", "", func(t *testing.T) {
		c := loggedIn(t, "bin")
		c.write(websocket.BinaryMessage, []byte(`{"type":"ping"}`))
		c.expectClose(websocket.CloseUnsupportedData)
	})
	row("malformed JSON frame", "", func(t *testing.T) {
		c := loggedIn(t, "malformed")
		c.sendText(`{"type":`)
		c.expectError("bad_frame", "")
		c.sendText(`[1,2]`)
		c.expectError("bad_frame", "")
		c.sendText(`{"id":3}`)
		c.expectError("bad_frame", "3")
		c.stillOpen(1)
	})
	row("unknown type", "", func(t *testing.T) {
		c := loggedIn(t, "unknown")
		c.sendText(`{"type":"frobnicate","id":"u"}`)
		c.expectError("unknown_type", `"u"`)
		c.stillOpen(2)
	})
	row("second login", "", func(t *testing.T) {
		c := loggedIn(t, "twice")
		c.sendText(`{"type":"login","uid":"other","id":2}`)
		c.expectError("already_logged_in", "2")
		c.stillOpen(3)
		rbExpectBody(t, rbAPI(t, http.MethodPost, "/send", `{"uid":"twice","data":1}`, nil), http.StatusOK, `{"delivered":1,"dropped":0,"stored":false}`)
		c.expectMessage("1")
		rbExpectBody(t, rbAPI(t, http.MethodPost, "/send", `{"uid":"other","data":1}`, nil), http.StatusOK, `{"delivered":0,"dropped":0,"stored":false}`)
	})
	row("frames this endpoint does not allow", "", func(t *testing.T) {
		c := loggedIn(t, "forbidden")
		c.sendText(`{"type":"send","id":1,"to":"observer","data":"spam"}`)
		c.expectError("publish_forbidden", "1")
		c.sendText(`{"type":"join","id":2,"group":"g"}`)
		c.expectError("groups_forbidden", "2")
		c.sendText(`{"type":"ack","id":3}`)
		c.expectError("bad_frame", "3")
		c.stillOpen(4)
	})
	row("first frame not a login", "", func(t *testing.T) {
		c := rbDial(t, "nologin", "/ws", nil)
		c.sendText(`{"type":"send","to":"observer","data":"spam"}`)
		refused(t, c, "login_required")
	})
	for _, uid := range []struct{ name, uid string }{
		{"empty uid", ""},
		{"uid over max_uid_length", strings.Repeat("u", 17)},
		{"uid with a control character", "a\u0007b"},
	} {
		row(uid.name, "", func(t *testing.T) {
			c := rbDial(t, uid.name, "/ws", nil)
			c.sendJSON(map[string]string{"type": "login", "uid": uid.uid})
			refused(t, c, "invalid_uid")
		})
	}

	// Tokens, in a login frame of a jwt endpoint.
	now := time.Now()
	for _, tok := range []struct{ name, token, code string }{
		{"expired token", rbToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "j", "exp": now.Add(-time.Hour).Unix()}), "token_expired"},
		{"nbf in the future", rbToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "j", "nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), "token_not_yet_valid"},
		{"wrong key", rbToken(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789"), jwt.MapClaims{"sub": "j"}), "token_signature_invalid"},
		{"alg none", rbNoneToken(jwt.MapClaims{"sub": "j"}), "token_algorithm_refused"},
		{"HS384 to an HS256 endpoint", rbToken(t, jwt.SigningMethodHS384, secret, jwt.MapClaims{"sub": "j"}), "token_algorithm_refused"},
		{"malformed token", "not.a.token", "token_malformed"},
	} {
		row(tok.name, "/jwt", func(t *testing.T) {
			c := rbDial(t, tok.name, "/jwt", nil)
			c.sendJSON(map[string]string{"type": "login", "token": tok.token})
			refused(t, c, tok.code)
		})
	}
	row("bad token in the upgrade request", "/jwt", func(t *testing.T) {
		expired := rbToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "j", "exp": now.Add(-time.Hour).Unix()})
		for _, hdr := range []http.Header{{"Authorization": {"Bearer " + expired}}, {"Authorization": {"Basic eDp5"}}} {
			ws, resp, err := rbDialer.Dial(rbWSBase+"/jwt", hdr)
			if err == nil {
				_ = ws.Close()
				t.Fatalf("upgrade with %v succeeded, want HTTP 401", hdr)
			}
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("upgrade with %v: %v %v, want HTTP 401", hdr, err, resp)
			}
		}
	})

	// Silence and floods.
	row("no login within auth_timeout", "", func(t *testing.T) {
		c := rbDial(t, "mute", "/ws", nil)
		c.expectClose(4002)
	})
	row("never answers pings", "", func(t *testing.T) {
		r := rbRawDial(t, "deaf", "/ws", 0)
		r.login("deaf")
		r.expectClose(4006) // reads, but never sends a pong
		rbWaitOnline(t, "", "deaf", 0)
	})
	row("flood over rate_limit", "", func(t *testing.T) {
		c := loggedIn(t, "flood")
		frame := rbFrameBytes(rbOpText, []byte(`{"type":"ping"}`))
		var burst []byte
		for range 100 {
			burst = append(burst, frame...)
		}
		_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(rbGuard))
		_, _ = c.ws.NetConn().Write(burst) // 100 frames at once; fails once the server hangs up
		pongs := 0
		for {
			_ = c.ws.SetReadDeadline(time.Now().Add(rbGuard))
			_, b, err := c.ws.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != 4008 {
					t.Fatalf("after %d pongs: %v, want close 4008", pongs, err)
				}
				break
			}
			if string(b) != `{"type":"pong"}` {
				t.Fatalf("got %q, want pongs then close 4008", b)
			}
			pongs++
		}
		if pongs >= 100 {
			t.Fatalf("%d pongs: the flood was not cut", pongs)
		}
	})

	// The push API.
	bad := func(name, method, path, body string, hdr http.Header, status int, code string) {
		row(name, "", func(t *testing.T) {
			r := rbAPI(t, method, path, body, hdr)
			rbExpectAPIError(t, r, status, code)
			switch status {
			case http.StatusMethodNotAllowed:
				if r.header.Get("Allow") != http.MethodPost {
					t.Fatalf("Allow %q, want POST", r.header.Get("Allow"))
				}
			case http.StatusUnauthorized:
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate %q, want a Bearer challenge", r.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	bad("API: malformed JSON", http.MethodPost, "/send", `{"uid":`, nil, http.StatusBadRequest, "bad_json")
	bad("API: empty body", http.MethodPost, "/send", ``, nil, http.StatusBadRequest, "bad_json")
	bad("API: unknown field", http.MethodPost, "/send", `{"uid":"a","data":1,"priority":9}`, nil, http.StatusBadRequest, "bad_json")
	bad("API: missing target", http.MethodPost, "/send", `{"data":1}`, nil, http.StatusBadRequest, "bad_target")
	bad("API: two targets", http.MethodPost, "/send", `{"uid":"a","all":true,"data":1}`, nil, http.StatusBadRequest, "bad_target")
	bad("API: missing data", http.MethodPost, "/send", `{"uid":"a"}`, nil, http.StatusBadRequest, "missing_data")
	bad("API: uid with a control character", http.MethodPost, "/send", `{"uid":"a\u0000","data":1}`, nil, http.StatusBadRequest, "invalid_uid")
	bad("API: wrong method", http.MethodGet, "/send", ``, nil, http.StatusMethodNotAllowed, "method_not_allowed")
	bad("API: unknown call", http.MethodPost, "/frobnicate", `{}`, nil, http.StatusNotFound, "unknown_call")
	bad("API: wrong key", http.MethodPost, "/send", `{"all":true,"data":"x"}`, http.Header{"Authorization": {"Bearer wrong-key"}}, http.StatusUnauthorized, "unauthorized")
	bad("API: missing key", http.MethodPost, "/send", `{"all":true,"data":"x"}`, http.Header{}, http.StatusUnauthorized, "unauthorized")
	bad("API: body over max_body_size", http.MethodPost, "/send", `{"all":true,"data":"`+strings.Repeat("x", 2048)+`"}`, nil,
		http.StatusRequestEntityTooLarge, "body_too_large")
	row("API: push to a uid that does not exist", "", func(t *testing.T) {
		rbExpectBody(t, rbAPI(t, http.MethodPost, "/send", `{"uid":"nobody-here","data":1}`, nil), http.StatusOK,
			`{"delivered":0,"dropped":0,"stored":false}`)
	})

	// Through all of it the observers stayed connected.
	rbWaitOnline(t, "", "observer", 1)
	rbWaitOnline(t, "/jwt", "jwt-observer", 1)
}
