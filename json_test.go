package pushhub_test

import (
	"net/http"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestJSONProtocol: login and welcome, per-uid sequence numbers, client
// publishing to a uid, everyone and a group with its receipts, ping/pong,
// and the sends it refuses; the other refusals: TestHostileInput.
func TestJSONProtocol(t *testing.T) {
	h := harness.Start(t, harness.OneHub("protocol json", "allow_client_publish", "allow_client_groups"))
	api := h.API()

	alice := harness.Dial(t, "alice", h.WS+"/ws", nil)
	// ping is answered before login too.
	alice.Send(`{"type":"ping","id":"early"}`)
	alice.Expect(`{"type":"pong","id":"early"}`)
	aliceW := alice.Login("alice")
	bob := harness.LoggedIn(t, h.WS+"/ws", "bob")
	alice2 := harness.Dial(t, "alice's second connection", h.WS+"/ws", nil)
	if w := alice2.Login("alice"); w.ConnID == aliceW.ConnID || w.Seq != 0 || aliceW.Seq != 0 {
		t.Fatalf("welcomes %s and %s: want seq 0 and two conn_ids", aliceW.Raw, w.Raw)
	}

	// Pushes to a uid carry increasing per-uid sequence numbers; any JSON
	// value travels as it is.
	api.Post(t, "/send", `{"uid":"alice","data":"m1"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	api.Post(t, "/send", `{"uid":"alice","data":{"n":2,"list":[1,2]}}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	for _, c := range []*harness.Conn{alice, alice2} {
		c.Expect(`{"type":"message","seq":1,"data":"m1"}`)
		c.Expect(`{"type":"message","seq":2,"data":{"n":2,"list":[1,2]}}`)
	}

	// A client sends to a uid; with an id it gets a receipt.
	bob.Send(`{"type":"send","id":1,"to":"alice","data":{"x":1}}`)
	bob.Expect(`{"type":"sent","id":1,"delivered":2,"dropped":0}`)
	alice.Expect(`{"type":"message","seq":3,"data":{"x":1},"from":"bob"}`)
	alice2.Expect(`{"type":"message","seq":3,"data":{"x":1},"from":"bob"}`)

	// To everyone, without an id: no receipt. Sequences are per uid.
	bob.Send(`{"type":"send","all":true,"data":"hey all"}`)
	alice.Expect(`{"type":"message","seq":4,"data":"hey all","from":"bob"}`)
	alice2.Expect(`{"type":"message","seq":4,"data":"hey all","from":"bob"}`)
	bob.Expect(`{"type":"message","seq":1,"data":"hey all","from":"bob"}`)

	// To a group.
	alice.Send(`{"type":"join","id":"j1","group":"team"}`)
	alice.Expect(`{"type":"joined","id":"j1","group":"team"}`)
	bob.Send(`{"type":"send","id":2,"group":"team","data":"to the team"}`)
	bob.Expect(`{"type":"sent","id":2,"delivered":2,"dropped":0}`)
	alice.Expect(`{"type":"message","seq":5,"data":"to the team","from":"bob","group":"team"}`)
	alice2.Expect(`{"type":"message","seq":5,"data":"to the team","from":"bob","group":"team"}`)

	// ping / pong, with any JSON id echoed.
	bob.Send(`{"type":"ping","id":{"k":[1]}}`)
	bob.Expect(`{"type":"pong","id":{"k":[1]}}`)
	bob.Send(`{"type":"ping"}`)
	bob.Expect(`{"type":"pong"}`)
	// Unknown fields are ignored.
	bob.Send(`{"type":"ping","id":7,"extra":true}`)
	bob.Expect(`{"type":"pong","id":7}`)

	// Sends and joins this endpoint refuses, keeping the connection.
	bob.Send(`{"type":"send","id":3,"data":1}`)
	bob.ExpectError("bad_target", "3")
	bob.Send(`{"type":"send","id":4,"to":"alice","all":true,"data":1}`)
	bob.ExpectError("bad_target", "4")
	bob.Send(`{"type":"send","id":5,"to":"alice"}`)
	bob.ExpectError("bad_frame", "5")
	bob.Send(`{"type":"join","id":6,"group":""}`)
	bob.ExpectError("invalid_group", "6")
	api.Post(t, "/send", `{"uid":"bob","data":"still here"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	bob.Expect(`{"type":"message","seq":2,"data":"still here"}`)
	// and nothing of them reached alice: her next frame is the next push.
	api.Post(t, "/send", `{"uid":"alice","data":"next"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	alice.Expect(`{"type":"message","seq":6,"data":"next"}`)
}

// TestGroups: groups through the API and through json frames; a group send
// reaches its members only; a group disappears with its last member, or
// when its last member goes offline; only an online uid joins.
func TestGroups(t *testing.T) {
	h := harness.Start(t, harness.OneHub("allow_client_groups"))
	api := h.API()
	alice := harness.LoggedIn(t, h.WS+"/ws", "alice")
	bob := harness.LoggedIn(t, h.WS+"/ws", "bob")
	carol := harness.LoggedIn(t, h.WS+"/ws", "carol")

	// alice joins through the API, bob through a frame.
	api.Post(t, "/join", `{"uid":"alice","group":"g1"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	bob.Send(`{"type":"join","id":1,"group":"g1"}`)
	bob.Expect(`{"type":"joined","id":1,"group":"g1"}`)
	api.Get(t, "/uids?group=g1").ExpectJSON(http.StatusOK, `{"group":"g1","uids":["alice","bob"]}`)
	if s := api.Stats(t); s.Groups != 1 || s.UIDs != 3 || s.Connections != 3 {
		t.Fatalf("stats %+v, want 1 group, 3 uids, 3 connections", s)
	}

	// A group send reaches the members only.
	api.Post(t, "/send", `{"group":"g1","data":"members"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	alice.Expect(`{"type":"message","seq":1,"data":"members","group":"g1"}`)
	bob.Expect(`{"type":"message","seq":1,"data":"members","group":"g1"}`)
	api.Post(t, "/send", `{"uid":"carol","data":"marker"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	carol.Expect(`{"type":"message","seq":1,"data":"marker"}`) // not the group's message

	// Leaving through the API, then through a frame.
	api.Post(t, "/leave", `{"uid":"alice","group":"g1"}`).ExpectJSON(http.StatusOK, `{"ok":true,"was_member":true}`)
	api.Post(t, "/leave", `{"uid":"alice","group":"g1"}`).ExpectJSON(http.StatusOK, `{"ok":true,"was_member":false}`)
	api.Get(t, "/uids?group=g1").ExpectJSON(http.StatusOK, `{"group":"g1","uids":["bob"]}`)
	api.Post(t, "/send", `{"group":"g1","data":"bob only"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	bob.Expect(`{"type":"message","seq":2,"data":"bob only","group":"g1"}`)
	bob.Send(`{"type":"leave","id":2,"group":"g1"}`)
	bob.Expect(`{"type":"left","id":2,"group":"g1"}`)

	// The group disappeared with its last member.
	api.Get(t, "/uids?group=g1").ExpectJSON(http.StatusOK, `{"group":"g1","uids":[]}`)
	if s := api.Stats(t); s.Groups != 0 {
		t.Fatalf("stats %+v, want 0 groups after the last member left", s)
	}
	api.Post(t, "/send", `{"group":"g1","data":"nobody"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(0, 0))

	// A group also disappears when its last member goes offline.
	api.Post(t, "/join", `{"uid":"carol","group":"g2"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	api.Get(t, "/uids?group=g2").ExpectJSON(http.StatusOK, `{"group":"g2","uids":["carol"]}`)
	carol.CloseNormally()
	api.WaitOnline(t, "carol", 0)
	api.Get(t, "/uids?group=g2").ExpectJSON(http.StatusOK, `{"group":"g2","uids":[]}`)
	if s := api.Stats(t); s.Groups != 0 || s.UIDs != 2 {
		t.Fatalf("stats %+v, want 0 groups and 2 uids after carol left", s)
	}

	// Only an online uid can join.
	api.Post(t, "/join", `{"uid":"carol","group":"g2"}`).ExpectError(http.StatusNotFound, "uid_offline")
}

// TestConnectionsPerUID: a uid holds several connections, up to
// max_connections_per_uid; one more is refused with 4003 (json: after an
// error frame too_many_connections); closing one never unbinds another.
func TestConnectionsPerUID(t *testing.T) {
	h := harness.Start(t, harness.BothProtocols("max_connections_per_uid 2"))
	api := h.API()

	// json
	phone := harness.Dial(t, "phone", h.WS+"/ws", nil)
	phone.Login("u")
	laptop := harness.Dial(t, "laptop", h.WS+"/ws", nil)
	laptop.Login("u")
	api.Get(t, "/online?uid=u").ExpectJSON(http.StatusOK, harness.OnlineJSON("u", 2))

	third := harness.Dial(t, "third", h.WS+"/ws", nil)
	third.Send(`{"type":"login","uid":"u"}`)
	third.ExpectError("too_many_connections", "")
	third.ExpectClose(4003)
	api.Get(t, "/online?uid=u").ExpectJSON(http.StatusOK, harness.OnlineJSON("u", 2))

	api.Post(t, "/send", `{"uid":"u","data":"both"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	phone.Expect(`{"type":"message","seq":1,"data":"both"}`)
	laptop.Expect(`{"type":"message","seq":1,"data":"both"}`)

	// Closing one connection leaves the other bound.
	phone.CloseNormally()
	api.WaitOnline(t, "u", 1)
	api.Post(t, "/send", `{"uid":"u","data":"laptop only"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	laptop.Expect(`{"type":"message","seq":2,"data":"laptop only"}`)

	// The freed place can be taken again; the newcomer is greeted with the
	// uid's current sequence.
	tablet := harness.Dial(t, "tablet", h.WS+"/ws", nil)
	if w := tablet.Login("u"); w.Seq != 2 {
		t.Fatalf("welcome %s, want the uid's current seq 2", w.Raw)
	}
	api.Get(t, "/online?uid=u").ExpectJSON(http.StatusOK, harness.OnlineJSON("u", 2))

	// text: the cap holds the same way; the recipe's protocol has no error
	// frames, only the close code.
	t1 := harness.LoggedInText(t, h.WS+"/text", "v")
	t2 := harness.LoggedInText(t, h.WS+"/text", "v")
	t3 := harness.Dial(t, "v (one too many)", h.WS+"/text", nil)
	t3.Send("v")
	t3.ExpectClose(4003)
	api.Get(t, "/online?uid=v").ExpectJSON(http.StatusOK, harness.OnlineJSON("v", 2))
	t1.CloseNormally()
	api.WaitOnline(t, "v", 1)
	api.Post(t, "/send", `{"uid":"v","data":"still bound"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	t2.Expect("still bound")
}
