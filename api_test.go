package pushhub_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/pushhub/caddy-pushhub/internal/harness"
	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// TestAPICalls: every call of push_api with its exact answer, at the site's
// root and under a prefix (handle_path /HUB/*).
func TestAPICalls(t *testing.T) {
	h := harness.Start(t, harness.BothProtocols())
	api, push := h.API(), h.API().Under("/HUB")

	for _, a := range []harness.API{api, push} {
		r := a.Get(t, "/stats")
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Body, `{"hub":`+harness.JSON(h.Hub("HUB"))+`,`) {
			t.Fatalf("GET %s/stats: HTTP %d %q", a.URL, r.Status, r.Body)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("GET %s/stats: Cache-Control %q, want no-store", a.URL, cc)
		}
	}
	if s := api.Stats(t); s.Connections != 0 || s.UIDs != 0 || s.Groups != 0 || s.Pushes != 0 {
		t.Fatalf("a new hub's stats: %+v", s)
	}
	// HEAD is a GET.
	if r := api.Do(t, http.MethodHead, "/stats", "", nil); r.Status != http.StatusOK {
		t.Fatalf("HEAD /stats: HTTP %d", r.Status)
	}

	a1 := harness.Dial(t, "a (json)", h.WS+"/ws", nil)
	a1.Login("a")
	a2 := harness.Dial(t, "a (text)", h.WS+"/text", nil)
	a2.LoginText("a")
	b := harness.LoggedIn(t, h.WS+"/ws", "b")
	c := harness.LoggedIn(t, h.WS+"/ws", "c")

	// online
	api.Get(t, "/online?uid=a").ExpectJSON(http.StatusOK, harness.OnlineJSON("a", 2))
	push.Get(t, "/online?uid=b").ExpectJSON(http.StatusOK, harness.OnlineJSON("b", 1))
	api.Get(t, "/online?uid=nobody").ExpectJSON(http.StatusOK, harness.OnlineJSON("nobody", 0))

	// send: uid, uids (duplicates once, unknown ones ignored), group, all.
	api.Post(t, "/send", `{"uid":"a","data":"to a"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	a1.Expect(`{"type":"message","seq":1,"data":"to a"}`)
	a2.Expect("to a")
	push.Post(t, "/send", `{"uids":["a","b","a","ghost"],"data":{"k":[true,null]}}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(3, 0))
	a1.Expect(`{"type":"message","seq":2,"data":{"k":[true,null]}}`)
	a2.Expect(`{"k":[true,null]}`)
	b.Expect(`{"type":"message","seq":1,"data":{"k":[true,null]}}`)
	// A push to a uid that does not exist is no error.
	api.Post(t, "/send", `{"uid":"ghost","data":1}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(0, 0))

	api.Post(t, "/join", `{"uid":"b","group":"g"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	push.Post(t, "/join", `{"uid":"c","group":"g"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	api.Post(t, "/send", `{"group":"g","data":3.5}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	b.Expect(`{"type":"message","seq":2,"data":3.5,"group":"g"}`)
	c.Expect(`{"type":"message","seq":1,"data":3.5,"group":"g"}`)
	push.Post(t, "/leave", `{"uid":"c","group":"g"}`).ExpectJSON(http.StatusOK, `{"ok":true,"was_member":true}`)
	api.Post(t, "/send", `{"group":"g","data":"b only"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	b.Expect(`{"type":"message","seq":3,"data":"b only","group":"g"}`)

	api.Post(t, "/send", `{"all":true,"data":"everyone"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(4, 0))
	a1.Expect(`{"type":"message","seq":3,"data":"everyone"}`)
	a2.Expect("everyone")
	b.Expect(`{"type":"message","seq":4,"data":"everyone"}`)
	c.Expect(`{"type":"message","seq":2,"data":"everyone"}`)

	// uids, paged.
	harness.LoggedIn(t, h.WS+"/ws", "d")
	harness.LoggedIn(t, h.WS+"/ws", "e")
	api.Get(t, "/uids").ExpectJSON(http.StatusOK, `{"uids":["a","b","c","d","e"]}`)
	api.Get(t, "/uids?limit=2").ExpectJSON(http.StatusOK, `{"next":"b","uids":["a","b"]}`)
	push.Get(t, "/uids?limit=2&after=b").ExpectJSON(http.StatusOK, `{"next":"d","uids":["c","d"]}`)
	api.Get(t, "/uids?limit=2&after=d").ExpectJSON(http.StatusOK, `{"uids":["e"]}`)
	api.Get(t, "/uids?after=e").ExpectJSON(http.StatusOK, `{"uids":[]}`)
	api.Get(t, "/uids?group=g").ExpectJSON(http.StatusOK, `{"group":"g","uids":["b"]}`)

	// stats
	s := api.Stats(t)
	if s.Hub != h.Hub("HUB") || s.Connections != 6 || s.UIDs != 5 || s.Groups != 1 || s.Pending != 0 ||
		s.Pushes != 6 || s.MessagesOut != 12 || s.SlowConsumers != 0 {
		t.Fatalf("stats %+v, want the hub's name, 6 connections, 5 uids, 1 group, 6 pushes, 12 messages out", s)
	}

	// kick: the kicked connections get an error frame (json) and close 4005
	// with the reason; the others stay.
	api.Post(t, "/kick", `{"uid":"a","reason":"account closed"}`).ExpectJSON(http.StatusOK, `{"closed":2,"uid":"a"}`)
	a1.ExpectError("kicked", "")
	for _, k := range []*harness.Conn{a1, a2} {
		if reason := k.ExpectClose(4005); reason != "account closed" {
			t.Fatalf("%s: kick close reason %q, want %q", k.Name, reason, "account closed")
		}
	}
	push.Post(t, "/kick", `{"uid":"ghost"}`).ExpectJSON(http.StatusOK, `{"closed":0,"uid":"ghost"}`)
	api.WaitOnline(t, "a", 0)
	api.Post(t, "/send", `{"all":true,"data":"after the kick"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(4, 0))
	b.Expect(`{"type":"message","seq":5,"data":"after the kick"}`)
}

// TestReceipts: what POST /send answers: connections reached, and with
// wait_ack the json connections that acknowledged in time. (Slow consumers
// dropped: TestSlowConsumer.)
func TestReceipts(t *testing.T) {
	h := harness.Start(t, harness.BothProtocols())
	api := h.API()
	send := func(body, want string) {
		t.Helper()
		api.Post(t, "/send", body).ExpectJSON(http.StatusOK, want)
	}

	// One uid on two json connections and a text one: three deliveries.
	j1 := harness.Dial(t, "multi-json#1", h.WS+"/ws", nil)
	j1.Login("multi")
	j2 := harness.Dial(t, "multi-json#2", h.WS+"/ws", nil)
	j2.Login("multi")
	tx := harness.LoggedInText(t, h.WS+"/text", "multi")
	send(`{"uid":"multi","data":"x"}`, harness.ReceiptJSON(3, 0))
	j1.ExpectMessage(`"x"`)
	j2.ExpectMessage(`"x"`)
	tx.Expect("x")

	// wait_ack: a json client that acks and one that does not.
	acker := harness.Dial(t, "acker", h.WS+"/ws", nil)
	acker.Login("ack")
	silent := harness.Dial(t, "silent", h.WS+"/ws", nil)
	silent.Login("ack")
	ackDone := ackOnce(acker.Conn, 0)
	send(`{"uid":"ack","data":"please ack","wait_ack":"2s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":1}`)
	if err := <-ackDone; err != nil {
		t.Fatal(err)
	}
	silent.ExpectMessage(`"please ack"`)

	// Both ack: 2. Acknowledgements are cumulative: an ack of a later seq
	// covers the message.
	both := harness.Dial(t, "both#1", h.WS+"/ws", nil)
	both.Login("both")
	both2 := harness.Dial(t, "both#2", h.WS+"/ws", nil)
	both2.Login("both")
	ack1, ack2 := ackOnce(both.Conn, 5), ackOnce(both2.Conn, 5)
	send(`{"uid":"both","data":1,"wait_ack":"10s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":2}`)
	for _, done := range []chan error{ack1, ack2} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	// A text connection is never counted in acked, even if it sends what
	// looks like an ack.
	mj := harness.Dial(t, "mixed-json", h.WS+"/ws", nil)
	mj.Login("mixed")
	mt := harness.LoggedInText(t, h.WS+"/text", "mixed")
	textDone := make(chan error, 1)
	go func() {
		_, _, err := mt.ReadMessage()
		if err == nil {
			err = mt.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","seq":99999999999}`))
		}
		textDone <- err
	}()
	jsonDone := ackOnce(mj.Conn, 0)
	send(`{"uid":"mixed","data":"m","wait_ack":"2s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":1}`)
	for _, done := range []chan error{textDone, jsonDone} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	// Broadcast: every connection.
	send(`{"all":true,"data":"all"}`, harness.ReceiptJSON(9, 0))
}

