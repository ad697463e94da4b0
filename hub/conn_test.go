package hub_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushhub/caddy-pushhub/hub"
)

func TestLoginText(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{})
		c := ts.dial("proto=text")
		c.loginText("alice")
		if n := ts.hub.Online("alice"); n != 1 {
			t.Fatalf("Online(alice) = %d", n)
		}
		ts.hub.SendToUID("alice", msg(`"hello:world"`))
		c.expectText("hello:world")

		// A uid may contain anything but control characters.
		c2 := ts.dial("proto=text")
		c2.loginText("user 42 ü")
		ts.hub.SendToUID("user 42 ü", msg(`"x"`))
		c2.expectText("x")

		// But not what "<uid>:<message>" cannot address: "all" (everyone)
		// and a colon; the json protocol can address both.
		for _, uid := range []string{"all", "user:42"} {
			refused := ts.dial("proto=text")
			refused.send(uid)
			if reason := refused.expectClose(hub.CloseAuthFailed); !strings.HasPrefix(reason, "invalid_uid: the text protocol cannot address") {
				t.Fatalf("login as %q closed with reason %q", uid, reason)
			}
			ts.dial("").loginJSON(uid)
		}
	})
}

func TestLoginJSON(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{})
		c1, c2 := ts.dial(""), ts.dial("")
		w1 := c1.loginJSON("alice")
		w2 := c2.loginJSON("alice")
		if w1.ConnID == "" || w1.ConnID == w2.ConnID {
			t.Fatalf("connection ids %q and %q: want distinct, non-empty", w1.ConnID, w2.ConnID)
		}
		if w1.Seq != 0 || w2.Seq != 0 || w1.Resume != nil {
			t.Fatalf("welcomes %+v %+v: want seq 0 and no resume", w1, w2)
		}
		if n := ts.hub.Online("alice"); n != 2 {
			t.Fatalf("Online(alice) = %d", n)
		}
		// A token field is the credential too.
		c3 := ts.dial("")
		c3.sendJSON(map[string]any{"type": "login", "token": "bob"})
		if w := c3.readType("welcome"); w.UID != "bob" {
			t.Fatalf("token login welcomed %q", w.UID)
		}
		// A second login on the same connection is an error, not a close.
		c1.sendJSON(map[string]any{"type": "login", "uid": "mallory", "id": 7})
		if f := c1.readType("error"); f.Code != "already_logged_in" || string(f.ID) != "7" {
			t.Fatalf("second login: %+v", f)
		}
		ts.hub.SendToUID("alice", msg(`1`))
		c1.readMessage(1, `1`)
		if n := ts.hub.Online("mallory"); n != 0 {
			t.Fatal("the second login took effect")
		}
	})
}

func TestLoginAtUpgrade(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{})
		c := ts.dial("uid=carol")
		if w := c.readType("welcome"); w.UID != "carol" {
			t.Fatalf("welcome %+v", w)
		}
		c.sendJSON(map[string]any{"type": "ping", "id": "p"})
		if f := c.readType("pong"); string(f.ID) != `"p"` {
			t.Fatalf("pong %+v", f)
		}
		txt := ts.dial("proto=text&uid=dave")
		txt.expectText("login success, your uid is dave")
		// An invalid uid at the upgrade is refused like one in a frame.
		bad := ts.dial("uid=" + strings.Repeat("x", 200))
		if f := bad.readType("error"); f.Code != "invalid_uid" {
			t.Fatalf("over-long uid at the upgrade: %+v", f)
		}
		bad.expectClose(hub.CloseAuthFailed)
	})
}

