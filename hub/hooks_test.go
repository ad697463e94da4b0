package hub_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/hub"
	"github.com/pushhub/caddy-pushhub/hub/webhook"
)

// application is a real HTTP server standing in for the application that
// uses the hub: it records the event batches it is sent and answers login
// hook requests as the test says.
type application struct {
	t      testing.TB
	srv    *httptest.Server
	secret string

	mu      sync.Mutex
	batches []eventBatch
	logins  []map[string]any
	answer  func(req map[string]any) (status int, body string)
	down    bool          // answer every request with 503
	delay   time.Duration // before answering
	changed chan struct{}
}

type eventBatch struct {
	Hub    string           `json:"hub"`
	Node   string           `json:"node"`
	Events []map[string]any `json:"events"`
}

func newApplication(t testing.TB, secret string) *application {
	a := &application{t: t, secret: secret, changed: make(chan struct{}, 1)}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *application) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	down, delay, answer := a.down, a.delay, a.answer
	a.mu.Unlock()
	time.Sleep(delay)
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if a.secret != "" && !webhook.Verify(a.secret, body, r.Header.Get(webhook.SignatureHeader)) {
		a.t.Errorf("%s: a request whose signature %q is not its body's", r.URL.Path, r.Header.Get(webhook.SignatureHeader))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/events":
		var b eventBatch
		if err := json.Unmarshal(body, &b); err != nil {
			a.t.Errorf("an event batch that is not JSON: %s", body)
		}
		a.mu.Lock()
		a.batches = append(a.batches, b)
		a.mu.Unlock()
		select {
		case a.changed <- struct{}{}:
		default:
		}
	case "/login":
		var req map[string]any
		_ = json.Unmarshal(body, &req)
		a.mu.Lock()
		a.logins = append(a.logins, req)
		a.mu.Unlock()
		status, out := http.StatusOK, `{"allow": true}`
		if answer != nil {
			status, out = answer(req)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, out)
	}
}

// events returns every event received so far, in order.
func (a *application) events() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, b := range a.batches {
		out = append(out, b.Events...)
	}
	return out
}

// waitEvents waits until n events have come and returns them.
func (a *application) waitEvents(n int) []map[string]any {
	a.t.Helper()
	var got []map[string]any
	eventually(a.t, fmt.Sprintf("%d events at the application", n), func() bool {
		got = a.events()
		return len(got) >= n
	})
	return got
}

func (a *application) set(fn func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn()
}

// withHooks gives the test server's default endpoint hooks.
func (ts *testServer) withHooks(s hub.Settings, hk hub.Hooks) {
	ep := ts.hub.Endpoint("", s)
	ep.StageHooks(hk)
	ts.hub.Apply(ep)
	ts.hub.ReleaseEndpoint(ep)
}

// TestEvents: logins, closes and messages for the application reach it as
// signed batches, with what the README says each carries.
func TestEvents(t *testing.T) {
	app := newApplication(t, "event-secret")
	ts := newTestServer(t, hub.Settings{})
	sink := webhook.NewEvents(webhook.EventsConfig{URL: app.srv.URL + "/events", Secret: "event-secret", Hub: "test"},
		ts.hub.EventCounters(), nil)
	defer sink.Close()
	ts.withHooks(hub.Settings{}, hub.Hooks{Events: sink})

	c := ts.jsonUser("alice")
	c.sendJSON(map[string]any{"type": "app", "id": 1, "data": map[string]any{"order": 7}})
	if f := c.readType("queued"); string(f.ID) != "1" {
		t.Fatalf("queued frame %+v", f)
	}
	c.ws.Close()
	got := app.waitEvents(3)
	login, msg, closed := got[0], got[1], got[2]
	if login["kind"] != "login" || login["uid"] != "alice" || login["protocol"] != "json" || login["conn_id"] == "" || login["remote"] == "" {
		t.Fatalf("login event %v", login)
	}
	if msg["kind"] != "message" || msg["uid"] != "alice" || fmt.Sprint(msg["data"]) != "map[order:7]" {
		t.Fatalf("message event %v", msg)
	}
	if closed["kind"] != "close" || closed["uid"] != "alice" || closed["conn_id"] != login["conn_id"] {
		t.Fatalf("close event %v", closed)
	}
	if code, _ := closed["code"].(float64); code != 1006 && code != 1005 && code != 1000 {
		t.Fatalf("close event code %v for a client that went away", closed["code"])
	}
	// Counted once the application's answer is in.
	waitStats(t, ts.hub, "3 events sent", func(st hub.Stats) bool {
		return st.EventsSent == 3 && st.EventsDropped == 0 && st.EventsFailed == 0
	})

	// A close the hub decides carries its code and reason.
	slow := ts.jsonUser("kicked")
	ts.hub.Kick("kicked", "bye")
	slow.readType("error")
	slow.expectClose(hub.CloseKicked)
	eventually(t, "the kick's close event", func() bool {
		for _, e := range app.events() {
			if e["kind"] == "close" && e["uid"] == "kicked" && e["code"] == float64(hub.CloseKicked) && e["reason"] == "bye" {
				return true
			}
		}
		return false
	})
}