// ackOnce reads one message on ws's own goroutine and acknowledges its seq
// plus ahead.
func ackOnce(ws *websocket.Conn, ahead uint64) chan error {
	done := make(chan error, 1)
	go func() {
		_, b, err := ws.ReadMessage()
		if err == nil {
			var f harness.Frame
			if f, err = harness.DecodeFrame(b); err == nil {
				err = ws.WriteJSON(map[string]any{"type": "ack", "seq": f.Seq + ahead})
			}
		}
		done <- err
	}()
	return done
}

// TestAPIRefusals: every refusal of push_api is a 4xx with a JSON error
// body (README's hostile-input table), and a client of the hub keeps
// receiving through all of them.
func TestAPIRefusals(t *testing.T) {
	const key = "api-key-0123456789"
	h := harness.Start(t, `
{$API_SITE} {
	push_api {
		hub {$HUB}
		key `+key+`
		max_body_size 1KiB
	}
}

{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		max_uid_length 16
	}
}`)
	api := h.API().WithKey(key)
	observer := harness.LoggedIn(t, h.WS+"/ws", "observer").StartReader()

	long := strings.Repeat("u", 17)
	authz := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	for i, tc := range []struct {
		name, method, path, body string
		hdr                      http.Header
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", "/send", `{"uid":"a","data":`, nil, 400, "bad_json"},
		{"not an object", "POST", "/send", `["uid","a"]`, nil, 400, "bad_json"},
		{"empty body", "POST", "/send", ``, nil, 400, "bad_json"},
		{"data after the object", "POST", "/send", `{"uid":"a","data":1} {}`, nil, 400, "bad_json"},
		{"a bracket after the object", "POST", "/send", `{"uid":"a","data":1}]`, nil, 400, "bad_json"},
		{"a brace and more after the object", "POST", "/send", `{"uid":"a","data":1}}x`, nil, 400, "bad_json"},
		{"unknown field", "POST", "/send", `{"uid":"a","data":1,"priority":"high"}`, nil, 400, "bad_json"},
		{"no target", "POST", "/send", `{"data":1}`, nil, 400, "bad_target"},
		{"two targets", "POST", "/send", `{"uid":"a","all":true,"data":1}`, nil, 400, "bad_target"},
		{"empty uids", "POST", "/send", `{"uids":[],"data":1}`, nil, 400, "bad_target"},
		{"no data", "POST", "/send", `{"uid":"a"}`, nil, 400, "missing_data"},
		{"null data", "POST", "/send", `{"uid":"a","data":null}`, nil, 400, "missing_data"},
		{"empty uid", "POST", "/send", `{"uids":[""],"data":1}`, nil, 400, "invalid_uid"},
		{"uid over max_uid_length", "POST", "/send", `{"uid":"` + long + `","data":1}`, nil, 400, "invalid_uid"},
		{"control character in the uid", "POST", "/send", `{"uid":"a\u0000","data":1}`, nil, 400, "invalid_uid"},
		{"control character in the group", "POST", "/send", `{"group":"g\u0007","data":1}`, nil, 400, "invalid_group"},
		{"group over max_uid_length", "POST", "/join", `{"uid":"observer","group":"` + long + `"}`, nil, 400, "invalid_group"},
		{"join without a group", "POST", "/join", `{"uid":"a"}`, nil, 400, "invalid_group"},
		{"kick without a uid", "POST", "/kick", `{"reason":"x"}`, nil, 400, "invalid_uid"},
		{"online without a uid", "GET", "/online", ``, nil, 400, "invalid_uid"},
		{"limit 0", "GET", "/uids?limit=0", ``, nil, 400, "bad_limit"},
		{"limit not a number", "GET", "/uids?limit=ten", ``, nil, 400, "bad_limit"},
		{"limit over 10000", "GET", "/uids?limit=10001", ``, nil, 400, "bad_limit"},
		{"wait_ack below 0", "POST", "/send", `{"uid":"a","data":1,"wait_ack":"-1s"}`, nil, 400, "bad_wait_ack"},
		{"wait_ack over 30s", "POST", "/send", `{"uid":"a","data":1,"wait_ack":"31s"}`, nil, 400, "bad_wait_ack"},
		{"body over max_body_size", "POST", "/send", `{"uid":"a","data":"` + strings.Repeat("x", 2048) + `"}`, nil, 413, "body_too_large"},
		{"GET a POST call", "GET", "/send", ``, nil, 405, "method_not_allowed"},
		{"POST a GET call", "POST", "/stats", `{}`, nil, 405, "method_not_allowed"},
		{"DELETE", "DELETE", "/kick", ``, nil, 405, "method_not_allowed"},
		{"unknown call", "POST", "/publish", `{"uid":"a","data":1}`, nil, 404, "unknown_call"},
		{"no call", "GET", "/", ``, nil, 404, "unknown_call"},
		{"no key", "POST", "/send", `{"all":true,"data":1}`, http.Header{"Authorization": nil}, 401, "unauthorized"},
		{"wrong key", "POST", "/send", `{"all":true,"data":1}`, authz("Bearer not-the-key"), 401, "unauthorized"},
		{"the key as Basic", "GET", "/stats", ``, authz("Basic " + key), 401, "unauthorized"},
		{"the bare key", "GET", "/stats", ``, authz(key), 401, "unauthorized"},
		// Authentication comes first: an unknown call without the key.
		{"unknown call without the key", "GET", "/nope", ``, http.Header{"Authorization": nil}, 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := api.Do(t, tc.method, tc.path, tc.body, tc.hdr)
			r.ExpectError(tc.status, tc.code)
			switch want := map[string]string{"/send": "POST", "/kick": "POST", "/stats": "GET"}[tc.path]; tc.status {
			case http.StatusMethodNotAllowed:
				if got := r.Header.Get("Allow"); got != want {
					t.Fatalf("Allow %q, want %q", got, want)
				}
			case http.StatusUnauthorized:
				if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Fatalf("WWW-Authenticate %q, want a Bearer challenge", got)
				}
			}
			data := harness.JSON(fmt.Sprintf("after refusal %d", i))
			api.Post(t, "/send", `{"uid":"observer","data":`+data+`}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
			observer.ExpectMessage(t, data)
		})
	}

	// The scheme is case-insensitive, and a body just under the cap is read.
	lower := api.Do(t, "GET", "/online?uid=observer", "", authz("bearer "+key))
	lower.ExpectJSON(http.StatusOK, harness.OnlineJSON("observer", 1))
	body := `{"uid":"x","data":"` + strings.Repeat("x", 1024-len(`{"uid":"x","data":""}`)) + `"}`
	api.Post(t, "/send", body).ExpectJSON(http.StatusOK, harness.ReceiptJSON(0, 0))
}

// TestAPINonLoopback: with no key, push_api serves loopback callers only; a
// caller from another address gets 403. With a key, it is served.
func TestAPINonLoopback(t *testing.T) {
	ip := nonLoopbackIPv4()
	if ip == nil {
		testenv.Missing(t, "a non-loopback IPv4 address on this machine",
			"the test binds a site to it to call push_api from a non-loopback address")
	}
	h := harness.InProcess(t)
	ext := fmt.Sprintf("%s:%d", ip, h.Spare(0))
	extKeyed := fmt.Sprintf("%s:%d", ip, h.Spare(1))
	h.Load(fmt.Sprintf(`
http://%[1]s {
	bind %[3]s
	push_api {
		hub {$HUB}
	}
}

http://%[2]s {
	bind %[3]s
	push_api {
		hub {$HUB}
		key api-key-0123456789
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`, ext, extKeyed, ip))

	open := harness.API{URL: "http://" + ext}
	open.Get(t, "/stats").ExpectError(http.StatusForbidden, "forbidden")
	open.Post(t, "/send", `{"all":true,"data":1}`).ExpectError(http.StatusForbidden, "forbidden")
	keyed := harness.API{URL: "http://" + extKeyed, Key: "api-key-0123456789"}
	keyed.Get(t, "/online?uid=x").ExpectJSON(http.StatusOK, harness.OnlineJSON("x", 0))
	keyed.WithKey("").Get(t, "/online?uid=x").ExpectError(http.StatusUnauthorized, "unauthorized")
	h.API().Get(t, "/online?uid=x").ExpectJSON(http.StatusOK, harness.OnlineJSON("x", 0))
}

// nonLoopbackIPv4 is an IPv4 address of an interface that is up and not a
// loopback, or nil.
func nonLoopbackIPv4() net.IP {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.To4()
			}
		}
	}
	return nil
}
