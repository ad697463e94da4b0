package pushhub_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushhub/caddy-pushhub/internal/harness"
	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// TestExamples runs every program of examples/ against a real Caddy: each
// pusher, with the API key, pushes to a uid that a WebSocket client holds
// (and is refused with a wrong key), and each receiver gets what the API
// pushes to it. A language whose tool is missing skips (fails under
// PUSHHUB_NO_SKIP).
func TestExamples(t *testing.T) {
	t.Setenv("PUSH_JWT_SECRET", jwtSecret)
	const key = "the-examples-api-key"
	h := harness.Start(t, `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
	}
	push_hub /jwt {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET}
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
		key `+key+`
	}
}`)
	api := h.API().WithKey(key)
	bin := buildExamples(t)

	for _, p := range []struct {
		name  string
		tools []string // the first one found runs the file
		hint  string
		file  string
	}{
		{"curl", []string{"curl"}, "apt-get install curl", "push.sh"},
		{"PHP", []string{"php"}, "apt-get install php-cli", "push.php"},
		{"Python", []string{"python3"}, "apt-get install python3", "push.py"},
		{"Node.js", []string{"node", "nodejs"}, "apt-get install nodejs", "push.mjs"},
		{"Go", nil, "", ""},
	} {
		t.Run("push with "+p.name, func(t *testing.T) {
			var argv []string
			switch {
			case p.name == "curl":
				testenv.LookPath(t, p.tools, p.hint)
				argv = []string{"sh", filepath.Join("examples", p.file)}
			case p.tools != nil:
				argv = []string{testenv.LookPath(t, p.tools, p.hint), filepath.Join("examples", p.file)}
			default:
				argv = []string{filepath.Join(bin, "push")}
			}
			uid := "pushed-by-" + p.name
			c := harness.LoggedIn(t, h.WS+"/ws", uid)
			message := `hello from ` + p.name + `: "quoted", back\slash, ünïcode, a:colon`
			env := []string{"PUSH_API_URL=" + api.URL, "PUSH_API_KEY=" + key}
			out, err := runExample(t, env, append(argv, uid, message)...)
			if err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
			}
			// The data arrives as the same string, however the program escaped it.
			var got string
			if f := c.ExpectType("message"); json.Unmarshal(f.Data, &got) != nil || got != message {
				t.Errorf("got %s, want the message %q", f.Raw, message)
			}
			var receipt harness.Receipt
			if err := harness.StrictJSON(string(out), &receipt); err != nil || receipt.Delivered != 1 {
				t.Errorf("it printed %q (%v), want the receipt of one delivery", out, err)
			}

			env[1] = "PUSH_API_KEY=not-the-key"
			if out, err := runExample(t, env, append(argv, uid, "never")...); err == nil {
				t.Errorf("with a wrong key it succeeded: %s", out)
			} else if !strings.Contains(string(out), "unauthorized") {
				t.Errorf("with a wrong key it said %q, want the API's error", out)
			}
			c.StillOpen() // and nothing was delivered
		})
	}

	token := harness.Token(t, jwt.SigningMethodHS256, []byte(jwtSecret), harness.Claims("py-receiver"))
	for _, r := range []struct {
		name, uid string
		argv      func(t *testing.T) []string
		env       []string
	}{
		{"Go", "go-receiver", func(t *testing.T) []string {
			return []string{filepath.Join(bin, "receive"), h.WS + "/ws", "go-receiver"}
		}, nil},
		{"Python", "py-receiver", func(t *testing.T) []string {
			return []string{testenv.LookPath(t, []string{"python3"}, "apt-get install python3"), "examples/receive.py", h.WS + "/jwt"}
		}, []string{"PUSH_TOKEN=" + token}},
	} {
		t.Run("receive with "+r.name, func(t *testing.T) {
			lines, done := startExample(t, r.env, r.argv(t)...)
			expectLine(t, lines, "logged in as "+r.uid)
			for _, data := range []string{`"hello"`, `{"n":1,"text":"ünïcode","list":[1,2]}`} {
				if rc := api.Send(t, `{"uid":"`+r.uid+`","data":`+data+`}`); rc.Delivered != 1 {
					t.Fatalf("push to %s: %+v, want delivered to 1", r.uid, rc)
				}
				expectLine(t, lines, data)
			}
			api.Post(t, "/kick", `{"uid":"`+r.uid+`","reason":"test over"}`)
			select {
			case <-done:
			case <-time.After(harness.Guard):
				t.Fatal("the receiver is still running after it was kicked")
			}
		})
	}
}

// buildExamples builds the Go examples into a directory of the test.
func buildExamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./examples/push", "./examples/receive").CombinedOutput()
	if err != nil {
		t.Fatalf("building the Go examples: %v\n%s", err, out)
	}
	return dir
}

// exampleEnv is the environment of an example: this process's, without
// proxies (every address is local), and env.
func exampleEnv(env []string) []string {
	return append(os.Environ(), append([]string{"http_proxy=", "https_proxy=", "HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY=*"}, env...)...)
}

// runExample runs an example to its end and returns what it printed:
// standard output, then standard error.
func runExample(t *testing.T, env []string, argv ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.Guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = exampleEnv(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return append(stdout.Bytes(), stderr.Bytes()...), err
}

// startExample starts a long-running example and hands over the lines it
// prints; done closes when it exits. It is killed when the test ends.
func startExample(t *testing.T, env []string, argv ...string) (lines <-chan string, done <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = exampleEnv(env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	ch, exited := make(chan string, 100), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			ch <- sc.Text()
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s wrote to standard error:\n%s", argv[0], stderr.String())
		}
	})
	return ch, exited
}

// expectLine asserts that the next line printed is want.
func expectLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	select {
	case got := <-lines:
		if got != want {
			t.Fatalf("printed %q, want %q", got, want)
		}
	case <-time.After(harness.Guard):
		t.Fatalf("nothing printed within %s, want %q", harness.Guard, want)
	}
}
