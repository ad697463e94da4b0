package pushhub_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// TestAPICalls: every call of push_api with its exact answer, at the site's
// root and under handle_path /push/*.
func TestAPICalls(t *testing.T) {
	h := harness.InProcess(t)
	h.Load(`
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
	}
	push_hub /ws-text {
		hub {$HUB}
		protocol text
		auth first_message
	}
}

{$API_SITE} {
	handle_path /push/* {
		push_api {
			hub {$HUB}
		}
	}
	handle {
		push_api {
			hub {$HUB}
		}
	}
}`)
	api, push := h.API(), h.API().Under("/push")

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

	a1 := harness.Dial(t, "a (1)", h.WS+"/ws", nil)
	a1.Login("a")
	a2 := harness.Dial(t, "a (2, text)", h.WS+"/ws-text", nil)
	a2.LoginText("a")
	b := harness.Dial(t, "b", h.WS+"/ws", nil)
	b.Login("b")
	c := harness.Dial(t, "c", h.WS+"/ws", nil)
	c.Login("c")

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
	harness.Dial(t, "d", h.WS+"/ws", nil).Login("d")
	harness.Dial(t, "e", h.WS+"/ws", nil).Login("e")
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

// TestAPIRefusals: every refusal of push_api is a 4xx with a JSON error
// body (README's hostile-input table), and a client of the hub keeps
// receiving through all of them.
func TestAPIRefusals(t *testing.T) {
	const key = "api-key-0123456789"
	h := harness.InProcess(t)
	h.Load(`
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		max_uid_length 16
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
		key ` + key + `
		max_body_size 1KiB
	}
}`)
	api := h.API().WithKey(key)
	observer := harness.Dial(t, "observer", h.WS+"/ws", nil)
	observer.Login("observer")

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
			observer.ExpectMessage(data)
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
