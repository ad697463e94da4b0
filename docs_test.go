package pushhub_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/pushhub/caddy-pushhub/internal/harness"
	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// docBlock is a fenced code block of a Markdown file.
type docBlock struct {
	file string
	line int // of the opening fence
	text string
}

// docBlocks returns the blocks fenced as ```lang in file.
func docBlocks(t *testing.T, file, lang string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []docBlock
	var cur *docBlock
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```"+lang:
			cur = &docBlock{file: file, line: i + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return out
}

// TestDocsCaddyfiles adapts every block fenced as ```caddyfile in the
// README and MIGRATING.md, as `caddy adapt` does: each must be a whole
// Caddyfile that Caddy (with this plugin) reads without an error or a
// warning. A fragment that is not a whole Caddyfile is fenced otherwise.
func TestDocsCaddyfiles(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	n := 0
	for _, file := range []string{"README.md", "MIGRATING.md"} {
		for _, b := range docBlocks(t, file, "caddyfile") {
			n++
			_, warnings, err := adapter.Adapt([]byte(b.text), map[string]any{"filename": b.file})
			if err != nil {
				t.Errorf("%s:%d: %v\n%s", b.file, b.line, err, b.text)
			}
			for _, w := range warnings {
				if w.Message == "Caddyfile input is not formatted; run 'caddy fmt --overwrite' to fix inconsistencies" {
					continue // the docs align comments with spaces
				}
				t.Errorf("%s:%d: warning: %s (line %d of the block)", b.file, b.line, w.Message, w.Line)
			}
		}
	}
	if n < 7 {
		t.Fatalf("found %d caddyfile blocks, want at least the four of README.md and the three of MIGRATING.md", n)
	}
}

// TestMigratingApplication runs MIGRATING.md's PHP application (app.php)
// with PHP's built-in server as the application behind a hub configured as
// the guide says: it checks the signatures, bans a uid at login, puts
// everyone in the lobby, routes the recipe's uid:message and all:message
// through push_api, and logs closes. A request with a bad signature gets
// 401 from it.
func TestMigratingApplication(t *testing.T) {
	php := testenv.LookPath(t, []string{"php"}, "apt-get install php-cli")
	var app string
	for _, b := range docBlocks(t, "MIGRATING.md", "php") {
		if strings.Contains(b.text, "// app.php:") {
			app = b.text
		}
	}
	if app == "" {
		t.Fatal("no app.php in MIGRATING.md")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.php"), []byte(app), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret, key = "the-hook-secret", "the-api-key"
	appAddr := fmt.Sprintf("127.0.0.1:%d", harness.Port(t))
	t.Setenv("PUSH_HOOK_SECRET", secret)
	t.Setenv("PUSH_API_KEY", key)
	h := harness.Start(t, fmt.Sprintf(`
{$WS_SITE} {
	push_hub {
		hub {$HUB}
		protocol text
		auth first_message
		events http://%[1]s/events {
			secret {env.PUSH_HOOK_SECRET}
			text_messages app
		}
		login_hook http://%[1]s/login {
			secret {env.PUSH_HOOK_SECRET}
			on_error refuse
		}
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
		key {env.PUSH_API_KEY}
	}
}`, appAddr))

	cmd := exec.Command(php, "-S", appAddr, "app.php")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PUSH_API_URL="+h.API().URL)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("php -S said:\n%s", out.String())
		}
	})
	harness.Eventually(t, "php -S listens", func() (bool, string) {
		c, err := net.Dial("tcp", appAddr)
		if err == nil {
			c.Close()
		}
		return err == nil, fmt.Sprint(err)
	})

	alice := harness.LoggedInText(t, h.WS+"/", "alice")
	bob := harness.LoggedInText(t, h.WS+"/", "bob")
	banned := harness.Dial(t, "banned", h.WS+"/", nil)
	banned.Send("banned")
	if reason := banned.ExpectClose(4001); !strings.Contains(reason, "this account is banned") {
		t.Errorf("banned: closed with %q, want the application's reason", reason)
	}

	bob.Send("alice:see you at 10:30")
	alice.Expect("see you at 10:30")
	bob.Send("all:hello, everyone")
	alice.Expect("hello, everyone")
	bob.Expect("hello, everyone")
	if rc := h.API().WithKey(key).Send(t, `{"group":"lobby","data":"in the lobby"}`); rc.Delivered != 2 {
		t.Errorf("push to the lobby: %+v, want both (the login hook's group)", rc)
	}
	alice.Expect("in the lobby")
	bob.Expect("in the lobby")
	bob.CloseNormally()
	harness.Eventually(t, "the application logs bob's close", func() (bool, string) {
		return regexp.MustCompile(`bob left after \d+ ms \(1000\)`).MatchString(out.String()), out.String()
	})

	// A request that is not the hub's.
	req, _ := http.NewRequest(http.MethodPost, "http://"+appAddr+"/login", strings.NewReader(`{"uid":"mallory"}`))
	req.Header.Set("X-PushHub-Signature", "sha256="+strings.Repeat("0", 64))
	resp, err := (&http.Client{Timeout: harness.Guard}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a forged login hook request: HTTP %d, want 401", resp.StatusCode)
	}
}

// lockedBuffer is a bytes.Buffer that a process's output and the test
// share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
