package pushhub_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// TestE2EPushAPICalls: every call of push_api with its exact answer, at the
// site's root and under handle_path /push/*.
func TestE2EPushAPICalls(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_api
		auth first_message
	}
	push_hub /ws-text {
		hub e2e_api
		protocol text
		auth first_message
	}
}

http://localhost:%d {
	handle_path /push/* {
		push_api {
			hub e2e_api
		}
	}
	handle {
		push_api {
			hub e2e_api
		}
	}
}
`, wsPort, apiPort))

	for _, base := range []string{apiURL, apiURL + "/push"} {
		r := get(t, base+"/stats")
		if r.status != http.StatusOK || !strings.HasPrefix(r.body, `{"hub":"e2e_api",`) {
			t.Fatalf("GET %s/stats: HTTP %d %q", base, r.status, r.body)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("GET %s/stats: Cache-Control %q, want no-store", base, cc)
		}
	}
	if s := getStats(t, apiURL); s.Connections != 0 || s.UIDs != 0 || s.Groups != 0 || s.Pushes != 0 {
		t.Fatalf("a new hub's stats: %+v", s)
	}
	// HEAD is a GET.
	if r := do(t, http.MethodHead, apiURL+"/stats", ""); r.status != http.StatusOK {
		t.Fatalf("HEAD /stats: HTTP %d", r.status)
	}

	a1 := dial(t, "a (1)", wsURL+"/ws", nil)
	a1.loginJSON("uid", "a", "a", 0)
	a2 := dial(t, "a (2, text)", wsURL+"/ws-text", nil)
	a2.send("a")
	a2.expect("login success, your uid is a")
	b := dial(t, "b", wsURL+"/ws", nil)
	b.loginJSON("uid", "b", "b", 0)
	c := dial(t, "c", wsURL+"/ws", nil)
	c.loginJSON("uid", "c", "c", 0)

	// online
	get(t, apiURL+"/online?uid=a").expectJSON(t, http.StatusOK, online("a", 2))
	get(t, apiURL+"/push/online?uid=b").expectJSON(t, http.StatusOK, online("b", 1))
	get(t, apiURL+"/online?uid=nobody").expectJSON(t, http.StatusOK, online("nobody", 0))
	get(t, apiURL+"/online").expectAPIError(t, http.StatusBadRequest, "invalid_uid")

	// send: uid, uids (duplicates once, unknown ones ignored), group, all.
	post(t, apiURL+"/send", `{"uid":"a","data":"to a"}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	a1.expect(`{"type":"message","seq":1,"data":"to a"}`)
	a2.expect("to a")
	post(t, apiURL+"/push/send", `{"uids":["a","b","a","ghost"],"data":{"k":[true,null]}}`).expectJSON(t, http.StatusOK, receipt(3, 0))
	a1.expect(`{"type":"message","seq":2,"data":{"k":[true,null]}}`)
	a2.expect(`{"k":[true,null]}`)
	b.expect(`{"type":"message","seq":1,"data":{"k":[true,null]}}`)
	post(t, apiURL+"/send", `{"uid":"ghost","data":1}`).expectJSON(t, http.StatusOK, receipt(0, 0))

	post(t, apiURL+"/join", `{"uid":"b","group":"g"}`).expectJSON(t, http.StatusOK, `{"ok":true}`)
	post(t, apiURL+"/push/join", `{"uid":"c","group":"g"}`).expectJSON(t, http.StatusOK, `{"ok":true}`)
	post(t, apiURL+"/send", `{"group":"g","data":3.5}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	b.expect(`{"type":"message","seq":2,"data":3.5,"group":"g"}`)
	c.expect(`{"type":"message","seq":1,"data":3.5,"group":"g"}`)
	post(t, apiURL+"/push/leave", `{"uid":"c","group":"g"}`).expectJSON(t, http.StatusOK, `{"ok":true,"was_member":true}`)
	post(t, apiURL+"/send", `{"group":"g","data":"b only"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	b.expect(`{"type":"message","seq":3,"data":"b only","group":"g"}`)

	post(t, apiURL+"/send", `{"all":true,"data":"everyone"}`).expectJSON(t, http.StatusOK, receipt(4, 0))
	a1.expect(`{"type":"message","seq":3,"data":"everyone"}`)
	a2.expect("everyone")
	b.expect(`{"type":"message","seq":4,"data":"everyone"}`)
	c.expect(`{"type":"message","seq":2,"data":"everyone"}`)

	// uids, paged.
	d := dial(t, "d", wsURL+"/ws", nil)
	d.loginJSON("uid", "d", "d", 0)
	e := dial(t, "e", wsURL+"/ws", nil)
	e.loginJSON("uid", "e", "e", 0)
	get(t, apiURL+"/uids").expectJSON(t, http.StatusOK, `{"uids":["a","b","c","d","e"]}`)
	get(t, apiURL+"/uids?limit=2").expectJSON(t, http.StatusOK, `{"next":"b","uids":["a","b"]}`)
	get(t, apiURL+"/push/uids?limit=2&after=b").expectJSON(t, http.StatusOK, `{"next":"d","uids":["c","d"]}`)
	get(t, apiURL+"/uids?limit=2&after=d").expectJSON(t, http.StatusOK, `{"uids":["e"]}`)
	get(t, apiURL+"/uids?after=e").expectJSON(t, http.StatusOK, `{"uids":[]}`)
	get(t, apiURL+"/uids?group=g").expectJSON(t, http.StatusOK, `{"group":"g","uids":["b"]}`)
	get(t, apiURL+"/uids?limit=0").expectAPIError(t, http.StatusBadRequest, "bad_limit")
	get(t, apiURL+"/uids?limit=ten").expectAPIError(t, http.StatusBadRequest, "bad_limit")

	// stats
	s := getStats(t, apiURL)
	if s.Hub != "e2e_api" || s.Connections != 6 || s.UIDs != 5 || s.Groups != 1 || s.Pending != 0 ||
		s.Pushes != 6 || s.MessagesOut != 12 || s.SlowConsumers != 0 {
		t.Fatalf("stats %+v, want hub e2e_api, 6 connections, 5 uids, 1 group, 6 pushes, 12 messages out", s)
	}

	// kick: the kicked connections get an error frame (json) and close 4005
	// with the reason; the others stay.
	post(t, apiURL+"/kick", `{"uid":"a","reason":"account closed"}`).expectJSON(t, http.StatusOK, `{"closed":2,"uid":"a"}`)
	a1.expectError("kicked", "")
	if reason := a1.expectClose(4005); reason != "account closed" {
		t.Fatalf("kick close reason %q, want %q", reason, "account closed")
	}
	if reason := a2.expectClose(4005); reason != "account closed" {
		t.Fatalf("kick close reason %q, want %q", reason, "account closed")
	}
	post(t, apiURL+"/push/kick", `{"uid":"ghost"}`).expectJSON(t, http.StatusOK, `{"closed":0,"uid":"ghost"}`)
	waitOnline(t, apiURL, "a", 0)
	post(t, apiURL+"/send", `{"all":true,"data":"after the kick"}`).expectJSON(t, http.StatusOK, receipt(4, 0))
	b.expect(`{"type":"message","seq":5,"data":"after the kick"}`)
}

// TestE2EPushAPIErrors: every refusal is a 4xx with a JSON error body.
func TestE2EPushAPIErrors(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_api {
		hub e2e_api_errors
		max_body_size 1KiB
	}
}
`, apiPort))
	send := apiURL + "/send"
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"malformed JSON", `{"uid":"a","data":`, 400, "bad_json"},
		{"not an object", `["uid","a"]`, 400, "bad_json"},
		{"empty body", ``, 400, "bad_json"},
		{"trailing data", `{"uid":"a","data":1} {}`, 400, "bad_json"},
		{"unknown field", `{"uid":"a","data":1,"priority":"high"}`, 400, "bad_json"},
		{"missing target", `{"data":1}`, 400, "bad_target"},
		{"two targets", `{"uid":"a","all":true,"data":1}`, 400, "bad_target"},
		{"empty uids", `{"uids":[],"data":1}`, 400, "bad_target"},
		{"missing data", `{"uid":"a"}`, 400, "missing_data"},
		{"null data", `{"uid":"a","data":null}`, 400, "missing_data"},
		{"control character in the uid", `{"uid":"a\u0000","data":1}`, 400, "invalid_uid"},
		{"oversized body", `{"uid":"a","data":"` + padding(2048) + `"}`, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			post(t, send, tc.body).expectAPIError(t, tc.status, tc.code)
		})
	}
	post(t, apiURL+"/join", `{"uid":"a"}`).expectAPIError(t, http.StatusBadRequest, "invalid_group")
	post(t, apiURL+"/kick", `{"reason":"x"}`).expectAPIError(t, http.StatusBadRequest, "invalid_uid")

	// Wrong method: 405 with Allow.
	r := get(t, send)
	r.expectAPIError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	if allow := r.header.Get("Allow"); allow != "POST" {
		t.Fatalf("GET /send: Allow %q, want POST", allow)
	}
	r = post(t, apiURL+"/stats", `{}`)
	r.expectAPIError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	if allow := r.header.Get("Allow"); allow != "GET" {
		t.Fatalf("POST /stats: Allow %q, want GET", allow)
	}
	r = do(t, http.MethodDelete, apiURL+"/kick", "")
	r.expectAPIError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	if allow := r.header.Get("Allow"); allow != "POST" {
		t.Fatalf("DELETE /kick: Allow %q, want POST", allow)
	}

	// Unknown call: 404.
	post(t, apiURL+"/publish", `{"uid":"a","data":1}`).expectAPIError(t, http.StatusNotFound, "unknown_call")
	get(t, apiURL+"/").expectAPIError(t, http.StatusNotFound, "unknown_call")

	// A body just under the cap is read.
	body := `{"uid":"a","data":"` + padding(1024-len(`{"uid":"a","data":""}`)) + `"}`
	post(t, send, body).expectJSON(t, http.StatusOK, receipt(0, 0))
}

// TestE2EPushAPIKey: with a key, callers need Authorization: Bearer <key>.
func TestE2EPushAPIKey(t *testing.T) {
	t.Setenv("PUSH_API_KEY", "e2e-api-key")
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_api {
		hub e2e_api_key
		key {env.PUSH_API_KEY}
	}
}
`, apiPort))
	for _, tc := range []struct {
		name    string
		headers []string
	}{
		{"no header", nil},
		{"wrong key", []string{"Authorization", "Bearer not-the-key"}},
		{"key as basic", []string{"Authorization", "Basic e2e-api-key"}},
		{"bare key", []string{"Authorization", "e2e-api-key"}},
	} {
		r := get(t, apiURL+"/stats", tc.headers...)
		r.expectAPIError(t, http.StatusUnauthorized, "unauthorized")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s: WWW-Authenticate %q, want a Bearer challenge", tc.name, r.header.Get("WWW-Authenticate"))
		}
		post(t, apiURL+"/send", `{"all":true,"data":1}`, tc.headers...).expectAPIError(t, http.StatusUnauthorized, "unauthorized")
	}
	// Authentication comes first: an unknown call without the key is 401.
	get(t, apiURL+"/nope").expectAPIError(t, http.StatusUnauthorized, "unauthorized")

	auth := []string{"Authorization", "Bearer e2e-api-key"}
	post(t, apiURL+"/send", `{"all":true,"data":1}`, auth...).expectJSON(t, http.StatusOK, receipt(0, 0))
	get(t, apiURL+"/online?uid=x", "Authorization", "bearer e2e-api-key").expectJSON(t, http.StatusOK, online("x", 0))
}

// TestE2EPushAPINonLoopback: with no key, push_api serves loopback callers
// only; a caller from another address gets 403. With a key, it is served.
func TestE2EPushAPINonLoopback(t *testing.T) {
	ip := nonLoopbackIPv4()
	if ip == nil {
		testenv.Missing(t, "a non-loopback IPv4 address on this machine",
			"the test binds a site to it to call push_api from a non-loopback address")
	}
	t.Setenv("PUSH_API_KEY", "e2e-api-key")
	loadConfig(t, fmt.Sprintf(`http://%[1]s:%[2]d {
	bind %[1]s
	push_api {
		hub e2e_api_ext
	}
}

http://%[1]s:%[3]d {
	bind %[1]s
	push_api {
		hub e2e_api_ext
		key {env.PUSH_API_KEY}
	}
}

http://localhost:%[4]d {
	push_api {
		hub e2e_api_ext
	}
}
`, ip, extPort, extKeyed, apiPort))
	ext := "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(extPort))
	extKey := "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(extKeyed))

	get(t, ext+"/stats").expectAPIError(t, http.StatusForbidden, "forbidden")
	post(t, ext+"/send", `{"all":true,"data":1}`).expectAPIError(t, http.StatusForbidden, "forbidden")
	get(t, extKey+"/online?uid=x", "Authorization", "Bearer e2e-api-key").expectJSON(t, http.StatusOK, online("x", 0))
	get(t, extKey+"/online?uid=x").expectAPIError(t, http.StatusUnauthorized, "unauthorized")
	get(t, apiURL+"/online?uid=x").expectJSON(t, http.StatusOK, online("x", 0))
}
