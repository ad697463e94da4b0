package pushhub_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestE2EReload: a config reload keeps every WebSocket open and bound;
// removing the hub from the config closes its sockets with 1001.
func TestE2EReload(t *testing.T) {
	site := func(extra string) string {
		return fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_reload
		auth first_message
		send_queue %s
	}
	%s
}

http://localhost:%d {
	push_api {
		hub e2e_reload
	}
}
`, wsPort, map[bool]string{true: "16", false: "8"}[extra != ""], extra, apiPort)
	}
	loadConfig(t, site(""))
	r1 := dial(t, "opened before the reload", wsURL+"/ws", nil)
	r1.loginJSON("uid", "r", "r", 0)
	other := dial(t, "another uid", wsURL+"/ws", nil)
	other.loginJSON("uid", "o", "o", 0)
	post(t, apiURL+"/join", `{"uid":"o","group":"kept"}`).expectJSON(t, http.StatusOK, `{"ok":true}`)
	if r := get(t, siteURL+"/extra"); r.body == "the new route" {
		t.Fatal("the extra route answers before the reload")
	}

	// Reload with another send_queue and an extra route.
	loadConfig(t, site(`respond /extra "the new route" 200`))
	if r := get(t, siteURL+"/extra"); r.status != http.StatusOK || r.body != "the new route" {
		t.Fatalf("GET /extra after the reload: HTTP %d %q: the new config is not serving", r.status, r.body)
	}
	get(t, apiURL+"/online?uid=r").expectJSON(t, http.StatusOK, online("r", 1))
	get(t, apiURL+"/uids?group=kept").expectJSON(t, http.StatusOK, `{"group":"kept","uids":["o"]}`)
	post(t, apiURL+"/send", `{"uid":"r","data":"after the reload"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	r1.expect(`{"type":"message","seq":1,"data":"after the reload"}`)
	post(t, apiURL+"/send", `{"group":"kept","data":"group kept"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	other.expect(`{"type":"message","seq":1,"data":"group kept","group":"kept"}`)
	r1.send(`{"type":"ping","id":1}`)
	r1.expect(`{"type":"pong","id":1}`)
	r2 := dial(t, "opened after the reload", wsURL+"/ws", nil)
	r2.loginJSON("uid", "r", "r", 1)
	post(t, apiURL+"/send", `{"uid":"r","data":"both"}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	r1.expect(`{"type":"message","seq":2,"data":"both"}`)
	r2.expect(`{"type":"message","seq":2,"data":"both"}`)

	// A config without the hub: its last reference goes, its sockets close
	// with 1001 (going away), pending ones too.
	pending := dial(t, "not logged in", wsURL+"/ws", nil)
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	respond "no hub here" 200
}
`, wsPort))
	// json clients that logged in are told in a going_away frame when to
	// come back, and the close reason repeats it.
	for _, c := range []*wsConn{r1, r2, other} {
		frame := c.read()
		var ga struct {
			Type    string `json:"type"`
			Reason  string `json:"reason"`
			RetryMS int64  `json:"retry_ms"`
		}
		if err := strictJSON(frame, &ga); err != nil || ga.Type != "going_away" || ga.Reason != "server shutting down" || ga.RetryMS <= 0 {
			t.Fatalf("%s: got %s (%v), want a going_away frame with the reason and a retry_ms", c.name, frame, err)
		}
		want := fmt.Sprintf("server shutting down; retry in %dms", ga.RetryMS)
		if reason := c.expectClose(websocket.CloseGoingAway); reason != want {
			t.Fatalf("%s: close reason %q, want %q", c.name, reason, want)
		}
		c.expectHangup()
	}
	if reason := pending.expectClose(websocket.CloseGoingAway); !strings.HasPrefix(reason, "server shutting down; retry in ") {
		t.Fatalf("%s: close reason %q", pending.name, reason)
	}
	pending.expectHangup()
	if r := get(t, siteURL+"/ws"); r.body != "no hub here" {
		t.Fatalf("GET /ws after removing the hub: HTTP %d %q", r.status, r.body)
	}
}

// TestE2EStop: stopping Caddy's HTTP app (a config without any site) closes
// every socket of every hub with 1001, in both protocols.
func TestE2EStop(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_stop
		auth first_message
	}
	push_hub /ws-text {
		hub e2e_stop_text
		protocol text
		auth first_message
	}
}
`, wsPort))
	j := dial(t, "json", wsURL+"/ws", nil)
	j.loginJSON("uid", "j", "j", 0)
	tx := dial(t, "text", wsURL+"/ws-text", nil)
	tx.send("t")
	tx.expect("login success, your uid is t")

	loadConfig(t, "")
	if frame := j.read(); !strings.HasPrefix(frame, `{"type":"going_away","reason":"server shutting down","retry_ms":`) {
		t.Fatalf("json: got %s, want a going_away frame", frame)
	}
	for _, c := range []*wsConn{j, tx} {
		if reason := c.expectClose(websocket.CloseGoingAway); !strings.HasPrefix(reason, "server shutting down; retry in ") {
			t.Fatalf("%s: close reason %q", c.name, reason)
		}
		c.expectHangup()
	}
	if _, _, err := dialer.Dial(wsURL+"/ws", nil); err == nil {
		t.Fatal("the endpoint still upgrades after the HTTP app stopped")
	}
}