// TestLoginRefused: a refused login gets an error frame (json) and closes
// with 4001, the reason starting with the error code.
func TestLoginRefused(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{MaxUIDLength: 16})
		cases := []struct {
			name, query, first, code string
		}{
			{"login func refuses", "", `{"type":"login","uid":"deny-me"}`, "denied"},
			{"empty uid", "", `{"type":"login","uid":""}`, "invalid_uid"},
			{"control character", "", `{"type":"login","uid":"a\u0001b"}`, "invalid_uid"},
			{"too long", "", `{"type":"login","uid":"seventeen-bytes!!"}`, "invalid_uid"},
			{"not a login", "", `{"type":"send","to":"x","data":1}`, "login_required"},
			{"no login func", "nologin", `{"type":"login","uid":"x"}`, "auth_failed"},
		}
		for _, tc := range cases {
			c := ts.dial(tc.query)
			c.send(tc.first)
			f, err := c.nextFrame()
			if err != nil || f.Type != "error" || f.Code != tc.code {
				t.Errorf("%s: got %+v, %v; want an error frame with code %q", tc.name, f, err, tc.code)
				continue
			}
			_, _, err = c.next()
			if code, reason := closeOf(err); code != hub.CloseAuthFailed || !strings.HasPrefix(reason, tc.code+": ") {
				t.Errorf("%s: connection ended with %v, want 4001 and a reason starting with the code", tc.name, err)
			}
		}
		for _, first := range []string{"deny-text", "", "tab\tuid"} {
			c := ts.dial("proto=text")
			c.send(first)
			// The text protocol has no error frames: just the close.
			if _, _, err := c.next(); closeCode(err) != hub.CloseAuthFailed {
				t.Errorf("text login %q: connection ended with %v, want 4001", first, err)
			}
		}
		c := ts.dial("")
		ts.jsonUser("full") // MaxConnectionsPerUID is 16: fill it
		for range 15 {
			ts.jsonUser("full")
		}
		c.sendJSON(map[string]any{"type": "login", "uid": "full"})
		if f, err := c.nextFrame(); err != nil || f.Code != "too_many_connections" {
			t.Errorf("login over the cap: %+v, %v", f, err)
		} else if _, _, err := c.next(); closeCode(err) != hub.CloseTooManyConnections {
			t.Errorf("login over the cap ended with %v, want 4003", err)
		}
	})
}

// TestLoginRefusedLeavesNothing: whatever the client is told, a refused
// connection ends, is not counted, and disturbs nobody.
func TestLoginRefusedLeavesNothing(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{MaxUIDLength: 16})
		ok := ts.jsonUser("ok")
		for _, first := range []string{
			`{"type":"login","uid":"deny-me"}`, `{"type":"login","uid":""}`,
			`{"type":"send","to":"ok","data":1}`, `{"type":"login","uid":"seventeen-bytes!!"}`,
		} {
			c := ts.dial("")
			c.send(first)
			if _, err := c.drainUntilClose(); err == nil {
				t.Fatalf("%s: not closed", first)
			}
		}
		for _, first := range []string{"deny-text", "", "tab\tuid"} {
			c := ts.dial("proto=text")
			c.send(first)
			if _, err := c.drainUntilClose(); err == nil {
				t.Fatalf("text %q: not closed", first)
			}
		}
		waitStats(t, ts.hub, "only ok left", func(s hub.Stats) bool {
			return s.Connections == 1 && s.Pending == 0 && s.UIDs == 1
		})
		wantReceipt(t, "send to ok", ts.hub.SendToUID("ok", msg(`1`)), 1, 0)
		ok.readMessage(1, `1`)
		if n := ts.hub.Online("deny-me"); n != 0 {
			t.Fatalf("a refused uid is online")
		}
	})
}

