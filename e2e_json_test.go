package pushhub_test

import (
	"fmt"
	"net/http"
	"testing"
)

// TestE2EConnectionsPerUID: a uid holds several connections, up to
// max_connections_per_uid; one more is refused with 4003 (json: after an
// error frame too_many_connections); closing one never unbinds another.
func TestE2EConnectionsPerUID(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_cap
		auth first_message
		max_connections_per_uid 2
	}
	push_hub /ws-text {
		hub e2e_cap_text
		protocol text
		auth first_message
		max_connections_per_uid 2
	}
}

http://localhost:%d {
	handle_path /text/* {
		push_api {
			hub e2e_cap_text
		}
	}
	handle {
		push_api {
			hub e2e_cap
		}
	}
}
`, wsPort, apiPort))

	// json
	phone := dial(t, "phone", wsURL+"/ws", nil)
	phoneID := phone.loginJSON("uid", "u", "u", 0)
	laptop := dial(t, "laptop", wsURL+"/ws", nil)
	laptopID := laptop.loginJSON("uid", "u", "u", 0)
	if phoneID == laptopID {
		t.Fatalf("two connections share conn_id %q", phoneID)
	}
	get(t, apiURL+"/online?uid=u").expectJSON(t, http.StatusOK, online("u", 2))

	third := dial(t, "third", wsURL+"/ws", nil)
	third.send(`{"type":"login","uid":"u"}`)
	third.expectError("too_many_connections", "")
	third.expectClose(4003)
	get(t, apiURL+"/online?uid=u").expectJSON(t, http.StatusOK, online("u", 2))

	post(t, apiURL+"/send", `{"uid":"u","data":"both"}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	phone.expect(`{"type":"message","seq":1,"data":"both"}`)
	laptop.expect(`{"type":"message","seq":1,"data":"both"}`)

	// Closing one connection leaves the other bound.
	phone.closeNormally()
	waitOnline(t, apiURL, "u", 1)
	post(t, apiURL+"/send", `{"uid":"u","data":"laptop only"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	laptop.expect(`{"type":"message","seq":2,"data":"laptop only"}`)

	// The freed place can be taken again; the newcomer is greeted with the
	// uid's current sequence.
	tablet := dial(t, "tablet", wsURL+"/ws", nil)
	tablet.loginJSON("uid", "u", "u", 2)
	get(t, apiURL+"/online?uid=u").expectJSON(t, http.StatusOK, online("u", 2))

	// text: the cap holds the same way; the recipe's protocol has no error
	// frames, only the close code.
	t1 := dial(t, "text 1", wsURL+"/ws-text", nil)
	t1.send("v")
	t1.expect("login success, your uid is v")
	t2 := dial(t, "text 2", wsURL+"/ws-text", nil)
	t2.send("v")
	t2.expect("login success, your uid is v")
	t3 := dial(t, "text 3", wsURL+"/ws-text", nil)
	t3.send("v")
	t3.expectClose(4003)
	get(t, apiURL+"/text/online?uid=v").expectJSON(t, http.StatusOK, online("v", 2))
	t1.closeNormally()
	waitOnline(t, apiURL+"/text", "v", 1)
	post(t, apiURL+"/text/send", `{"uid":"v","data":"still bound"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	t2.expect("still bound")
}

// TestE2EJSONProtocol: login and welcome, per-uid sequence numbers, client
// publishing to a uid, everyone and a group, ping/pong, and every error.
func TestE2EJSONProtocol(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_json
		protocol json
		auth first_message
		allow_client_publish
		allow_client_groups
	}
	push_hub /ws-locked {
		hub e2e_json_locked
		auth first_message
	}
}

http://localhost:%d {
	push_api {
		hub e2e_json
	}
}
`, wsPort, apiPort))

	alice := dial(t, "alice", wsURL+"/ws", nil)
	// ping is answered before login too.
	alice.send(`{"type":"ping","id":"early"}`)
	alice.expect(`{"type":"pong","id":"early"}`)
	aliceID := alice.loginJSON("uid", "alice", "alice", 0)
	bob := dial(t, "bob", wsURL+"/ws", nil)
	bob.loginJSON("uid", "bob", "bob", 0)
	alice2 := dial(t, "alice's second connection", wsURL+"/ws", nil)
	if id := alice2.loginJSON("uid", "alice", "alice", 0); id == aliceID {
		t.Fatalf("two connections share conn_id %q", id)
	}

	// Pushes to a uid carry increasing per-uid sequence numbers; any JSON
	// value travels as it is.
	post(t, apiURL+"/send", `{"uid":"alice","data":"m1"}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	post(t, apiURL+"/send", `{"uid":"alice","data":{"n":2,"list":[1,2]}}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	for _, c := range []*wsConn{alice, alice2} {
		c.expect(`{"type":"message","seq":1,"data":"m1"}`)
		c.expect(`{"type":"message","seq":2,"data":{"n":2,"list":[1,2]}}`)
	}

	// A client sends to a uid; with an id it gets a receipt.
	bob.send(`{"type":"send","id":1,"to":"alice","data":{"x":1}}`)
	bob.expect(`{"type":"sent","id":1,"delivered":2,"dropped":0}`)
	alice.expect(`{"type":"message","seq":3,"data":{"x":1},"from":"bob"}`)
	alice2.expect(`{"type":"message","seq":3,"data":{"x":1},"from":"bob"}`)

	// To everyone, without an id: no receipt. Sequences are per uid.
	bob.send(`{"type":"send","all":true,"data":"hey all"}`)
	alice.expect(`{"type":"message","seq":4,"data":"hey all","from":"bob"}`)
	alice2.expect(`{"type":"message","seq":4,"data":"hey all","from":"bob"}`)
	bob.expect(`{"type":"message","seq":1,"data":"hey all","from":"bob"}`)

	// To a group.
	alice.send(`{"type":"join","id":"j1","group":"team"}`)
	alice.expect(`{"type":"joined","id":"j1","group":"team"}`)
	bob.send(`{"type":"send","id":2,"group":"team","data":"to the team"}`)
	bob.expect(`{"type":"sent","id":2,"delivered":2,"dropped":0}`)
	alice.expect(`{"type":"message","seq":5,"data":"to the team","from":"bob","group":"team"}`)
	alice2.expect(`{"type":"message","seq":5,"data":"to the team","from":"bob","group":"team"}`)

	// ping / pong, with any JSON id echoed.
	bob.send(`{"type":"ping","id":7}`)
	bob.expect(`{"type":"pong","id":7}`)
	bob.send(`{"type":"ping"}`)
	bob.expect(`{"type":"pong"}`)

	// Errors that keep the connection open.
	bob.send(`this is not json`)
	bob.expectError("bad_frame", "")
	bob.send(`{"id":3}`)
	bob.expectError("bad_frame", "3")
	bob.send(`{"type":"subscribe","id":4}`)
	bob.expectError("unknown_type", "4")
	bob.send(`{"type":"login","id":5,"uid":"mallory"}`)
	bob.expectError("already_logged_in", "5")
	bob.send(`{"type":"send","id":6,"to":"alice","all":true,"data":1}`)
	bob.expectError("bad_target", "6")
	bob.send(`{"type":"send","id":8,"to":"alice"}`)
	bob.expectError("bad_frame", "8")
	// ... and bob is still bob, and still connected.
	post(t, apiURL+"/send", `{"uid":"bob","data":"still here"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	bob.expect(`{"type":"message","seq":2,"data":"still here"}`)
	get(t, apiURL+"/online?uid=mallory").expectJSON(t, http.StatusOK, online("mallory", 0))

	// A first frame that is not a login: login_required, then 4001.
	eve := dial(t, "eve", wsURL+"/ws", nil)
	eve.send(`{"type":"send","to":"alice","data":"spoofed"}`)
	eve.expectError("login_required", "")
	eve.expectClose(4001)
	// An invalid uid is refused the same way.
	ctl := dial(t, "control-character uid", wsURL+"/ws", nil)
	ctl.send(`{"type":"login","uid":"a\u0007b"}`)
	ctl.expectError("invalid_uid", "")
	ctl.expectClose(4001)
	// alice got nothing from eve: her next frame is the next push.
	post(t, apiURL+"/send", `{"uid":"alice","data":"next"}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	alice.expect(`{"type":"message","seq":6,"data":"next"}`)

	// Where clients may not publish nor manage groups.
	locked := dial(t, "locked", wsURL+"/ws-locked", nil)
	locked.loginJSON("uid", "carol", "carol", 0)
	locked.send(`{"type":"send","id":1,"all":true,"data":"x"}`)
	locked.expectError("publish_forbidden", "1")
	locked.send(`{"type":"join","id":2,"group":"g"}`)
	locked.expectError("groups_forbidden", "2")
	locked.send(`{"type":"ping","id":3}`)
	locked.expect(`{"type":"pong","id":3}`)
}

// TestE2EGroups: groups through the API and through json frames; a group
// send reaches its members only; a group disappears with its last member.
func TestE2EGroups(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_groups
		auth first_message
		allow_client_groups
	}
}

http://localhost:%d {
	push_api {
		hub e2e_groups
	}
}
`, wsPort, apiPort))

	alice := dial(t, "alice", wsURL+"/ws", nil)
	alice.loginJSON("uid", "alice", "alice", 0)
	bob := dial(t, "bob", wsURL+"/ws", nil)
	bob.loginJSON("uid", "bob", "bob", 0)
	carol := dial(t, "carol", wsURL+"/ws", nil)
	carol.loginJSON("uid", "carol", "carol", 0)

	// alice joins through the API, bob through a frame.
	post(t, apiURL+"/join", `{"uid":"alice","group":"g1"}`).expectJSON(t, http.StatusOK, `{"ok":true}`)
	bob.send(`{"type":"join","id":1,"group":"g1"}`)
	bob.expect(`{"type":"joined","id":1,"group":"g1"}`)
	get(t, apiURL+"/uids?group=g1").expectJSON(t, http.StatusOK, `{"group":"g1","uids":["alice","bob"]}`)
	if s := getStats(t, apiURL); s.Groups != 1 || s.UIDs != 3 || s.Connections != 3 {
		t.Fatalf("stats %+v, want 1 group, 3 uids, 3 connections", s)
	}

	// A group send reaches the members only.
	post(t, apiURL+"/send", `{"group":"g1","data":"members"}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	alice.expect(`{"type":"message","seq":1,"data":"members","group":"g1"}`)
	bob.expect(`{"type":"message","seq":1,"data":"members","group":"g1"}`)
	post(t, apiURL+"/send", `{"uid":"carol","data":"marker"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	carol.expect(`{"type":"message","seq":1,"data":"marker"}`) // not the group's message

	// Leaving through the API, then through a frame.
	post(t, apiURL+"/leave", `{"uid":"alice","group":"g1"}`).expectJSON(t, http.StatusOK, `{"ok":true,"was_member":true}`)
	post(t, apiURL+"/leave", `{"uid":"alice","group":"g1"}`).expectJSON(t, http.StatusOK, `{"ok":true,"was_member":false}`)
	get(t, apiURL+"/uids?group=g1").expectJSON(t, http.StatusOK, `{"group":"g1","uids":["bob"]}`)
	post(t, apiURL+"/send", `{"group":"g1","data":"bob only"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	bob.expect(`{"type":"message","seq":2,"data":"bob only","group":"g1"}`)
	bob.send(`{"type":"leave","id":2,"group":"g1"}`)
	bob.expect(`{"type":"left","id":2,"group":"g1"}`)

	// The group disappeared with its last member.
	get(t, apiURL+"/uids?group=g1").expectJSON(t, http.StatusOK, `{"group":"g1","uids":[]}`)
	if s := getStats(t, apiURL); s.Groups != 0 {
		t.Fatalf("stats %+v, want 0 groups after the last member left", s)
	}
	post(t, apiURL+"/send", `{"group":"g1","data":"nobody"}`).expectJSON(t, http.StatusOK, receipt(0, 0))

	// A group also disappears when its last member goes offline.
	post(t, apiURL+"/join", `{"uid":"carol","group":"g2"}`).expectJSON(t, http.StatusOK, `{"ok":true}`)
	get(t, apiURL+"/uids?group=g2").expectJSON(t, http.StatusOK, `{"group":"g2","uids":["carol"]}`)
	carol.closeNormally()
	waitOnline(t, apiURL, "carol", 0)
	get(t, apiURL+"/uids?group=g2").expectJSON(t, http.StatusOK, `{"group":"g2","uids":[]}`)
	if s := getStats(t, apiURL); s.Groups != 0 || s.UIDs != 2 {
		t.Fatalf("stats %+v, want 0 groups and 2 uids after carol left", s)
	}

	// Only an online uid can join.
	post(t, apiURL+"/join", `{"uid":"carol","group":"g2"}`).expectAPIError(t, http.StatusNotFound, "uid_offline")
	post(t, apiURL+"/join", `{"uid":"alice","group":""}`).expectAPIError(t, http.StatusBadRequest, "invalid_group")
	alice.send(`{"type":"join","id":3,"group":""}`)
	alice.expectError("invalid_group", "3")
}
