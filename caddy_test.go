package pushhub_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestCaddyCitizenship: the endpoint works behind encode, header and
// access logging in the same site (Caddy's response-writer wrappers), and
// a request that is no upgrade goes on to the next handler.
func TestCaddyCitizenship(t *testing.T) {
	page := strings.Repeat("p", 2048)
	h := harness.Start(t, `
{$WS_SITE} {
	log {
		output discard
	}
	encode gzip
	header X-Citizen "yes"
	push_hub /ws {
		hub {$HUB}
		auth first_message
	}
	respond /ws "not a websocket" 200
	respond "`+page+`" 200
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`)
	site := harness.API{URL: h.HTTP}

	// Not an upgrade: the next handler answers, through encode and header.
	r := site.Get(t, "/ws")
	if r.Status != http.StatusOK || r.Body != "not a websocket" || r.Header.Get("X-Citizen") != "yes" {
		t.Fatalf("GET /ws: HTTP %d %q, X-Citizen %q", r.Status, r.Body, r.Header.Get("X-Citizen"))
	}
	// encode is really at work in this site.
	req, _ := http.NewRequest(http.MethodGet, h.HTTP+"/page", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{}).RoundTrip(req)
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
	got, err := io.ReadAll(zr)
	resp.Body.Close()
	if err != nil || string(got) != page {
		t.Fatalf("GET /page: %d bytes, %v", len(got), err)
	}

	// The upgrade, with a client that accepts gzip.
	c := harness.Dial(t, "behind encode", h.WS+"/ws", http.Header{"Accept-Encoding": {"gzip"}})
	c.Login("u")
	big := strings.Repeat("x", 8192)
	h.API().Post(t, "/send", `{"uid":"u","data":"`+big+`"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	c.Expect(`{"type":"message","seq":1,"data":"` + big + `"}`)
	c.StillOpen()
	// A request on the same site after the upgrade is unaffected.
	if r := site.Get(t, "/ws"); r.Body != "not a websocket" {
		t.Fatalf("GET /ws after an upgrade: HTTP %d %q", r.Status, r.Body)
	}
}

// TestHTTP2: HTTP/2 requests to the endpoint (an https site with tls
// internal) are answered, not crashed on: a GET goes on to the next
// handler, a CONNECT is refused with 501; HTTP/1.1 WebSockets keep working
// on the same site.
func TestHTTP2(t *testing.T) {
	h := harness.Start(t, `
{$HTTPS_SITE} {
	tls internal
	push_hub {
		hub {$HUB}
		auth first_message
	}
	respond "not a websocket" 200
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`)
	tlsCfg := h.WaitForCert()
	h2 := &http.Client{
		Timeout:   harness.Guard,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true},
	}
	defer h2.CloseIdleConnections()
	h2Get := func() {
		t.Helper()
		// As close to a WebSocket handshake as HTTP/2 allows (no Connection
		// nor Upgrade headers): not an upgrade.
		req, _ := http.NewRequest(http.MethodGet, h.HTTPS+"/ws", nil)
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
	req, _ := http.NewRequest(http.MethodConnect, h.HTTPS, nil)
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatalf("HTTP/2 CONNECT: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("HTTP/2 CONNECT: %s %s, want HTTP/2.0 501", resp.Proto, resp.Status)
	}

	// HTTP/1.1 WebSockets on the same site still work.
	c := harness.Dial(t, "wss after HTTP/2", h.WSS+"/ws", nil)
	c.Login("h")
	h.API().Post(t, "/send", `{"uid":"h","data":"over wss"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	c.Expect(`{"type":"message","seq":1,"data":"over wss"}`)

	// And HTTP/2 requests after it too.
	h2Get()
}

// TestMetrics: each hub's counters are on Caddy's metrics endpoint, as
// caddy_pushhub_* with the hub's name.
func TestMetrics(t *testing.T) {
	h := harness.Start(t, harness.OneHub())
	c := harness.LoggedIn(t, h.WS+"/ws", "m")
	h.API().Send(t, `{"uid":"m","data":1}`)
	c.ExpectMessage("1")
	metrics := harness.API{URL: fmt.Sprintf("http://localhost:%d", h.AdminPort)}
	hub := `{hub="` + h.Hub("HUB") + `"} `
	for _, want := range []string{
		"caddy_pushhub_connections" + hub + "1",
		"caddy_pushhub_pending_connections" + hub + "0",
		"caddy_pushhub_uids" + hub + "1",
		"caddy_pushhub_groups" + hub + "0",
		"caddy_pushhub_messages_in_total" + hub + "1",
		"caddy_pushhub_messages_out_total" + hub + "1",
		"caddy_pushhub_pushes_total" + hub + "1",
		"caddy_pushhub_slow_consumers_total" + hub + "0",
		"caddy_pushhub_history_bytes" + hub + "0",
	} {
		if r := metrics.Get(t, "/metrics"); !strings.Contains(r.Body, "\n"+want+"\n") {
			t.Fatalf("GET /metrics: HTTP %d, no line %q in\n%s", r.Status, want, r.Body)
		}
	}

	// Logins, refusals by reason, closes by code, and the latency of the
	// one copy written.
	x := harness.Dial(t, "no login", h.WS+"/ws", nil)
	x.Send(`{"type":"send","to":"m","data":2}`)
	x.ExpectError("login_required", "")
	x.ExpectClose(4001)
	c.CloseNormally()
	hubLabel := `hub="` + h.Hub("HUB") + `"`
	for _, want := range []string{
		"caddy_pushhub_logins_total" + hub + "1",
		`caddy_pushhub_login_refusals_total{` + hubLabel + `,reason="login_required"} 1`,
		`caddy_pushhub_closes_total{code="1000",` + hubLabel + `} 1`,
		`caddy_pushhub_closes_total{code="4001",` + hubLabel + `} 1`,
		"caddy_pushhub_write_latency_seconds_count" + hub + "1",
		`caddy_pushhub_write_latency_seconds_bucket{` + hubLabel + `,le="+Inf"} 1`,
		"caddy_pushhub_send_queue_frames" + hub + "0",
		"caddy_pushhub_send_queue_max_frames" + hub + "0",
	} {
		harness.Eventually(t, want, func() (bool, string) {
			r := metrics.Get(t, "/metrics")
			return strings.Contains(r.Body, "\n"+want+"\n"), r.Body
		})
	}
}

// TestDefaultHub: push_hub and push_api without a hub directive both serve
// the hub named default.
func TestDefaultHub(t *testing.T) {
	h := harness.Start(t, strings.ReplaceAll(harness.OneHub(), "hub {$HUB}", ""))
	uid := h.Hub("HUB") // a uid no earlier user of the default hub had
	c := harness.LoggedIn(t, h.WS+"/ws", uid)
	h.API().Post(t, "/send", `{"uid":`+harness.JSON(uid)+`,"data":"by default"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	c.ExpectMessage(`"by default"`)
	if s := h.API().Stats(t); s.Hub != "default" {
		t.Fatalf("stats of hub %q, want default", s.Hub)
	}
}
