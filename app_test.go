package pushhub_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// The application in the loop, end to end: a real Caddy, a real HTTP
// server standing in for the application (harness.App, which checks each
// request's signature as the README tells applications to), real
// WebSocket clients.

const appSecret = "the-application-shares-this"

// isLoopback reports whether addr is host:port on a loopback address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// withClaims is uid's valid claims plus extra ones.
func withClaims(uid string, extra jwt.MapClaims) jwt.MapClaims {
	c := harness.Claims(uid)
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// TestEvents: what happens on an endpoint's connections reaches the
// application as signed batches: logins (with the token's claims), json
// app frames answered "queued", text frames with text_messages app (and
// then not routed), closes by the client (code, reason, duration), by
// /kick and by a lost connection.
func TestEvents(t *testing.T) {
	t.Setenv("PUSH_JWT_SECRET", jwtSecret)
	app := harness.StartApp(t, appSecret)
	h := harness.Start(t, fmt.Sprintf(`
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET}
		events %[1]s/events {
			secret %[2]s
		}
	}
	push_hub /text {
		hub {$HUB}
		protocol text
		auth first_message
		events %[1]s/events {
			secret %[2]s
			text_messages app
		}
	}
}
`, app.URL, appSecret)+harness.APISite("HUB"))
	api := h.API()
	hs := func(c jwt.MapClaims) string { return harness.Token(t, jwt.SigningMethodHS256, []byte(jwtSecret), c) }
	kind := func(k, uid string) func(harness.AppEvent) bool {
		return func(e harness.AppEvent) bool { return e.Kind == k && e.UID == uid }
	}

	// A login, with the token's claims.
	before := time.Now()
	alice := harness.Dial(t, "alice", h.WS+"/ws", harness.Bearer(hs(withClaims("alice", jwt.MapClaims{"role": "admin"}))))
	w := alice.ExpectWelcome("alice")
	login := app.WaitEvent(t, "alice's login", kind("login", "alice"))
	if login.ConnID != w.ConnID || login.Protocol != "json" || !isLoopback(login.Remote) ||
		login.Claims["role"] != "admin" || login.Claims["sub"] != "alice" ||
		login.Time.Before(before.Add(-time.Second)) || login.Time.After(time.Now()) ||
		login.Code != 0 || login.Reason != "" || login.DurationMS != 0 || login.Data != nil {
		t.Errorf("alice's login event = %s, want conn %s, json, a loopback remote, her claims, the time of the login", harness.JSON(login), w.ConnID)
	}

	// A json app frame: answered "queued", its data the application's.
	alice.Send(`{"type":"app","id":7,"data":{"cart":42,"items":["a","b"]}}`)
	alice.Expect(`{"type":"queued","id":7}`)
	m := app.WaitEvent(t, "alice's app frame", kind("message", "alice"))
	if string(m.Data) != `{"cart":42,"items":["a","b"]}` || m.ConnID != w.ConnID || m.Protocol != "json" {
		t.Errorf("alice's message event = %s, want her data from %s", harness.JSON(m), w.ConnID)
	}
	// Without an id there is no answer; an app frame without data is refused.
	alice.Send(`{"type":"app","data":"no answer wanted"}`)
	alice.Send(`{"type":"app","id":"x"}`)
	alice.ExpectError("bad_frame", `"x"`)
	app.WaitEvent(t, "the frame without an id", func(e harness.AppEvent) bool { return string(e.Data) == `"no answer wanted"` })

	// text_messages app: the recipe's "<uid>:<message>" goes to the
	// application as it is, and is not routed to the uid.
	bob := harness.LoggedInText(t, h.WS+"/text", "bob")
	if l := app.WaitEvent(t, "bob's login", kind("login", "bob")); l.Protocol != "text" || l.Claims != nil {
		t.Errorf("bob's login event = %s, want the text protocol and no claims", harness.JSON(l))
	}
	bob.Send("alice:this is for the application")
	app.WaitEvent(t, "bob's text frame", func(e harness.AppEvent) bool {
		return e.Kind == "message" && e.UID == "bob" && string(e.Data) == `"alice:this is for the application"`
	})
	alice.StillOpen() // the pong comes first: nothing was routed to alice

	// Closes: by the client with a code and reason, kicked, and lost.
	time.Sleep(100 * time.Millisecond) // so that alice's connection has lasted at least that
	opened := time.Since(before)
	if err := alice.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4321, "see you"), time.Now().Add(harness.Guard)); err != nil {
		t.Fatal(err)
	}
	alice.ExpectClose(4321)
	c := app.WaitEvent(t, "alice's close", kind("close", "alice"))
	if c.Code != 4321 || c.Reason != "see you" || c.ConnID != w.ConnID || c.DurationMS < 100 || c.DurationMS > opened.Milliseconds()+1000 {
		t.Errorf("alice's close event = %s, want 4321 \"see you\" after 100 ms to %d ms", harness.JSON(c), opened.Milliseconds())
	}
	api.Post(t, "/kick", `{"uid":"bob","reason":"maintenance"}`).ExpectJSON(http.StatusOK, `{"closed":1,"uid":"bob"}`)
	if k := app.WaitEvent(t, "bob's close", kind("close", "bob")); k.Code != 4005 || !strings.Contains(k.Reason, "maintenance") {
		t.Errorf("bob's close event = %s, want 4005 with the kick's reason", harness.JSON(k))
	}
	carol := harness.Dial(t, "carol", h.WS+"/ws?token="+hs(harness.Claims("carol")), nil)
	carol.ExpectWelcome("carol")
	carol.Reset()
	if l := app.WaitEvent(t, "carol's close", kind("close", "carol")); l.Code != 1006 {
		t.Errorf("carol's close event = %s, want 1006", harness.JSON(l))
	}

	// Every batch names the hub and the sending instance, and has an id
	// of its own; everything the application took is counted as sent.
	batches := app.Batches()
	seen := map[string]bool{}
	events := 0
	for _, b := range batches {
		if b.Hub != h.Hub("HUB") || b.Node == "" || b.Delivery == "" || seen[b.Delivery] || len(b.Events) == 0 {
			t.Errorf("batch %s (delivery %q), want hub %q, a node, an id of its own and events", harness.JSON(b), b.Delivery, h.Hub("HUB"))
		}
		seen[b.Delivery] = true
		events += len(b.Events)
	}
	// alice: login, 2 messages, close; bob: login, message, close; carol: login, close.
	if events != 9 {
		t.Errorf("the application got %d events, want 9: %s", events, harness.JSON(app.Events()))
	}
	// Counted once the hub has read the application's answer, which may
	// come just after the application took the events.
	harness.Eventually(t, "the stats count every event sent", func() (bool, string) {
		st := api.Stats(t)
		return st.EventsSent == uint64(events) && st.EventsFailed == 0 && st.EventsDropped == 0,
			fmt.Sprintf("events sent %d, failed %d, dropped %d; want %d, 0, 0", st.EventsSent, st.EventsFailed, st.EventsDropped, events)
	})
}