// TestE2ECaddyCitizenship: the endpoint works behind encode, header and
// access logging in the same site, and a non-upgrade request goes on to the
// next handler.
func TestE2ECaddyCitizenship(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	log {
		output discard
	}
	encode gzip
	header X-E2E "citizen"
	push_hub /ws {
		hub e2e_citizen
		auth first_message
	}
	respond /ws "not a websocket" 200
	respond "%s" 200
}

http://localhost:%d {
	push_api {
		hub e2e_citizen
	}
}
`, wsPort, padding(2048), apiPort))

	// Not an upgrade: the next handler answers, through encode and header.
	r := get(t, siteURL+"/ws")
	if r.status != http.StatusOK || r.body != "not a websocket" || r.header.Get("X-E2E") != "citizen" {
		t.Fatalf("GET /ws: HTTP %d %q, X-E2E %q", r.status, r.body, r.header.Get("X-E2E"))
	}
	// encode is really at work in this site.
	req, _ := http.NewRequest(http.MethodGet, siteURL+"/page", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("GET /page: Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(zr)
	resp.Body.Close()
	if err != nil || string(page) != padding(2048) {
		t.Fatalf("GET /page: %d bytes, %v", len(page), err)
	}

	// The upgrade, with a client that accepts gzip.
	hdr := http.Header{"Accept-Encoding": {"gzip"}}
	c := dial(t, "behind encode", wsURL+"/ws", hdr)
	c.loginJSON("uid", "u", "u", 0)
	big := padding(8192)
	post(t, apiURL+"/send", `{"uid":"u","data":"`+big+`"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	c.expect(`{"type":"message","seq":1,"data":"` + big + `"}`)
	c.send(`{"type":"ping","id":1}`)
	c.expect(`{"type":"pong","id":1}`)
	// A request on the same site after the upgrade is unaffected.
	if r := get(t, siteURL+"/ws"); r.body != "not a websocket" {
		t.Fatalf("GET /ws after an upgrade: HTTP %d %q", r.status, r.body)
	}
}

// TestE2EHTTP2: HTTP/2 requests to the endpoint (an https site with tls
// internal) are answered, not crashed on: a GET goes on to the next
// handler, a CONNECT is refused with 501; HTTP/1.1 WebSockets keep working
// on the same site.
func TestE2EHTTP2(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`%s {
	tls internal
	push_hub {
		hub e2e_h2
		auth first_message
	}
	respond "not a websocket" 200
}

http://localhost:%d {
	push_api {
		hub e2e_h2
	}
}
`, httpsURL, apiPort))
	tlsCfg := waitForCert(t)
	h2 := &http.Client{
		Timeout:   ioTimeout,
		Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone(), ForceAttemptHTTP2: true},
	}
	defer h2.CloseIdleConnections()
	h2Get := func() {
		t.Helper()
		// As close to a WebSocket handshake as HTTP/2 allows (no Connection
		// nor Upgrade headers): not an upgrade.
		req, _ := http.NewRequest(http.MethodGet, httpsURL+"/ws", nil)
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Version", "13")
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatalf("HTTP/2 GET /ws: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || string(body) != "not a websocket" {
			t.Fatalf("HTTP/2 GET /ws: %s %s %q, want HTTP/2.0 200 %q", resp.Proto, resp.Status, body, "not a websocket")
		}
	}
	h2Get()

	// A CONNECT over HTTP/2 reaches the handler (Go's server does not
	// advertise RFC 8441's extended CONNECT, so no WebSocket over HTTP/2
	// can be opened): 501, and the server carries on.
	req, _ := http.NewRequest(http.MethodConnect, httpsURL, nil)
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatalf("HTTP/2 CONNECT: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("HTTP/2 CONNECT: %s %s, want HTTP/2.0 501", resp.Proto, resp.Status)
	}

	// HTTP/1.1 WebSockets on the same site still work.
	d := &websocket.Dialer{HandshakeTimeout: ioTimeout, TLSClientConfig: tlsCfg.Clone()}
	c := dialWith(t, d, "wss after HTTP/2", wssURL+"/ws", nil)
	c.loginJSON("uid", "h", "h", 0)
	post(t, apiURL+"/send", `{"uid":"h","data":"over wss"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	c.expect(`{"type":"message","seq":1,"data":"over wss"}`)

	// And HTTP/2 requests after it too.
	h2Get()
}
