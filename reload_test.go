package pushhub_test

import (
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

// TestReloadRefused: a config that Caddy refuses (by push_hub, by another
// module, by a port in use) is reported, and the running config serves on:
// every connection open, bound and served, its group kept.
func TestReloadRefused(t *testing.T) {
	h := harness.Start(t, reloadConfig("auth first_message\n\t\tsend_queue 8", ""))
	api := h.API()
	c := harness.Dial(t, "opened before", h.WS+"/ws", nil)
	c.Login("u")
	api.Post(t, "/join", `{"uid":"u","group":"kept"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)

	busy, err := net.Listen("tcp", ":"+strconv.Itoa(h.Spare(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct{ name, config, why string }{
		{"by push_hub's provisioning", reloadConfig("auth jwt too-short", ""), "short"},
		{"by push_hub's validation", reloadConfig("auth first_message\n\t\tmax_uid_length 5000", ""), "max_uid_length"},
		{"by another module after push_hub", reloadConfig("auth first_message", `reverse_proxy 127.0.0.1:9 {
		transport http {
			tls_client_auth /nonexistent/client.crt /nonexistent/client.key
		}
	}`), "client.crt"},
		{"by a port in use", reloadConfig("auth first_message", "") + `

http://localhost:` + strconv.Itoa(h.Spare(0)) + ` {
	respond "busy"
}`, "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.LoadErr(tc.config)
			if err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("the load was not refused for %q: %v", tc.why, err)
			}
			api.Get(t, "/uids?group=kept").ExpectJSON(http.StatusOK, `{"group":"kept","uids":["u"]}`)
			api.Post(t, "/send", `{"uid":"u","data":"still served"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
			c.ExpectMessage(`"still served"`)
			c.StillOpen()
		})
	}
	// New connections are served by the running config too.
	harness.LoggedIn(t, h.WS+"/ws", "v")
}