// TestEventsBatchesAndRetries: events that wait while the application is
// busy go in one batch; a batch the application refuses is tried again
// with the same delivery id; kinds narrows what is sent (an app frame then
// gets app_unavailable).
func TestEventsBatchesAndRetries(t *testing.T) {
	app := harness.StartApp(t, appSecret)
	h := harness.Start(t, harness.OneHub(
		fmt.Sprintf("events %s/events {\n\t\t\tsecret %s\n\t\t\tkinds login close\n\t\t\ttimeout 10s\n\t\t}", app.URL, appSecret)))
	api := h.API()

	// The application holds the first POST: what happens meanwhile waits,
	// and goes in one batch once it answers.
	release := app.Hold()
	first := harness.LoggedIn(t, h.WS+"/ws", "first")
	harness.Eventually(t, "the first POST reaches the application", func() (bool, string) {
		return len(app.Deliveries()) == 1, fmt.Sprint(app.Deliveries())
	})
	for i := range 5 {
		uid := fmt.Sprintf("u%d", i)
		c := harness.LoggedIn(t, h.WS+"/ws", uid)
		c.CloseNormally()
		api.WaitOnline(t, uid, 0) // its close event is queued before it goes offline
	}
	release()
	harness.Eventually(t, "11 events taken", func() (bool, string) {
		return len(app.Events()) == 11, harness.JSON(app.Batches())
	})
	if b := app.Batches(); len(b) != 2 || len(b[0].Events) != 1 || len(b[1].Events) != 10 {
		t.Errorf("batches of %v events, want 1 then 10", func() (n []int) {
			for _, x := range b {
				n = append(n, len(x.Events))
			}
			return
		}())
	}

	// kinds login close: no message events, so app frames are refused.
	first.Send(`{"type":"app","id":1,"data":"hello?"}`)
	first.ExpectError("app_unavailable", "1")

	// The application fails a batch: it comes again, with the same id.
	app.AnswerEvents(http.StatusServiceUnavailable, "busy")
	from := len(app.Deliveries())
	harness.LoggedIn(t, h.WS+"/ws", "retried")
	harness.Eventually(t, "the batch tried again", func() (bool, string) {
		return len(app.Deliveries()) >= from+2, fmt.Sprint(app.Deliveries()[from:])
	})
	app.AnswerEvents(http.StatusOK, "")
	e := app.WaitEvent(t, "the retried login", func(e harness.AppEvent) bool { return e.UID == "retried" })
	b := app.Batches()
	last := b[len(b)-1]
	if len(last.Events) != 1 || harness.JSON(last.Events[0]) != harness.JSON(e) {
		t.Fatalf("last batch %s, want the retried login alone", harness.JSON(last))
	}
	for _, d := range app.Deliveries()[from:] {
		if d != last.Delivery {
			t.Errorf("deliveries %v, want every try of the batch to carry %q", app.Deliveries()[from:], last.Delivery)
			break
		}
	}
	// The hub counts a batch as sent once it has read the application's
	// answer, which may come just after the application took the events.
	harness.Eventually(t, "the stats count every event sent", func() (bool, string) {
		st := api.Stats(t)
		return st.EventsSent == 12 && st.EventsFailed == 0 && st.EventsDropped == 0,
			fmt.Sprintf("events sent %d, failed %d, dropped %d; want 12, 0, 0", st.EventsSent, st.EventsFailed, st.EventsDropped)
	})
}

