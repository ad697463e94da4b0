package pushhub_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestHostileInput: one subtest per kind of hostile or broken input on the
// WebSocket (README's hostile-input table), each asserting the exact answer
// (error code, close code) and that a well-behaved client of the same hub
// still receives a broadcast afterwards. The table's other rows: silence
// in TestAuthTimeout and TestDeadPeers, a reader that stops in
// TestSlowConsumer, the text protocol's ignored frames in
// TestRecipeTranscript, the push API in TestAPIRefusals.
func TestHostileInput(t *testing.T) {
	const secret = "hostile-jwt-secret-0123456789"
	h := harness.Start(t, `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		max_message_size 4KiB
		max_uid_length 16
		rate_limit 10 20
	}
	push_hub /text {
		hub {$HUB}
		protocol text
		auth first_message
		max_message_size 4KiB
		allow_client_publish
	}
	push_hub /jwt {
		hub {$HUB2}
		auth jwt `+secret+`
	}
}

`+harness.APISite("HUB", "HUB2"))
	api, jwtAPI := h.API(), h.API().Under("/HUB2")

	// The well-behaved clients, one per hub, reading all the time.
	obs := harness.LoggedIn(t, h.WS+"/ws", "observer")
	obsR := obs.StartReader()
	token := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		return harness.Token(t, method, key, claims)
	}
	jobs := harness.Dial(t, "jwt-observer", h.WS+"/jwt",
		harness.Bearer(token(jwt.SigningMethodHS256, []byte(secret), harness.Claims("jwt-observer"))))
	jobs.ExpectWelcome("jwt-observer")
	jobsR := jobs.StartReader()

	n := 0
	row := func(name string, onJWT bool, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			f(t)
			n++
			data := harness.JSON(fmt.Sprintf("after row %d", n))
			a, r := api, obsR
			if onJWT {
				a, r = jwtAPI, jobsR
			}
			if rc := a.Send(t, `{"all":true,"data":`+data+`}`); rc.Delivered < 1 || rc.Dropped != 0 {
				t.Fatalf("broadcast receipt %+v", rc)
			}
			r.ExpectMessage(t, data)
		})
	}
	dial := func(t *testing.T, name, path string) *harness.Conn { return harness.Dial(t, name, h.WS+path, nil) }
	loggedIn := func(t *testing.T, uid string) *harness.Conn {
		c := dial(t, uid, "/ws")
		c.Login(uid)
		return c
	}
	refused := func(t *testing.T, c *harness.Conn, code string) {
		t.Helper()
		c.ExpectError(code, "")
		if reason := c.ExpectClose(4001); !strings.HasPrefix(reason, code+": ") {
			t.Fatalf("close reason %q, want it to start with %q", reason, code+": ")
		}
	}
	big := strings.Repeat("y", 4097)

	// WebSocket frames.
	row("a frame of exactly max_message_size is read", false, func(t *testing.T) {
		c := loggedIn(t, "exact")
		id := strings.Repeat("p", 4096-len(`{"type":"ping","id":""}`))
		c.Send(`{"type":"ping","id":"` + id + `"}`)
		c.Expect(`{"type":"pong","id":"` + id + `"}`)
	})
	for _, tc := range []struct {
		name, path, uid string // uid: who logs in first, "" for nobody
		mt              int
		payload         string
		code            int
	}{
		{"frame over max_message_size", "/ws", "big", websocket.TextMessage, big, websocket.CloseMessageTooBig},
		{"frame over max_message_size before login", "/ws", "", websocket.TextMessage, big, websocket.CloseMessageTooBig},
		{"frame over max_message_size (text)", "/text", "big-text", websocket.TextMessage, "all:" + big, websocket.CloseMessageTooBig},
		{"text frame that is not UTF-8", "/ws", "utf", websocket.TextMessage, "\"\xff\xfe\"", websocket.CloseInvalidFramePayloadData},
		{"text frame that is not UTF-8 (text)", "/text", "utf-text", websocket.TextMessage, "all:\xc3\x28", websocket.CloseInvalidFramePayloadData},
		{"login that is not UTF-8 (text)", "/text", "", websocket.TextMessage, "\xff\xfe", websocket.CloseInvalidFramePayloadData},
		{"binary frame", "/ws", "bin", websocket.BinaryMessage, `{"type":"ping"}`, websocket.CloseUnsupportedData},
		{"binary frame (text)", "/text", "bin-text", websocket.BinaryMessage, "all:hello", websocket.CloseUnsupportedData},
	} {
		row(tc.name, false, func(t *testing.T) {
			c := dial(t, tc.name, tc.path)
			switch {
			case tc.uid == "":
			case tc.path == "/text":
				c.LoginText(tc.uid)
			default:
				c.Login(tc.uid)
			}
			c.Write(tc.mt, []byte(tc.payload))
			c.ExpectClose(tc.code)
			c.ExpectHangup()
		})
	}

	// json frames that are refused but keep the connection.
	row("frames that are not JSON objects or have no type", false, func(t *testing.T) {
		c := loggedIn(t, "malformed")
		for _, f := range []string{`this is not json`, `{"type":`, `[1,2]`, `"login"`} {
			c.Send(f)
			c.ExpectError("bad_frame", "")
		}
		c.Send(`{"id":3}`)
		c.ExpectError("bad_frame", "3")
		c.StillOpen()
	})
	row("unknown type", false, func(t *testing.T) {
		c := loggedIn(t, "unknown")
		c.Send(`{"type":"frobnicate","id":"u"}`)
		c.ExpectError("unknown_type", `"u"`)
		c.StillOpen()
	})
	row("second login", false, func(t *testing.T) {
		c := loggedIn(t, "twice")
		c.Send(`{"type":"login","uid":"other","id":2}`)
		c.ExpectError("already_logged_in", "2")
		c.StillOpen()
		// Still bound to the first uid, and to it only.
		api.Post(t, "/send", `{"uid":"twice","data":1}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
		c.ExpectMessage("1")
		api.Post(t, "/send", `{"uid":"other","data":1}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(0, 0))
	})
	row("frames this endpoint does not allow", false, func(t *testing.T) {
		c := loggedIn(t, "forbidden")
		c.Send(`{"type":"send","id":1,"to":"observer","data":"spam"}`)
		c.ExpectError("publish_forbidden", "1")
		c.Send(`{"type":"join","id":2,"group":"g"}`)
		c.ExpectError("groups_forbidden", "2")
		c.Send(`{"type":"leave","id":3,"group":"g"}`)
		c.ExpectError("groups_forbidden", "3")
		c.StillOpen()
	})
	row("ack without seq", false, func(t *testing.T) {
		c := loggedIn(t, "ack")
		c.Send(`{"type":"ack","id":4}`)
		c.ExpectError("bad_frame", "4")
		c.StillOpen()
	})

	// Logins that are refused: an error frame, then 4001 with the code.
	now := time.Now()
	login := func(field, value string) string {
		return harness.JSON(map[string]string{"type": "login", field: value})
	}
	jwtLogin := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		return login("token", token(method, key, claims))
	}
	for _, tc := range []struct{ name, path, first, code string }{
		{"first frame not a login", "/ws", `{"type":"send","to":"observer","data":"spoofed"}`, "login_required"},
		{"empty uid", "/ws", login("uid", ""), "invalid_uid"},
		{"uid over max_uid_length", "/ws", login("uid", strings.Repeat("u", 17)), "invalid_uid"},
		{"uid with a control character", "/ws", login("uid", "a\u0007b"), "invalid_uid"},
		{"expired token", "/jwt", jwtLogin(jwt.SigningMethodHS256, []byte(secret), harness.ExpiredClaims("j")), "token_expired"},
		{"nbf in the future", "/jwt", jwtLogin(jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "j", "nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), "token_not_yet_valid"},
		{"token signed with the wrong key", "/jwt", jwtLogin(jwt.SigningMethodHS256, []byte("another-secret-0123456789"), harness.Claims("j")), "token_signature_invalid"},
		{"alg none", "/jwt", login("token", harness.NoneToken(t, harness.Claims("j"))), "token_algorithm_refused"},
		{"HS384 to an HS256 endpoint", "/jwt", jwtLogin(jwt.SigningMethodHS384, []byte(secret), harness.Claims("j")), "token_algorithm_refused"},
		{"token that is not a JWT", "/jwt", login("token", "not.a.token"), "token_malformed"},
	} {
		row(tc.name, tc.path == "/jwt", func(t *testing.T) {
			c := dial(t, tc.name, tc.path)
			c.Send(tc.first)
			refused(t, c, tc.code)
		})
	}

	row("flood over rate_limit", false, func(t *testing.T) {
		c := loggedIn(t, "flood")
		frame := harness.FrameBytes(harness.OpText, []byte(`{"type":"ping"}`))
		var burst []byte
		for range 100 {
			burst = append(burst, frame...)
		}
		_ = c.NetConn().SetWriteDeadline(time.Now().Add(harness.Guard))
		_, _ = c.NetConn().Write(burst) // 100 frames at once; fails once the server hangs up
		pongs := 0
		for {
			_ = c.SetReadDeadline(time.Now().Add(harness.Guard))
			_, b, err := c.ReadMessage()
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
		// The burst allowance is served (20, less the login frame, plus
		// what the rate refilled meanwhile), not the whole flood.
		if pongs < 19 || pongs >= 100 {
			t.Fatalf("%d pongs, want the burst allowance served and the flood cut", pongs)
		}
	})

	// Through all of it the observers stayed, and the refused connections
	// left nothing behind.
	for _, o := range []struct {
		api harness.API
		uid string
	}{{api, "observer"}, {jwtAPI, "jwt-observer"}} {
		harness.Eventually(t, "only the observer is left on its hub", func() (bool, string) {
			s := o.api.Stats(t)
			return s.Connections == 1 && s.Pending == 0 && s.UIDs == 1, fmt.Sprintf("%+v", s)
		})
		o.api.Get(t, "/online?uid="+o.uid).ExpectJSON(http.StatusOK, harness.OnlineJSON(o.uid, 1))
	}
}