func TestPerUIDConnectionCap(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{MaxConnectionsPerUID: 2})
		a1, a2 := ts.jsonUser("a"), ts.textUser("a")

		// Over the cap at the upgrade: an error frame, then 4003.
		third := ts.dial("uid=a")
		if f := third.readType("error"); f.Code != "too_many_connections" {
			t.Fatalf("third connection: %+v", f)
		}
		third.expectClose(hub.CloseTooManyConnections)
		ts.dial("proto=text&uid=a").expectClose(hub.CloseTooManyConnections)
		// Over the cap with a login frame: refused too (what it is told is
		// TestLoginRefused's business).
		byFrame := ts.dial("")
		byFrame.send(`{"type":"login","uid":"a"}`)
		if _, err := byFrame.drainUntilClose(); err == nil {
			t.Fatal("not closed")
		}

		// The two first connections are untouched, and another uid is not
		// limited by a's count.
		if n := ts.hub.Online("a"); n != 2 {
			t.Fatalf("Online(a) = %d after refusals", n)
		}
		ts.jsonUser("b")
		wantReceipt(t, "send to a", ts.hub.SendToUID("a", msg(`"still here"`)), 2, 0)
		a1.readMessage(1, `"still here"`)
		a2.expectText("still here")
		waitStats(t, ts.hub, "3 connections, none pending", func(s hub.Stats) bool {
			return s.Connections == 3 && s.Pending == 0
		})

		// A freed slot can be taken again.
		a2.ws.Close()
		eventually(t, "a down to one connection", func() bool { return ts.hub.Online("a") == 1 })
		ts.jsonUser("a")
		if n := ts.hub.Online("a"); n != 2 {
			t.Fatalf("Online(a) = %d", n)
		}
	})
}

// TestClosingOneConnectionKeepsTheOthers is the recipe's bug, not copied: a
// uid's older connection closing must not unbind its newer one.
func TestClosingOneConnectionKeepsTheOthers(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{})
		old := ts.textUser("u")
		newer := ts.textUser("u")
		newest := ts.jsonUser("u")
		old.ws.Close()
		eventually(t, "two connections left", func() bool { return ts.hub.Online("u") == 2 })
		wantReceipt(t, "send after the old one closed", ts.hub.SendToUID("u", msg(`"m"`)), 2, 0)
		newer.expectText("m")
		newest.readMessage(1, `"m"`)

		// A clean close (close frame) does the same.
		if err := newest.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(guard)); err != nil {
			t.Fatal(err)
		}
		waitStats(t, ts.hub, "one connection left", func(s hub.Stats) bool { return s.UIDs == 1 && s.Connections == 1 })
		wantReceipt(t, "send to the last one", ts.hub.SendToUID("u", msg(`"n"`)), 1, 0)
		newer.expectText("n")
	})
}

func TestTextClientPublish(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{AllowClientPublish: true})
		alice := ts.textUser("alice")
		bob := ts.textUser("bob")
		bobJSON := ts.jsonUser("bob")

		// Split at the first colon only.
		alice.send("bob:hello:world")
		bob.expectText("hello:world")
		f := bobJSON.readMessage(1, `"hello:world"`)
		if f.From != "alice" {
			t.Fatalf("from = %q", f.From)
		}
		alice.send("all:to everyone")
		alice.expectText("to everyone") // the sender too
		bob.expectText("to everyone")
		bobJSON.readMessage(2, `"to everyone"`)

		// Ignored: no colon, an offline uid; the sender stays connected.
		alice.send("no colon here")
		alice.send("nobody:hello")
		alice.send("bob:after")
		bob.expectText("after")
	})
}

func TestClientPublishForbidden(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	alice := ts.textUser("alice")
	bob := ts.textUser("bob")
	aliceJSON := ts.jsonUser("alice")
	alice.send("bob:should be ignored")
	alice.send("all:also ignored")
	aliceJSON.sendJSON(map[string]any{"type": "send", "id": 1, "to": "bob", "data": "x"})
	if f := aliceJSON.readType("error"); f.Code != "publish_forbidden" || string(f.ID) != "1" {
		t.Fatalf("json send without allow_client_publish: %+v", f)
	}
	// Bob's next frame is this push: nothing came from alice.
	ts.hub.SendToUID("bob", msg(`"from the api"`))
	bob.expectText("from the api")
	ts.hub.SendToUID("alice", msg(`"still connected"`))
	alice.expectText("still connected")
}

