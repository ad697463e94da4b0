package pushhub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// sseConfig has an endpoint on the plain HTTP site and the same one on the
// https site (HTTP/1.1, HTTP/2 and HTTP/3), both taking tokens in the
// query, a header or a cookie; one behind basic_auth with placeholder auth;
// and one on another hub that sends heartbeats often.
const sseConfig = `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET} {
			cookie push_token
		}
		history 100 2m
	}
	basic_auth /basic {
		alice %s
	}
	push_hub /basic {
		hub {$HUB}
		auth placeholder {http.auth.user.id}
	}
	push_hub /beat {
		hub {$HUB2}
		auth first_message
		ping_interval 100ms
	}
}

{$HTTPS_SITE} {
	tls internal
	push_hub /ws {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET} {
			cookie push_token
		}
		history 100 2m
	}
}
`

// TestSSE: clients that only listen get an event stream on push_hub's own
// path: over HTTP/1.1, HTTP/2 and HTTP/3 through Caddy; authenticated by a
// token in the query, a header or a cookie, or by a placeholder; the same
// uid, groups and fan-out as WebSockets; every message's id its seq, and
// Last-Event-ID resumes from history; heartbeats as comments; and the
// hub's last events when it closes.
func TestSSE(t *testing.T) {
	t.Setenv("PUSH_JWT_SECRET", jwtSecret)
	hash, err := bcrypt.GenerateFromPassword([]byte("open sesame"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := harness.Start(t, fmt.Sprintf(sseConfig, hash)+harness.APISite("HUB", "HUB2"))
	h.WaitForCert()
	api := h.API()
	token := func(uid string) string {
		return harness.Token(t, jwt.SigningMethodHS256, []byte(jwtSecret), harness.Claims(uid))
	}
	h1, h2 := harness.HTTPClient(t, false), harness.HTTPClient(t, true)

	for _, tc := range []struct {
		name, uid, url string
		client         *http.Client
		proto          int
	}{
		{"HTTP/1.1", "over-h1", h.HTTP + "/ws", h1, 1},
		{"HTTP/1.1 with TLS", "over-h1-tls", h.HTTPS + "/ws", h1, 1},
		{"HTTP/2", "over-h2", h.HTTPS + "/ws", h2, 2},
		{"HTTP/3", "over-h3", h.HTTPS + "/ws", harness.HTTP3Client(t), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := harness.OpenStream(t, tc.name, tc.client, tc.url+"?token="+token(tc.uid), nil)
			if s.Resp.ProtoMajor != tc.proto {
				t.Fatalf("the stream came over %s, want HTTP/%d", s.Resp.Proto, tc.proto)
			}
			if cc := s.Resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			s.ExpectWelcome(t, tc.uid)
			api.Post(t, "/send", `{"uid":"`+tc.uid+`","data":{"n":1}}`).ExpectJSON(http.StatusOK, `{"delivered":1,"dropped":0,"stored":true}`)
			if f := s.ExpectMessage(t, `{"n":1}`); f.Seq != 1 {
				t.Errorf("seq %d, want 1", f.Seq)
			}
			// Data sent pretty-printed arrives on one line.
			api.Send(t, "{\"uid\":\""+tc.uid+"\",\"data\":{\n  \"pretty\": [1,\n 2]\n}}")
			s.ExpectMessage(t, `{"pretty":[1,2]}`)
		})
	}

	// Authentication: the token in a header or a cookie, a placeholder;
	// nothing or a bad credential is refused before the stream starts.
	harness.OpenStream(t, "header", h1, h.HTTP+"/ws", harness.Bearer(token("by-header"))).ExpectWelcome(t, "by-header")
	harness.OpenStream(t, "cookie", h2, h.HTTPS+"/ws", http.Header{"Cookie": {"push_token=" + token("by-cookie")}}).ExpectWelcome(t, "by-cookie")
	basic := http.Header{}
	req := &http.Request{Header: basic}
	req.SetBasicAuth("alice", "open sesame")
	harness.OpenStream(t, "basic_auth", h1, h.HTTP+"/basic", basic).ExpectWelcome(t, "alice")
	harness.StreamRefused(t, h1, h.HTTP+"/ws", nil, http.StatusUnauthorized)
	harness.StreamRefused(t, h1, h.HTTP+"/ws?token=not-a-token", nil, http.StatusUnauthorized)
	harness.StreamRefused(t, h1, h.HTTP+"/ws", http.Header{"Cookie": {"push_token=" + harness.Token(t, jwt.SigningMethodHS256, []byte(jwtSecret), harness.ExpiredClaims("late"))}}, http.StatusUnauthorized)
	harness.StreamRefused(t, h1, h.HTTP+"/basic", nil, http.StatusUnauthorized)
	api.Get(t, "/online?uid=late").ExpectJSON(http.StatusOK, harness.OnlineJSON("late", 0))

	// One uid over a stream and a WebSocket: both count, both get what
	// is sent to the uid, to its groups and to everyone.
	fanStream := harness.OpenStream(t, "fan (stream)", h2, h.HTTPS+"/ws?token="+token("fan"), nil)
	fanStream.ExpectWelcome(t, "fan")
	fanWS := harness.Dial(t, "fan (WebSocket)", h.WS+"/ws", harness.Bearer(token("fan")))
	fanWS.ExpectWelcome("fan")
	other := harness.OpenStream(t, "other", h1, h.HTTP+"/ws?token="+token("other"), nil)
	other.ExpectWelcome(t, "other")
	api.Get(t, "/online?uid=fan").ExpectJSON(http.StatusOK, harness.OnlineJSON("fan", 2))
	api.Post(t, "/join", `{"uid":"fan","group":"room"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	api.Post(t, "/send", `{"group":"room","data":"to the room"}`).ExpectJSON(http.StatusOK, `{"delivered":2,"dropped":0,"stored":true}`)
	if f := fanStream.ExpectMessage(t, `"to the room"`); f.Group != "room" || f.Seq != 1 {
		t.Errorf("the stream got %s, want seq 1 in room", f.Raw)
	}
	if f := fanWS.ExpectMessage(`"to the room"`); f.Group != "room" || f.Seq != 1 {
		t.Errorf("the WebSocket got %s, want seq 1 in room", f.Raw)
	}
	if rc := api.Send(t, `{"all":true,"data":"to everyone"}`); rc.Delivered < 3 {
		t.Errorf("broadcast receipt %+v, want at least the 3 connections of this test", rc)
	}
	fanStream.ExpectMessage(t, `"to everyone"`)
	fanWS.ExpectMessage(`"to everyone"`)
	other.ExpectMessage(t, `"to everyone"`)

	// Resume: an EventSource that reconnects sends the last id it saw as
	// Last-Event-ID, and gets what it missed from history, in order.
	first := harness.OpenStream(t, "resumer", h1, h.HTTP+"/ws?token="+token("resumer"), nil)
	first.ExpectWelcome(t, "resumer")
	for i := 1; i <= 3; i++ {
		api.Send(t, fmt.Sprintf(`{"uid":"resumer","data":%d}`, i))
		first.ExpectMessage(t, fmt.Sprint(i))
	}
	first.Close()
	api.WaitOnline(t, "resumer", 0)
	for i := 4; i <= 5; i++ {
		if rc := api.Send(t, fmt.Sprintf(`{"uid":"resumer","data":%d}`, i)); rc.Delivered != 0 || !rc.Stored {
			t.Errorf("push %d while offline: %+v, want stored", i, rc)
		}
	}
	again := harness.OpenStream(t, "resumer again", h2, h.HTTPS+"/ws?token="+token("resumer"), http.Header{"Last-Event-ID": {"3"}})
	w := again.ExpectWelcome(t, "resumer")
	if w.Seq != 5 || w.Resume == nil || *w.Resume != (harness.Resume{Since: 3, Recovered: true, Replayed: 2}) {
		t.Errorf("welcome %s, want seq 5 and 2 replayed since 3", w.Raw)
	}
	for i := 4; i <= 6; i++ {
		if i == 6 {
			api.Send(t, `{"uid":"resumer","data":6}`)
		}
		if f := again.ExpectMessage(t, fmt.Sprint(i)); f.Seq != uint64(i) {
			t.Errorf("got seq %d, want %d", f.Seq, i)
		}
	}

	// Heartbeats: comments at ping_interval, which an EventSource ignores.
	beat := harness.OpenStream(t, "heartbeats", h1, h.HTTP+"/beat?uid=beat", nil)
	beat.ExpectWelcome(t, "beat")
	harness.Eventually(t, "three heartbeats", func() (bool, string) {
		return beat.Comments() >= 3, fmt.Sprint(beat.Comments())
	})
	h.API().Under("/HUB2").Send(t, `{"uid":"beat","data":"between heartbeats"}`)
	beat.ExpectMessage(t, `"between heartbeats"`)

	// The hub leaves the config: every stream of it gets going_away (with
	// a hint of when to come back) and a close event, then ends.
	h.Load(`{$WS_SITE} {
	respond "no hub here"
}`)
	for _, s := range []*harness.Stream{fanStream, other, again} {
		ev := s.Next(t, "going_away")
		var g struct {
			Type    string `json:"type"`
			Reason  string `json:"reason"`
			RetryMS int64  `json:"retry_ms"`
		}
		if err := harness.StrictJSON(ev.Data, &g); err != nil || ev.Name != "going_away" || g.Type != "going_away" || g.Reason == "" || g.RetryMS <= 0 {
			t.Errorf("got %q %s, want a going_away event with a reason and retry_ms", ev.Name, ev.Data)
		}
		ev = s.Next(t, "close")
		var c struct {
			Type   string `json:"type"`
			Code   int    `json:"close_code"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &c); err != nil || ev.Name != "close" || c.Type != "close" || c.Code != 1001 {
			t.Errorf("got %q %s, want a close event with close_code 1001", ev.Name, ev.Data)
		}
		s.ExpectEnd(t)
	}
	fanWS.ExpectType("going_away")
	fanWS.ExpectClose(1001)
}
