package pushhub_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// rbShutdownSites is a hub with a json and a text endpoint.
func rbShutdownSites(hub string) string {
	ws := strings.ReplaceAll(`
	push_hub /ws {
		hub HUB
		auth first_message
		reconnect_jitter 2s
	}
	push_hub /text {
		hub HUB
		protocol text
		auth first_message
		reconnect_jitter 2s
	}`, "HUB", hub)
	api := fmt.Sprintf(`
	push_api {
		hub %s
		key %s
	}`, hub, rbKey)
	return rbSites(ws, api)
}

var rbRetryRe = regexp.MustCompile(`; retry in (\d+)ms$`)

// rbRetry checks a 1001 close reason's retry hint and returns it.
func rbRetry(t *testing.T, name, reason string) int64 {
	t.Helper()
	m := rbRetryRe.FindStringSubmatch(reason)
	if m == nil {
		t.Fatalf("%s: close reason %q, want it to end with \"retry in <n>ms\"", name, reason)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	if n < 500 || n > 2500 {
		t.Fatalf("%s: retry in %dms, want 500 to 500+reconnect_jitter (2s)", name, n)
	}
	return n
}

// TestRobustGracefulShutdown: loading a config without the hub closes
// every socket of the hub with 1001 and a retry hint, after what was queued
// to it; json clients get going_away first.
func TestRobustGracefulShutdown(t *testing.T) {
	rbLoad(t, rbShutdownSites(rbHubName("shutdown")))
	const (
		nJSON  = 50
		nText  = 3
		pushes = 50
	)
	var jsonC, textC []*rbClient
	for i := range nJSON {
		c := rbDial(t, fmt.Sprintf("json%d", i), "/ws", nil)
		c.login(c.name, nil)
		jsonC = append(jsonC, c)
	}
	for i := range nText {
		c := rbDial(t, fmt.Sprintf("text%d", i), "/text", nil)
		c.sendText(c.name)
		c.expectText("login success, your uid is " + c.name)
		textC = append(textC, c)
	}
	pending := rbDial(t, "pending", "/ws", nil) // never logs in
	eventuallyWithin(t, rbGuard, "every client is on the hub", func() (bool, string) {
		st := rbGetStats(t, "")
		return st.Connections == nJSON+nText && st.Pending == 1, fmt.Sprintf("%+v", st)
	})

	// Nobody reads yet: push, then take the hub away at once.
	for i := 1; i <= pushes; i++ {
		if rc := rbSend(t, "/send", fmt.Sprintf(`{"all":true,"data":%d}`, i)); rc.Delivered != nJSON+nText || rc.Dropped != 0 {
			t.Fatalf("push %d: receipt %v", i, rc)
		}
	}
	next := rbHubName("shutdown-next")
	rbLoad(t, rbShutdownSites(next))

	retries := map[int64]int{}
	for _, c := range jsonC {
		for i := 1; i <= pushes; i++ {
			c.expectMessage(fmt.Sprint(i))
		}
		g := c.read()
		if g.Type != "going_away" || g.RetryMS == nil || g.Reason == "" ||
			g.raw != fmt.Sprintf(`{"type":"going_away","reason":%s,"retry_ms":%d}`, jsonText(g.Reason), *g.RetryMS) {
			t.Fatalf("%s: got %s, want a going_away frame with a reason and retry_ms", c.name, g.raw)
		}
		if n := rbRetry(t, c.name, c.expectClose(1001)); n != *g.RetryMS {
			t.Fatalf("%s: the close says retry in %dms, going_away said %d", c.name, n, *g.RetryMS)
		}
		retries[*g.RetryMS]++
	}
	if len(retries) < 2 {
		t.Fatalf("every json client was told the same retry_ms: %v", retries)
	}
	for _, c := range textC {
		for i := 1; i <= pushes; i++ {
			c.expectText(fmt.Sprint(i))
		}
		rbRetry(t, c.name, c.expectClose(1001))
	}
	rbRetry(t, pending.name, pending.expectClose(1001))

	// A config with no push_hub at all closes the next hub the same way.
	var last []*rbClient
	for i := range 3 {
		c := rbDial(t, fmt.Sprintf("next%d", i), "/ws", nil)
		c.login(c.name, nil)
		last = append(last, c)
	}
	rbSend(t, "/send", `{"all":true,"data":"bye"}`)
	rbLoad(t, rbSites("\trespond /ws 404", "\trespond 404"))
	for _, c := range last {
		c.expectMessage(`"bye"`)
		if g := c.read(); g.Type != "going_away" || g.RetryMS == nil {
			t.Fatalf("%s: got %s, want going_away", c.name, g.raw)
		}
		rbRetry(t, c.name, c.expectClose(1001))
	}
}