func TestJSONClientFrames(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{AllowClientPublish: true, AllowClientGroups: true})
		a := ts.jsonUser("a")
		b := ts.jsonUser("b")

		a.sendJSON(map[string]any{"type": "join", "id": 1, "group": "room"})
		if f := a.readType("joined"); f.Group != "room" || string(f.ID) != "1" {
			t.Fatalf("joined %+v", f)
		}
		b.sendJSON(map[string]any{"type": "join", "group": "room"})
		b.readType("joined")

		a.sendJSON(map[string]any{"type": "send", "id": "s1", "group": "room", "data": map[string]int{"n": 1}})
		// The sender is a member: its message comes before the receipt,
		// since the push is queued before the answer.
		if f := a.readMessage(1, `{"n":1}`); f.From != "a" || f.Group != "room" {
			t.Fatalf("group message %+v", f)
		}
		r := a.readType("sent")
		if string(r.ID) != `"s1"` || r.Delivered == nil || *r.Delivered != 2 || r.Dropped == nil || *r.Dropped != 0 {
			t.Fatalf("sent %+v", r)
		}
		b.readMessage(1, `{"n":1}`)

		a.sendJSON(map[string]any{"type": "send", "to": "b", "data": "direct"})
		b.readMessage(2, `"direct"`)
		a.sendJSON(map[string]any{"type": "send", "all": true, "data": "all", "id": 2})
		a.readMessage(2, `"all"`)
		if r := a.readType("sent"); *r.Delivered != 2 {
			t.Fatalf("sent to all %+v", r)
		}
		b.readMessage(3, `"all"`)

		a.sendJSON(map[string]any{"type": "leave", "id": 3, "group": "room"})
		if f := a.readType("left"); f.Group != "room" {
			t.Fatalf("left %+v", f)
		}
		if uids, _ := ts.hub.UIDs("room", "", 0); len(uids) != 1 || uids[0] != "b" {
			t.Fatalf("room members after a left: %v", uids)
		}

		errorsWanted := []struct {
			frame string
			code  string
		}{
			{`not json`, "bad_frame"},
			{`[1,2]`, "bad_frame"},
			{`{"id":4}`, "bad_frame"},
			{`{"type":"dance","id":5}`, "unknown_type"},
			{`{"type":"send","id":6,"data":1}`, "bad_target"},
			{`{"type":"send","id":7,"to":"b","all":true,"data":1}`, "bad_target"},
			{`{"type":"send","id":8,"to":"b"}`, "bad_frame"},
			{`{"type":"join","id":9,"group":""}`, "invalid_group"},
			{`{"type":"join","id":10,"group":"a\u0000b"}`, "invalid_group"},
			{`{"type":"ack","id":11}`, "bad_frame"},
		}
		for _, e := range errorsWanted {
			a.send(e.frame)
			f := a.readType("error")
			if f.Code != e.code {
				t.Errorf("frame %s: error %q (%s), want %q", e.frame, f.Code, f.Message, e.code)
			}
		}
		// None of them closed the connection.
		ts.hub.SendToUID("a", msg(`"alive"`))
		a.readMessage(3, `"alive"`)
	})
}

func TestAuthTimeout(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{AuthTimeout: 100 * time.Millisecond})
		early := ts.jsonUser("early") // logged in at the upgrade: no race with the 100 ms
		silent := ts.dial("")
		silentText := ts.dial("proto=text")
		silent.expectClose(hub.CloseAuthTimeout)
		silentText.expectClose(hub.CloseAuthTimeout)
		waitStats(t, ts.hub, "no pending connection", func(s hub.Stats) bool { return s.Pending == 0 })
		// The connection that logged in, opened before the silent ones,
		// is past its auth timeout too and stays.
		wantReceipt(t, "send to the logged-in one", ts.hub.SendToUID("early", msg(`1`)), 1, 0)
		early.readMessage(1, `1`)
	})
}

