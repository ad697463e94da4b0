package pushhub_test

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// reloadConfig is a hub with a json endpoint (settings: its directives
// after hub), more directives for the site, and the push API.
func reloadConfig(settings, extra string) string {
	return `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		` + settings + `
	}
	` + extra + `
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`
}

// TestReload: a config reload keeps every WebSocket open and bound, and
// group memberships, while the new config serves. (Removing the hub from
// the config: TestShutdownOnReload.)
func TestReload(t *testing.T) {
	h := harness.Start(t, reloadConfig("auth first_message\n\t\tsend_queue 8", ""))
	api, site := h.API(), harness.API{URL: h.HTTP}
	r1 := harness.Dial(t, "opened before the reload", h.WS+"/ws", nil)
	r1.Login("r")
	other := harness.LoggedIn(t, h.WS+"/ws", "o")
	api.Post(t, "/join", `{"uid":"o","group":"kept"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	if r := site.Get(t, "/extra"); r.Body == "the new route" {
		t.Fatal("the extra route answers before the reload")
	}

	// Reload with another send_queue and an extra route.
	h.Load(reloadConfig("auth first_message\n\t\tsend_queue 16", `respond /extra "the new route" 200`))
	if r := site.Get(t, "/extra"); r.Status != http.StatusOK || r.Body != "the new route" {
		t.Fatalf("GET /extra after the reload: HTTP %d %q: the new config is not serving", r.Status, r.Body)
	}
	api.Get(t, "/online?uid=r").ExpectJSON(http.StatusOK, harness.OnlineJSON("r", 1))
	api.Get(t, "/uids?group=kept").ExpectJSON(http.StatusOK, `{"group":"kept","uids":["o"]}`)
	api.Post(t, "/send", `{"uid":"r","data":"after the reload"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	r1.Expect(`{"type":"message","seq":1,"data":"after the reload"}`)
	api.Post(t, "/send", `{"group":"kept","data":"group kept"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	other.Expect(`{"type":"message","seq":1,"data":"group kept","group":"kept"}`)
	r1.StillOpen()
	r2 := harness.Dial(t, "opened after the reload", h.WS+"/ws", nil)
	if w := r2.Login("r"); w.Seq != 1 {
		t.Fatalf("welcome %s, want the uid's seq 1 kept across the reload", w.Raw)
	}
	api.Post(t, "/send", `{"uid":"r","data":"both"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	r1.Expect(`{"type":"message","seq":2,"data":"both"}`)
	r2.Expect(`{"type":"message","seq":2,"data":"both"}`)
}

// TestReloadThatFailsChangesNothing: a config that fails to load, refused
// by push_hub's provisioning or validation, by another module's
// provisioning after push_hub's, or by a port in use, is reported and
// leaves the running hub, its endpoints and its open connections exactly as
// they were. Each failing config turns client publishing off; after each
// failure, publishing still works on the connection that was open and on a
// new one, and group membership is kept. The same reload that succeeds
// does change the open connections.
func TestReloadThatFailsChangesNothing(t *testing.T) {
	const publish = "auth first_message\n\t\tallow_client_publish"
	h := harness.Start(t, reloadConfig(publish, ""))
	api := h.API()
	sender := harness.LoggedIn(t, h.WS+"/ws", "sender")
	receiver := harness.LoggedIn(t, h.WS+"/ws", "receiver")
	api.Post(t, "/join", `{"uid":"receiver","group":"kept"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)

	busy, err := net.Listen("tcp", ":"+strconv.Itoa(h.Spare(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	seq := uint64(0)
	// One connection of the running config lives through every failure, so
	// the cases run in turn in this test.
	for _, f := range []struct{ name, config, why string }{
		{"refused by push_hub's provisioning", reloadConfig("auth jwt too-short", ""), "short"},
		{"refused by push_hub's validation", reloadConfig("auth first_message\n\t\tmax_uid_length 5000", ""), "max_uid_length"},
		{"another module after push_hub fails", reloadConfig("auth first_message\n\t\tsend_queue 4", `reverse_proxy 127.0.0.1:9 {
		transport http {
			tls_client_auth /nonexistent/client.crt /nonexistent/client.key
		}
	}`), "client.crt"},
		{"a port in use", reloadConfig("auth first_message\n\t\tsend_queue 4", "") + `

http://localhost:` + strconv.Itoa(h.Spare(0)) + ` {
	respond "never served"
}`, "address already in use"},
	} {
		if err := h.LoadErr(f.config); err == nil || !strings.Contains(err.Error(), f.why) {
			t.Fatalf("%s: the load ended with %v, want it refused with an error mentioning %q", f.name, err, f.why)
		}
		// The open connection still may publish, with the queue it had.
		for i := range 6 {
			sender.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"receiver","data":%d}`, i, i))
			sender.Expect(fmt.Sprintf(`{"type":"sent","id":%d,"delivered":1,"dropped":0}`, i))
		}
		for i := range 6 {
			seq++
			receiver.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":%d,"from":"sender"}`, seq, i))
		}
		// So may a new connection, and the running config still serves.
		fresh := harness.LoggedIn(t, h.WS+"/ws", "fresh")
		fresh.Send(`{"type":"send","id":"f","to":"receiver","data":"from a new connection"}`)
		fresh.Expect(`{"type":"sent","id":"f","delivered":1,"dropped":0}`)
		seq++
		receiver.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":"from a new connection","from":"fresh"}`, seq))
		fresh.CloseNormally()
		api.Get(t, "/uids?group=kept").ExpectJSON(http.StatusOK, `{"group":"kept","uids":["receiver"]}`)
		api.Get(t, "/online?uid=sender").ExpectJSON(http.StatusOK, harness.OnlineJSON("sender", 1))
	}

	// The same reload that succeeds does change the open connections.
	h.Load(reloadConfig("auth first_message", ""))
	sender.Send(`{"type":"send","id":"after","to":"receiver","data":"refused"}`)
	sender.ExpectError("publish_forbidden", `"after"`)
}

// TestEndpointsThatShareAHubMustAgree: two endpoints of one hub with the
// same protocol and auth mode share their settings, so different settings
// are refused with an error that says why, and the running config stays.
func TestEndpointsThatShareAHubMustAgree(t *testing.T) {
	h := harness.Start(t, harness.OneHub())
	c := harness.LoggedIn(t, h.WS+"/ws", "a")
	err := h.LoadErr(`
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		send_queue 10
	}
	push_hub /ws2 {
		hub {$HUB}
		auth first_message
		send_queue 20
	}
}`)
	if err == nil || !strings.Contains(err.Error(), h.Hub("HUB")) || !strings.Contains(err.Error(), "differ in their settings") {
		t.Fatalf("loading two disagreeing endpoints: %v, want a refusal naming the hub and saying they differ", err)
	}
	c.StillOpen()
}