// TestEventsTextToApp: with text_messages app, a text frame after login is
// a message event for the application, not routed to a uid.
func TestEventsTextToApp(t *testing.T) {
	app := newApplication(t, "")
	ts := newTestServer(t, hub.Settings{AllowClientPublish: true})
	sink := webhook.NewEvents(webhook.EventsConfig{URL: app.srv.URL + "/events", Kinds: []string{hub.EventMessage}}, ts.hub.EventCounters(), nil)
	defer sink.Close()
	ts.withHooks(hub.Settings{AllowClientPublish: true}, hub.Hooks{Events: sink, TextToApp: true})
	bob := ts.textUser("bob")
	alice := ts.textUser("alice")
	alice.send("bob:not routed")
	got := app.waitEvents(1)
	if got[0]["kind"] != "message" || got[0]["data"] != "bob:not routed" || got[0]["uid"] != "alice" {
		t.Fatalf("event %v", got[0])
	}
	// Only messages were asked for: no login events came.
	if len(got) != 1 {
		t.Fatalf("events %v, want the message only", got)
	}
	ts.hub.SendToUID("bob", msg(`"direct"`))
	bob.expectText("direct") // bob got nothing before it
}

// TestEventsApplicationDown: while the application is down, events are
// tried again and then counted as failed, or dropped once the queue is
// full; sockets and pushes never wait for it.
func TestEventsApplicationDown(t *testing.T) {
	app := newApplication(t, "")
	app.set(func() { app.down = true })
	ts := newTestServer(t, hub.Settings{})
	sink := webhook.NewEvents(webhook.EventsConfig{URL: app.srv.URL + "/events", QueueSize: 4, Retries: 1, BatchSize: 2},
		ts.hub.EventCounters(), nil)
	defer sink.Close()
	ts.withHooks(hub.Settings{}, hub.Hooks{Events: sink})
	c := ts.jsonUser("alice")
	for i := range 50 {
		c.sendJSON(map[string]any{"type": "app", "id": i, "data": i})
	}
	// Every frame is answered at once: queued, or app_busy once full.
	busy := 0
	for range 50 {
		f := c.readFrame()
		switch {
		case f.Type == "queued":
		case f.Type == "error" && f.Code == "app_busy":
			busy++
		default:
			t.Fatalf("frame %+v", f)
		}
	}
	if busy == 0 {
		t.Fatal("a queue of 4 took 50 messages for an application that is down")
	}
	ts.hub.SendToUID("alice", msg(`"still served"`))
	c.readMessage(1, `"still served"`)
	waitStats(t, ts.hub, "every event failed or dropped", func(s hub.Stats) bool {
		return s.EventsSent == 0 && s.EventsFailed+s.EventsDropped == 51 && s.EventsDropped >= uint64(busy)
	})
	// Back up: new events go through.
	app.set(func() { app.down = false })
	ts.jsonUser("bob")
	eventually(t, "an event after the application came back", func() bool {
		for _, e := range app.events() {
			if e["uid"] == "bob" {
				return true
			}
		}
		return false
	})
}