// TestPingKeepsAReadingClient: a client that reads (so answers pings) lives
// through many ping intervals.
func TestPingKeepsAReadingClient(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		// Pongs have a generous second to come back (the machine may be
		// busy). After a ping the hub looks again when the pong is due, so
		// pings come about every pong_timeout: three of them outlast
		// ping_interval + pong_timeout, and only the pongs keep the
		// connection open.
		ts := newServer(hub.Settings{PingInterval: 50 * time.Millisecond, PongTimeout: time.Second})
		c := ts.jsonUser("reader")
		var pings atomic.Int32
		c.ws.SetPingHandler(func(data string) error {
			pings.Add(1)
			return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(guard))
		})
		frames := make(chan frame, 1)
		errc := make(chan error, 1)
		go func() {
			f, err := c.nextFrame() // answers pings while it waits
			if err != nil {
				errc <- err
				return
			}
			frames <- f
		}()
		eventually(t, "3 pings", func() bool {
			select {
			case err := <-errc:
				t.Fatalf("the reading client was closed: %v", err)
			default:
			}
			return pings.Load() >= 3
		})
		wantReceipt(t, "send to the reading client", ts.hub.SendToUID("reader", msg(`"alive"`)), 1, 0)
		select {
		case f := <-frames:
			if f.Seq != 1 || string(f.Data) != `"alive"` {
				t.Fatalf("got %+v", f)
			}
		case err := <-errc:
			t.Fatal(err)
		case <-time.After(guard):
			t.Fatal("no message")
		}
	})
}

// TestPingTimeout: a client that never reads never answers a ping, and is
// closed with 4006.
func TestPingTimeout(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{PingInterval: 50 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
		deaf := ts.dial("uid=deaf")
		eventually(t, "deaf logged in", func() bool { return ts.hub.Online("deaf") == 1 })
		deaf.ws.SetPingHandler(func(string) error { return nil }) // only used once we read
		eventually(t, "the deaf client closed", func() bool { return ts.hub.Online("deaf") == 0 })
		got, err := deaf.drainUntilClose()
		if code, reason := closeOf(err); code != hub.ClosePingTimeout {
			t.Fatalf("the deaf client ended with %v (after %q), want 4006", err, got)
		} else if reason == "" {
			t.Fatal("no close reason")
		}
		if len(got) != 1 || !strings.Contains(got[0], `"welcome"`) {
			t.Fatalf("frames before the close: %q, want the welcome only", got)
		}
	})
}

func TestInvalidFramesClose(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{MaxMessageSize: 1024})
		cases := []struct {
			name  string
			query string
			mt    int
			data  []byte
			code  int
		}{
			{"invalid UTF-8 before login", "", websocket.TextMessage, []byte("\xff\xfe"), hub.CloseInvalidPayload},
			{"invalid UTF-8 after login", "uid=u1", websocket.TextMessage, []byte(`{"type":"ping","x":"` + "\xc3\x28" + `"}`), hub.CloseInvalidPayload},
			{"invalid UTF-8 text protocol", "proto=text&uid=u2", websocket.TextMessage, []byte("all:\xed\xa0\x80"), hub.CloseInvalidPayload},
			{"binary before login", "", websocket.BinaryMessage, []byte("uid"), hub.CloseUnsupportedData},
			{"binary after login", "uid=u3", websocket.BinaryMessage, []byte{1, 2, 3}, hub.CloseUnsupportedData},
			{"oversize before login", "", websocket.TextMessage, []byte(strings.Repeat("x", 1025)), hub.CloseMessageTooBig},
			{"oversize after login", "proto=text&uid=u4", websocket.TextMessage, []byte(strings.Repeat("x", 4096)), hub.CloseMessageTooBig},
		}
		for _, tc := range cases {
			c := ts.dial(tc.query)
			if strings.Contains(tc.query, "uid=") {
				c.readText() // the welcome
			}
			if err := c.ws.WriteMessage(tc.mt, tc.data); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if _, _, err := c.next(); closeCode(err) != tc.code {
				t.Errorf("%s: connection ended with %v, want close %d", tc.name, err, tc.code)
			}
		}
		// Exactly at the limit is fine.
		c := ts.jsonUser("limit")
		pad := strings.Repeat("p", 1024-len(`{"type":"ping","pad":""}`))
		c.send(`{"type":"ping","pad":"` + pad + `"}`)
		c.readType("pong")
		waitStats(t, ts.hub, "only the limit connection", func(s hub.Stats) bool {
			return s.Connections == 1 && s.Pending == 0
		})
	})
}