// TestEventsApplicationTrouble: the application down, slow, too slow, or
// answering garbage never holds up a socket or a push; what it does not
// take is counted in /stats (and in metrics, TestMetricsEvents) as failed
// or dropped.
func TestEventsApplicationTrouble(t *testing.T) {
	app := harness.StartApp(t, appSecret)
	h := harness.Start(t, fmt.Sprintf(`
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		events %[1]s/events {
			secret %[2]s
			queue_size 2
			retries 1
			timeout 10s
		}
	}
	push_hub /ws2 {
		hub {$HUB2}
		auth first_message
		events %[1]s/events {
			secret %[2]s
			retries 0
			timeout 300ms
		}
	}
}
`, app.URL, appSecret)+harness.APISite("HUB", "HUB2"))
	api, api2 := h.API(), h.API().Under("/HUB2")
	counts := func(a harness.API, sent, failed, dropped uint64) {
		t.Helper()
		harness.Eventually(t, fmt.Sprintf("events sent %d, failed %d, dropped %d", sent, failed, dropped), func() (bool, string) {
			st := a.Stats(t)
			return st.EventsSent == sent && st.EventsFailed == failed && st.EventsDropped == dropped,
				fmt.Sprintf("sent %d, failed %d, dropped %d", st.EventsSent, st.EventsFailed, st.EventsDropped)
		})
	}
	alice := harness.LoggedIn(t, h.WS+"/ws", "alice")
	counts(api, 1, 0, 0)

	// Down: nobody listens. Logins, pushes and closes go on; the events
	// fail (after one more try).
	app.Stop()
	bob := harness.LoggedIn(t, h.WS+"/ws", "bob")
	api.Send(t, `{"uids":["alice","bob"],"data":"while the application is down"}`)
	alice.ExpectMessage(`"while the application is down"`)
	bob.ExpectMessage(`"while the application is down"`)
	bob.CloseNormally()
	counts(api, 1, 2, 0)

	// Slow: the application holds a POST. The queue (queue_size 2) fills
	// and the rest is dropped, while sockets and pushes go on.
	app.Restart()
	release := app.Hold()
	harness.LoggedIn(t, h.WS+"/ws", "carol")
	harness.Eventually(t, "carol's login POSTed", func() (bool, string) {
		return len(app.Deliveries()) == 2, fmt.Sprint(app.Deliveries())
	})
	var late []*harness.Conn
	for i := range 5 {
		late = append(late, harness.LoggedIn(t, h.WS+"/ws", fmt.Sprintf("late%d", i)))
	}
	counts(api, 1, 2, 3)
	rc := api.Send(t, `{"uids":["alice","late0","late1","late2","late3","late4"],"data":"while the application is slow"}`)
	if rc.Delivered != 6 {
		t.Errorf("push while the application is slow: %+v, want 6 delivered", rc)
	}
	alice.ExpectMessage(`"while the application is slow"`)
	for _, c := range late {
		c.ExpectMessage(`"while the application is slow"`)
	}
	release()
	counts(api, 4, 2, 3) // carol's login and the two queued

	// Garbage: a 2xx answer means taken, whatever its body; any other
	// status is a failure.
	app.AnswerEvents(http.StatusOK, "<html>this is not what you think</html>")
	late[0].CloseNormally()
	counts(api, 5, 2, 3)
	app.AnswerEvents(http.StatusNotFound, "<html>404</html>")
	tries := app.Arrived("/events")
	late[1].CloseNormally()
	counts(api, 5, 3, 3)
	if n := app.Arrived("/events") - tries; n != 2 {
		t.Errorf("a batch the application refused was POSTed %d times, want 2 (retries 1)", n)
	}
	app.AnswerEvents(http.StatusNoContent, "")

	// Too slow: the try times out (timeout 300ms, retries 0: no second
	// try), and the batch fails; the client was welcomed long before.
	app.SetDelay(harness.Guard)
	tries = app.Arrived("/events")
	erin := harness.LoggedIn(t, h.WS+"/ws2", "erin")
	api2.Send(t, `{"uid":"erin","data":"while the application is too slow"}`)
	erin.ExpectMessage(`"while the application is too slow"`)
	counts(api2, 0, 1, 0)
	if n := app.Arrived("/events") - tries; n != 1 {
		t.Errorf("with retries 0, a batch was POSTed %d times, want once", n)
	}
	if n := len(app.Events()); n != 5 {
		t.Errorf("the application took %d events, want 5", n)
	}
}

