package pushhub_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// shutdownConfig is a hub (hub: HUB, HUB2 ...) with a json and a text
// endpoint, and the push API.
func shutdownConfig(hub string) string {
	return strings.ReplaceAll(harness.BothProtocols("reconnect_jitter 2s"), "{$HUB}", "{$"+hub+"}")
}

var retryHint = regexp.MustCompile(`^server shutting down; retry in (\d+)ms$`)

// expectGoingAway asserts how a hub that closes ends a connection: for json
// clients a going_away frame, then for every client the close 1001 whose
// reason repeats the retry hint (500 ms plus up to reconnect_jitter, 2s),
// then the server's hang-up. It returns the hint.
func expectGoingAway(t *testing.T, c *harness.Conn, json bool) int64 {
	t.Helper()
	var retry int64 = -1
	if json {
		g := c.ReadFrame()
		if g.Type != "going_away" || g.RetryMS == nil ||
			g.Raw != fmt.Sprintf(`{"type":"going_away","reason":"server shutting down","retry_ms":%d}`, *g.RetryMS) {
			t.Fatalf("%s: got %s, want a going_away frame with the reason and retry_ms", c.Name, g.Raw)
		}
		retry = *g.RetryMS
	}
	reason := c.ExpectClose(1001)
	m := retryHint.FindStringSubmatch(reason)
	if m == nil {
		t.Fatalf("%s: close reason %q, want %q", c.Name, reason, "server shutting down; retry in <n>ms")
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	if n < 500 || n > 2500 || (json && n != retry) {
		t.Fatalf("%s: the close says retry in %dms (going_away said %d), want one hint from 500 to 500+reconnect_jitter (2s)", c.Name, n, retry)
	}
	c.ExpectHangup()
	return n
}

// TestShutdownOnReload: loading a config without the hub closes every
// socket of the hub, logged in or not, with 1001 and a retry hint spread
// over reconnect_jitter, after what was queued to it; json clients get
// going_away first. Then a config with no push_hub at all does the same
// to the next hub, and serves the path without it.
func TestShutdownOnReload(t *testing.T) {
	h := harness.Start(t, shutdownConfig("HUB"))
	api := h.API()
	const (
		nJSON  = 50
		nText  = 3
		pushes = 50
	)
	var jsonC, textC []*harness.Conn
	for i := range nJSON {
		c := harness.Dial(t, fmt.Sprintf("json%d", i), h.WS+"/ws", nil)
		c.Login(c.Name)
		jsonC = append(jsonC, c)
	}
	for i := range nText {
		c := harness.Dial(t, fmt.Sprintf("text%d", i), h.WS+"/text", nil)
		c.LoginText(c.Name)
		textC = append(textC, c)
	}
	pending := harness.Dial(t, "pending", h.WS+"/ws", nil) // never logs in
	harness.Eventually(t, "every client is on the hub", func() (bool, string) {
		st := api.Stats(t)
		return st.Connections == nJSON+nText && st.Pending == 1, fmt.Sprintf("%+v", st)
	})

	// Nobody reads yet: push, then take the hub away at once.
	for i := 1; i <= pushes; i++ {
		if rc := api.Send(t, fmt.Sprintf(`{"all":true,"data":%d}`, i)); rc.Delivered != nJSON+nText || rc.Dropped != 0 {
			t.Fatalf("push %d: receipt %+v", i, rc)
		}
	}
	h.Load(shutdownConfig("HUB2"))

	retries := map[int64]int{}
	for _, c := range jsonC {
		for i := 1; i <= pushes; i++ {
			c.ExpectMessage(fmt.Sprint(i))
		}
		retries[expectGoingAway(t, c, true)]++
	}
	if len(retries) < 2 {
		t.Fatalf("every json client was told the same retry_ms: %v", retries)
	}
	for _, c := range textC {
		for i := 1; i <= pushes; i++ {
			c.Expect(fmt.Sprint(i))
		}
		expectGoingAway(t, c, false)
	}
	expectGoingAway(t, pending, false)

	// A config with no push_hub at all closes the next hub the same way.
	var last []*harness.Conn
	for i := range 3 {
		c := harness.Dial(t, fmt.Sprintf("next%d", i), h.WS+"/ws", nil)
		c.Login(c.Name)
		last = append(last, c)
	}
	api.Send(t, `{"all":true,"data":"bye"}`)
	h.Load(`
{$WS_SITE} {
	respond "no hub here"
}`)
	for _, c := range last {
		c.ExpectMessage(`"bye"`)
		expectGoingAway(t, c, true)
	}
	if r := (harness.API{URL: h.HTTP}).Get(t, "/ws"); r.Body != "no hub here" {
		t.Fatalf("GET /ws after the hub went: HTTP %d %q, want the new config's answer", r.Status, r.Body)
	}
}

// TestShutdownOnStop: stopping Caddy (SIGTERM, as a service manager does)
// flushes what was queued to every connection and closes it, logged in or
// not, with 1001 and a retry hint, json clients told first; then the
// process exits cleanly.
func TestShutdownOnStop(t *testing.T) {
	n := harness.StartNode(t, shutdownConfig("HUB"))
	api := n.API()
	j := harness.LoggedIn(t, n.WS+"/ws", "j")
	tx := harness.Dial(t, "text", n.WS+"/text", nil)
	tx.LoginText("t")
	pending := harness.Dial(t, "pending", n.WS+"/ws", nil)
	harness.Eventually(t, "every client is on the hub", func() (bool, string) {
		st := api.Stats(t)
		return st.Connections == 2 && st.Pending == 1, fmt.Sprintf("%+v", st)
	})
	const pushes = 20
	for i := 1; i <= pushes; i++ {
		if rc := api.Send(t, fmt.Sprintf(`{"all":true,"data":%d}`, i)); rc.Delivered != 2 {
			t.Fatalf("push %d: receipt %+v", i, rc)
		}
	}

	n.Stop()
	for i := 1; i <= pushes; i++ {
		j.ExpectMessage(fmt.Sprint(i))
		tx.Expect(fmt.Sprint(i))
	}
	expectGoingAway(t, j, true)
	expectGoingAway(t, tx, false)
	expectGoingAway(t, pending, false)
}