func TestRateLimit(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		// A bucket of 5 that refills once in 1000 s: the 6th frame is over.
		ts := newServer(hub.Settings{RateLimit: 0.001, RateBurst: 5})
		ts.jsonUser("flood").floodPast(5)
		eventually(t, "the flooder gone", func() bool { return ts.hub.Online("flood") == 0 })
	})
}

// TestSlowConsumer: a client that stops reading is cut off with 4004 when
// its queue overflows, while another connection gets every broadcast.
// Once it reads again, it finds every message up to the cut, in order,
// then the 4004.
func TestSlowConsumer(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{SendQueue: 8})
		slow := ts.dial("uid=slow&smallbuf")
		eventually(t, "slow logged in", func() bool { return ts.hub.Online("slow") == 1 })
		fast := ts.jsonUser("fast")
		pad := strings.Repeat("x", 4096)

		var cutAt, deepest int
		for i := 1; cutAt == 0; i++ {
			if i > 5000 { // 20 MB: far beyond the socket buffers
				t.Fatalf("no cut-off after %d broadcasts; stats %+v", i, ts.hub.Stats())
			}
			r := ts.hub.Broadcast(msg(fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, pad)))
			switch {
			case r.Delivered == 2 && r.Dropped == 0:
				if st := ts.hub.Stats(); st.SendQueued < st.SendQueueMax {
					t.Fatalf("stats: %d frames queued in all, %d in the longest queue", st.SendQueued, st.SendQueueMax)
				} else {
					deepest = max(deepest, st.SendQueueMax)
				}
			case r.Delivered == 1 && r.Dropped == 1:
				cutAt = i
			default:
				t.Fatalf("broadcast %d: receipt %+v", i, r)
			}
			// In step with the fast reader, so only the slow one backs up.
			f := fast.readType("message")
			if f.Seq != uint64(i) {
				t.Fatalf("fast reader got seq %d, want %d", f.Seq, i)
			}
		}

		// The slow client reads again: its messages in order, then 4004.
		got, err := slow.drainUntilClose()
		if code, _ := closeOf(err); code != hub.CloseSlowConsumer {
			t.Fatalf("slow client ended with %v after %d frames, want 4004", err, len(got))
		}
		if len(got) == 0 || !strings.Contains(got[0], `"welcome"`) {
			t.Fatalf("slow client's first frames: %.200q", got)
		}
		for i, raw := range got[1:] {
			var f frame
			if err := json.Unmarshal([]byte(raw), &f); err != nil || f.Type != "message" || f.Seq != uint64(i+1) {
				t.Fatalf("slow client's frame %d: %.100s, want message seq %d", i+1, raw, i+1)
			}
		}
		// How many it got before the cut depends on its socket buffers;
		// never the one that found the queue full, nor any after it.
		if n := len(got) - 1; n >= cutAt {
			t.Fatalf("slow client got %d messages, but was cut at %d", n, cutAt)
		}
		// The queue held its 8 frames (the welcome and 7 messages at
		// the least) before the cut.
		if cutAt < 8 {
			t.Fatalf("cut at broadcast %d, with a send queue of 8", cutAt)
		}
		// Stats saw the queue fill up to its bound before the cut.
		if deepest < 7 || deepest > 8 {
			t.Fatalf("the longest send queue in stats reached %d before the cut, want 7 or 8 (send_queue 8)", deepest)
		}

		st := waitStats(t, ts.hub, "the slow client gone", func(s hub.Stats) bool { return s.Connections == 1 })
		if st.SlowConsumers != 1 {
			t.Fatalf("slow consumers %d, want 1", st.SlowConsumers)
		}
		// The fast one goes on.
		for i := cutAt + 1; i <= cutAt+20; i++ {
			wantReceipt(t, "broadcast after the cut", ts.hub.Broadcast(msg(`0`)), 1, 0)
			fast.readMessage(uint64(i), `0`)
		}
	})
}