// TestLoginHook: the application allows a login and names its groups
// (joined before the welcome), or refuses it with a reason the client sees;
// it is told the uid, the connection, the claims and the headers the config
// names. When it is slow, down or answers garbage, on_error decides.
func TestLoginHook(t *testing.T) {
	t.Setenv("PUSH_JWT_SECRET", jwtSecret)
	app := harness.StartApp(t, appSecret)
	h := harness.Start(t, fmt.Sprintf(`
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET}
		login_hook %[1]s/login {
			secret %[2]s
			timeout 500ms
			headers User-Agent X-Tenant
		}
	}
	push_hub /text {
		hub {$HUB}
		protocol text
		auth first_message
		login_hook %[1]s/login {
			secret %[2]s
			on_error refuse
		}
	}
	push_hub /allow {
		hub {$HUB2}
		auth first_message
		login_hook %[1]s/login {
			secret %[2]s
			timeout 500ms
			on_error allow
		}
	}
}
`, app.URL, appSecret)+harness.APISite("HUB", "HUB2"))
	api := h.API()
	hs := func(c jwt.MapClaims) string { return harness.Token(t, jwt.SigningMethodHS256, []byte(jwtSecret), c) }
	app.AnswerLogin(func(c harness.LoginCall) (int, string) {
		switch c.UID {
		case "alice":
			return http.StatusOK, `{"allow":true,"groups":["news","vip"]}`
		case "mallory":
			return http.StatusOK, `{"allow":false,"reason":"account suspended"}`
		}
		return http.StatusOK, `{"allow":true}`
	})

	// Allowed with groups: a push to a group right after the welcome
	// reaches her.
	hdr := harness.Bearer(hs(withClaims("alice", jwt.MapClaims{"plan": "pro"})))
	hdr.Set("User-Agent", "hook-test/1.0")
	hdr.Set("X-Tenant", "acme")
	hdr.Set("X-Not-Named", "not for the application")
	alice := harness.Dial(t, "alice", h.WS+"/ws", hdr)
	w := alice.ExpectWelcome("alice")
	api.Post(t, "/send", `{"group":"news","data":"first news"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	alice.ExpectMessage(`"first news"`)
	api.Get(t, "/uids?group=vip").ExpectJSON(http.StatusOK, `{"group":"vip","uids":["alice"]}`)
	calls := app.Logins()
	if len(calls) != 1 {
		t.Fatalf("the login hook was asked %d times, want once", len(calls))
	}
	if c := calls[0]; c.UID != "alice" || c.ConnID != w.ConnID || c.Protocol != "json" || !isLoopback(c.Remote) ||
		c.Claims["plan"] != "pro" || c.Claims["sub"] != "alice" ||
		harness.JSON(c.Headers) != `{"User-Agent":"hook-test/1.0","X-Tenant":"acme"}` {
		t.Errorf("the login hook was asked %s, want alice on %s with her claims and the two named headers", harness.JSON(c), w.ConnID)
	}

	// Refused with a reason: the client sees it, and is not online.
	mallory := harness.Dial(t, "mallory", h.WS+"/ws", harness.Bearer(hs(harness.Claims("mallory"))))
	mallory.ExpectError("login_refused", "")
	mallory.ExpectClose(4001)
	mText := harness.Dial(t, "mallory (text)", h.WS+"/text", nil)
	mText.Send("mallory")
	if reason := mText.ExpectClose(4001); !strings.Contains(reason, "account suspended") {
		t.Errorf("text client refused with %q, want the application's reason", reason)
	}
	// An event stream is refused the same way.
	s := harness.OpenStream(t, "mallory (stream)", harness.HTTPClient(t, false), h.HTTP+"/ws?token="+hs(harness.Claims("mallory")), nil)
	if ev := s.Next(t, "the refusal"); ev.Name != "error" || !strings.Contains(ev.Data, `"code":"login_refused","message":"account suspended"`) {
		t.Errorf("stream refused with %q %s, want login_refused and the reason", ev.Name, ev.Data)
	}
	s.Expect(t, "close", `{"type":"close","close_code":4001,"reason":"login_refused: account suspended"}`)
	s.ExpectEnd(t)
	api.Get(t, "/online?uid=mallory").ExpectJSON(http.StatusOK, harness.OnlineJSON("mallory", 0))

	// The application fails to answer: on_error refuse (the default) or
	// allow. Meanwhile the hub serves everyone else.
	refused := func(name, path string) {
		t.Helper()
		c := harness.Dial(t, name, h.WS+path, harness.Bearer(hs(harness.Claims(name))))
		c.ExpectError("login_refused", "")
		c.ExpectClose(4001)
	}
	allowed := func(name string) {
		t.Helper()
		harness.LoggedIn(t, h.WS+"/allow", name)
	}
	t.Run("slow", func(t *testing.T) {
		app.SetDelay(harness.Guard)
		defer app.SetDelay(0)
		asked, arrived := len(app.Logins()), app.Arrived("/login")
		waiting := harness.Dial(t, "waiting", h.WS+"/ws", harness.Bearer(hs(harness.Claims("waiting"))))
		harness.Eventually(t, "the login hook asked", func() (bool, string) {
			return app.Arrived("/login") == arrived+1, fmt.Sprint(app.Arrived("/login"))
		})
		api.Send(t, `{"uid":"alice","data":"while a login waits"}`)
		alice.ExpectMessage(`"while a login waits"`)
		waiting.ExpectError("login_refused", "")
		waiting.ExpectClose(4001)
		allowed("slow-allowed")
		if n := len(app.Logins()); n != asked {
			t.Errorf("the application recorded %d answers it never gave in time", n-asked)
		}
	})
	t.Run("down", func(t *testing.T) {
		app.Stop()
		defer app.Restart()
		refused("down-refused", "/ws")
		allowed("down-allowed")
	})
	for _, garbage := range []struct {
		name   string
		status int
		body   string
	}{
		{"not JSON", http.StatusOK, "<html>hello</html>"},
		{"no allow", http.StatusOK, `{"groups":["x"]}`},
		{"allow not a boolean", http.StatusOK, `{"allow":"yes"}`},
		{"an error status", http.StatusInternalServerError, `{"allow":true}`},
		{"a redirect", http.StatusFound, ""},
	} {
		t.Run("garbage: "+garbage.name, func(t *testing.T) {
			app.AnswerLogin(func(harness.LoginCall) (int, string) { return garbage.status, garbage.body })
			refused("garbage-refused", "/ws")
			allowed("garbage-allowed")
		})
	}
	alice.StillOpen()
}

// TestEventsUnsigned: with no secret, requests carry no signature header
// (harness.App with an empty secret refuses a signed one).
func TestEventsUnsigned(t *testing.T) {
	app := harness.StartApp(t, "")
	h := harness.Start(t, harness.OneHub("events "+app.URL+"/events", "login_hook "+app.URL+"/login"))
	harness.LoggedIn(t, h.WS+"/ws", "plain")
	app.WaitEvent(t, "the login", func(e harness.AppEvent) bool { return e.Kind == "login" && e.UID == "plain" })
	if n := len(app.Logins()); n != 1 {
		t.Errorf("the login hook was asked %d times, want once", n)
	}
}
