package pushhub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/harness"
	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// TestXcaddyBuild follows xcaddy.md: it builds a Caddy with this checkout
// plugged in by `go tool xcaddy build`, pinned to the Caddy version in
// go.mod, then checks that the binary lists both handlers, adapts
// Caddyfile.example, and serves a push end to end. It is slow (a cold build takes minutes, a warm one
// seconds), so `go test -short` skips it; CI runs the full suite.
func TestXcaddyBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a whole Caddy with xcaddy; run without -short")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "xcaddy", "it runs as `go tool xcaddy`, and no go command is on PATH")
	}
	root, err := os.Getwd() // a test runs in its package's directory: the repository root
	if err != nil {
		t.Fatal(err)
	}

	ctx := t.Context()
	if deadline, ok := t.Deadline(); ok {
		// Stop the build in time to print its log rather than dying in
		// go test's timeout panic.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-15*time.Second))
		defer cancel()
	}
	run := func(dir, name string, args ...string) (stdout, stderr string, err error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.WaitDelay = 10 * time.Second // go tool's children may hold the pipes
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		return out.String(), errOut.String(), err
	}

	// The Caddy version this module requires, so the build reuses what
	// `go build ./...` already compiled.
	version, stderr, err := run(root, goCmd, "list", "-m", "-f", "{{.Version}}", "github.com/caddyserver/caddy/v2")
	if err != nil {
		t.Fatalf("go list -m caddy: %v\n%s", err, stderr)
	}
	version = strings.TrimSpace(version)

	tmp := t.TempDir()
	caddy := filepath.Join(tmp, "caddy")
	start := time.Now()
	_, buildLog, err := run(root, goCmd, "tool", "xcaddy", "build", version,
		"--with", "github.com/pushhub/caddy-pushhub@v0.0.0="+root,
		"--output", caddy)
	if err != nil {
		t.Fatalf("go tool xcaddy build %s: %v\n%s", version, err, buildLog)
	}
	t.Logf("xcaddy built Caddy %s with this checkout in %v", version, time.Since(start).Round(time.Second))

	out, stderr, err := run(root, caddy, "version")
	if err != nil {
		t.Fatalf("caddy version: %v\n%s", err, stderr)
	}
	if !strings.HasPrefix(out, version+" ") {
		t.Errorf("caddy version = %q, want Caddy %s", strings.TrimSpace(out), version)
	}

	out, stderr, err = run(root, caddy, "list-modules")
	if err != nil {
		t.Fatalf("caddy list-modules: %v\n%s", err, stderr)
	}
	listed := make(map[string]bool)
	for line := range strings.Lines(out) {
		listed[strings.TrimSpace(line)] = true
	}
	for _, id := range []string{"http.handlers.push_hub", "http.handlers.push_api"} {
		if !listed[id] {
			t.Errorf("caddy list-modules does not list %s:\n%s", id, out)
		}
	}

	out, stderr, err = run(root, caddy, "adapt", "--config", "Caddyfile.example")
	if err != nil {
		t.Fatalf("caddy adapt --config Caddyfile.example: %v\n%s", err, stderr)
	}
	if !json.Valid([]byte(out)) {
		t.Fatalf("caddy adapt printed no JSON config:\n%s\n%s", out, stderr)
	}
	for _, handler := range []string{`"handler":"push_hub"`, `"handler":"push_api"`} {
		if !strings.Contains(out, handler) {
			t.Errorf("adapted Caddyfile.example has no %s handler:\n%s", handler, out)
		}
	}

	// The binary serves: a client logs in, a push reaches it.
	n := harness.StartNodeFrom(t, caddy, harness.OneHub())
	c := harness.LoggedIn(t, n.WS+"/ws", "x")
	n.API().Post(t, "/send", `{"uid":"x","data":"built by xcaddy"}`).ExpectJSON(200, harness.ReceiptJSON(1, 0))
	c.ExpectMessage(`"built by xcaddy"`)
}