// TestConfigureReachesOpenConnections: new settings apply to connections
// opened before them.
func TestConfigureReachesOpenConnections(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{SendQueue: 1000})
		sender := ts.jsonUser("sender")
		receiver := ts.textUser("receiver")
		stuck := ts.dial("uid=stuck&smallbuf")
		eventually(t, "stuck logged in", func() bool { return ts.hub.Online("stuck") == 1 })

		// Client publishing is off: refused. Turned on: it works, on the
		// same connection.
		sender.sendJSON(map[string]any{"type": "send", "to": "receiver", "data": "refused"})
		sender.readType("error")
		ts.hub.Configure(hub.Settings{SendQueue: 1000, AllowClientPublish: true})
		sender.sendJSON(map[string]any{"type": "send", "to": "receiver", "data": "delivered"})
		receiver.expectText("delivered")

		// 300 frames of 16 KiB back up behind a client that does not read,
		// far more than its socket buffers hold: the queue of 1000 takes
		// them.
		pad := strings.Repeat("y", 16<<10)
		for i := 1; i <= 300; i++ {
			wantReceipt(t, fmt.Sprintf("push %d", i), ts.hub.SendToUID("stuck", msg(`"`+pad+`"`)), 1, 0)
		}
		// A queue of 10 does not.
		ts.hub.Configure(hub.Settings{SendQueue: 10, AllowClientPublish: true})
		wantReceipt(t, "push after lowering send_queue", ts.hub.SendToUID("stuck", msg(`"`+pad+`"`)), 0, 1)
		got, err := stuck.drainUntilClose()
		if code, _ := closeOf(err); code != hub.CloseSlowConsumer {
			t.Fatalf("stuck client ended with %v after %d frames, want 4004", err, len(got))
		}
		if len(got) > 301 {
			t.Fatalf("stuck client got %d frames", len(got))
		}
		if st := ts.hub.Stats(); st.SlowConsumers != 1 {
			t.Fatalf("slow consumers %d", st.SlowConsumers)
		}

		// Lowering max_connections_per_uid refuses the next login only.
		ts.textUser("many")
		ts.textUser("many")
		ts.hub.Configure(hub.Settings{MaxConnectionsPerUID: 1})
		ts.dial("proto=text&uid=many").expectClose(hub.CloseTooManyConnections)
		if n := ts.hub.Online("many"); n != 2 {
			t.Fatalf("Online(many) = %d: lowering the cap must not close open connections", n)
		}
		if got := ts.hub.Endpoint("", hub.Settings{}).Staged().SendQueue; got != hub.DefaultSettings.SendQueue {
			t.Fatalf("a zero SendQueue should mean the default, got %d", got)
		}
	})
}

// TestIdleConnectionsHoldNoGoroutine: with the reader push_hub gives it, the
// hub reads idle connections through its poller, not a goroutine each.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the readiness-driven reader is Linux-only")
	}
	const n = 50
	ts := newTestServer(t, hub.Settings{})
	ts.jsonUser("warm-up")
	base := runtime.NumGoroutine()
	conns := make([]*client, n)
	for i := range conns {
		conns[i] = ts.jsonUser(fmt.Sprint("idle-", i))
	}
	eventually(t, fmt.Sprintf("fewer than %d goroutines (%d before) with %d more idle connections", base+n/5, base, n), func() bool {
		return runtime.NumGoroutine() < base+n/5
	})
	// And they are still read: each answers a ping.
	for _, c := range conns {
		c.sendJSON(map[string]any{"type": "ping"})
	}
	for _, c := range conns {
		c.readType("pong")
	}
}
