package harness_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestNode: a Caddy process starts with a config, reloads another, refuses
// a bad one and keeps serving, stops cleanly, starts again with the config
// it last loaded, and dies on a kill.
func TestNode(t *testing.T) {
	n := harness.StartNode(t, `
{$WS_SITE} {
	respond "one"
}`)
	site := harness.API{URL: n.HTTP}
	expect := func(body string) {
		t.Helper()
		if r := site.Get(t, "/"); r.Status != http.StatusOK || r.Body != body {
			t.Fatalf("GET /: HTTP %d %q, want %q", r.Status, r.Body, body)
		}
	}
	expect("one")
	if n.PID() <= 0 {
		t.Fatalf("PID %d", n.PID())
	}

	n.Load(`
{$WS_SITE} {
	respond "two"
}`)
	expect("two")
	if err := n.LoadErr("{$WS_SITE} {\n\tno_such_directive\n}"); err == nil || !strings.Contains(err.Error(), "no_such_directive") {
		t.Fatalf("a config with an unknown directive: %v, want it refused", err)
	}
	expect("two")

	n.Stop()
	if !strings.Contains(n.Output(), "shutting down") {
		t.Fatalf("the node's output says nothing of its shutdown:\n%s", n.Output())
	}
	if _, err := site.Request(http.MethodGet, "/", "", nil); err == nil {
		t.Fatal("the node still answers after Stop")
	}
	n.Restart()
	expect("two")
	n.Kill()
	if _, err := site.Request(http.MethodGet, "/", "", nil); err == nil {
		t.Fatal("the node still answers after Kill")
	}
}