// TestLoginHook: the application allows a login and names its groups, or
// refuses it with a reason the client sees; it is told the uid, the
// connection and the headers the configuration names.
func TestLoginHook(t *testing.T) {
	app := newApplication(t, "login-secret")
	app.set(func() {
		app.answer = func(req map[string]any) (int, string) {
			if req["uid"] == "mallory" {
				return http.StatusOK, `{"allow": false, "reason": "banned"}`
			}
			// A field the hub does not know is ignored: applications may
			// answer more than this version reads.
			return http.StatusOK, `{"allow": true, "groups": ["room-1", "room-2"], "ttl": 60}`
		}
	})
	ts := newTestServer(t, hub.Settings{})
	ts.withHooks(hub.Settings{}, hub.Hooks{Login: webhook.NewLogin(webhook.LoginConfig{URL: app.srv.URL + "/login", Secret: "login-secret"})})

	c := ts.dial("")
	c.loginJSON("alice")
	// Joined before the welcome: a push to the group reaches the connection.
	if r := ts.hub.SendToGroup("room-2", msg(`"hi room"`)); r.Delivered != 1 {
		t.Fatalf("group push %+v", r)
	}
	if f := c.readMessage(1, `"hi room"`); f.Group != "room-2" {
		t.Fatalf("message %+v", f)
	}
	app.mu.Lock()
	logins := app.logins
	app.mu.Unlock()
	if len(logins) != 1 || logins[0]["uid"] != "alice" || logins[0]["protocol"] != "json" || logins[0]["conn_id"] == "" {
		t.Fatalf("the application was told %v", logins)
	}

	refused := ts.dial("")
	refused.sendJSON(map[string]any{"type": "login", "uid": "mallory"})
	if f := refused.readType("error"); f.Code != "login_refused" || f.Message != "banned" {
		t.Fatalf("error %+v", f)
	}
	if reason := refused.expectClose(hub.CloseAuthFailed); reason != "login_refused: banned" {
		t.Fatalf("close reason %q", reason)
	}
	if n := ts.hub.Online("mallory"); n != 0 {
		t.Fatalf("a refused uid holds %d connections", n)
	}
}

// TestLoginHookFailures: an application that is down, too slow, or answers
// garbage gets the configured outcome: refused by default, allowed with
// on_error allow.
func TestLoginHookFailures(t *testing.T) {
	app := newApplication(t, "")
	cases := []struct {
		name  string
		setup func()
	}{
		{"down", func() { app.down, app.delay, app.answer = true, 0, nil }},
		{"slow", func() { app.down, app.delay, app.answer = false, 2*time.Second, nil }},
		{"garbage", func() {
			app.down, app.delay = false, 0
			app.answer = func(map[string]any) (int, string) { return http.StatusOK, `<html>not JSON</html>` }
		}},
		{"no decision", func() {
			app.down, app.delay = false, 0
			app.answer = func(map[string]any) (int, string) { return http.StatusOK, `{"groups": ["x"]}` }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app.set(tc.setup)
			for _, allow := range []bool{false, true} {
				ts := newTestServer(t, hub.Settings{})
				ts.withHooks(hub.Settings{}, hub.Hooks{Login: webhook.NewLogin(webhook.LoginConfig{
					URL: app.srv.URL + "/login", Timeout: 300 * time.Millisecond, AllowOnError: allow,
				})})
				c := ts.dial("")
				c.sendJSON(map[string]any{"type": "login", "uid": "u"})
				f := c.readFrame()
				switch {
				case allow && f.Type != "welcome":
					t.Fatalf("on_error allow: got %+v, want a welcome", f)
				case !allow && (f.Type != "error" || f.Code != "login_refused" || !strings.Contains(f.Message, "could not be asked")):
					t.Fatalf("on_error refuse: got %+v, want login_refused", f)
				}
			}
		})
	}
}

// TestLoginHookFailuresLogged: an application that cannot be asked is
// logged at warn at most once a second, with how many logins it failed in
// all, not once per login.
func TestLoginHookFailuresLogged(t *testing.T) {
	app := newApplication(t, "")
	app.set(func() { app.down = true })
	ts := newTestServer(t, hub.Settings{})
	logs := observed(ts)
	ts.withHooks(hub.Settings{}, hub.Hooks{Login: webhook.NewLogin(webhook.LoginConfig{URL: app.srv.URL + "/login", AllowOnError: true})})
	for i := range 5 {
		c := ts.dial("")
		c.loginJSON(fmt.Sprintf("u%d", i))
	}
	var warned []map[string]any
	for _, e := range logs.All() {
		if e.Message == "the login hook did not answer" {
			warned = append(warned, e.ContextMap())
		}
	}
	if len(warned) != 1 || warned[0]["failures_in_all"] != uint64(1) {
		t.Fatalf("warnings for 5 failed login hook calls within a second: %v, want one, the first", warned)
	}
}
