package pushhub_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// Operations: metrics on Caddy's admin endpoint, access logs that keep
// tokens out, and the push API behind another proxy.

// scrape reads Caddy's /metrics and returns the value of name for hub.
func scrape(t *testing.T, h *harness.Caddy, name, hub string) (float64, bool) {
	t.Helper()
	r := harness.API{URL: fmt.Sprintf("http://localhost:%d", h.AdminPort)}.Get(t, "/metrics")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d", r.Status)
	}
	prefix := name + `{hub="` + hub + `"} `
	sc := bufio.NewScanner(strings.NewReader(r.Body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestMetricsEvents scrapes a running Caddy and watches the events series
// move as the application takes events, is down, and is too slow for the
// queue.
func TestMetricsEvents(t *testing.T) {
	app := harness.StartApp(t, appSecret)
	h := harness.Start(t, harness.OneHub(fmt.Sprintf(
		"events %s/events {\n\t\t\tsecret %s\n\t\t\tkinds login\n\t\t\tqueue_size 1\n\t\t\tretries 1\n\t\t\ttimeout 10s\n\t\t}", app.URL, appSecret)))
	hub := h.Hub("HUB")
	expect := func(sent, failed, dropped float64) {
		t.Helper()
		harness.Eventually(t, fmt.Sprintf("events sent %v, failed %v, dropped %v on /metrics", sent, failed, dropped), func() (bool, string) {
			s, ok1 := scrape(t, h, "caddy_pushhub_events_sent_total", hub)
			f, ok2 := scrape(t, h, "caddy_pushhub_events_failed_total", hub)
			d, ok3 := scrape(t, h, "caddy_pushhub_events_dropped_total", hub)
			return ok1 && ok2 && ok3 && s == sent && f == failed && d == dropped,
				fmt.Sprintf("sent %v (%t), failed %v (%t), dropped %v (%t)", s, ok1, f, ok2, d, ok3)
		})
	}
	expect(0, 0, 0)
	harness.LoggedIn(t, h.WS+"/ws", "a")
	expect(1, 0, 0)
	app.Stop()
	harness.LoggedIn(t, h.WS+"/ws", "b")
	expect(1, 1, 0)
	app.Restart()
	release := app.Hold()
	posted := app.Arrived("/events")
	harness.LoggedIn(t, h.WS+"/ws", "c")
	harness.Eventually(t, "c's login POSTed", func() (bool, string) {
		return app.Arrived("/events") == posted+1, fmt.Sprint(app.Arrived("/events"))
	})
	for _, uid := range []string{"d", "e", "f"} { // d waits in the queue; e and f do not fit
		harness.LoggedIn(t, h.WS+"/ws", uid)
	}
	expect(1, 1, 2)
	release()
	expect(3, 1, 2)
}

// TestAccessLogRedactsToken: a token in the URL is written to the access
// log unless the log's filter redacts it; the README's log config does, for
// WebSocket upgrades and event streams alike. A site without it, in the
// same config, shows what it prevents.
func TestAccessLogRedactsToken(t *testing.T) {
	t.Setenv("PUSH_JWT_SECRET", jwtSecret)
	dir := t.TempDir()
	redacted, plain := filepath.Join(dir, "redacted.log"), filepath.Join(dir, "plain.log")
	h := harness.InProcess(t)
	unfiltered := fmt.Sprintf("http://localhost:%d", h.Spare(0))
	h.Load(fmt.Sprintf(`
{$WS_SITE} {
	log {
		output file %q
		format filter {
			request>uri query {
				replace token REDACTED
			}
		}
	}
	push_hub /ws {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET}
	}
}

%s {
	log {
		output file %q
	}
	push_hub /ws {
		hub {$HUB}
		auth jwt {env.PUSH_JWT_SECRET}
	}
}
`, redacted, unfiltered, plain))
	token := harness.Token(t, jwt.SigningMethodHS256, []byte(jwtSecret), harness.Claims("logged"))

	harness.Dial(t, "WebSocket", h.WS+"/ws?token="+token, nil).ExpectWelcome("logged")
	s := harness.OpenStream(t, "event stream", harness.HTTPClient(t, false), h.HTTP+"/ws?token="+token+"&since=0", nil)
	s.ExpectWelcome(t, "logged")
	s.Close()
	harness.Dial(t, "WebSocket (unfiltered)", strings.Replace(unfiltered, "http", "ws", 1)+"/ws?token="+token, nil).ExpectWelcome("logged")

	read := func(file string, entries int) string {
		var b []byte
		harness.Eventually(t, fmt.Sprintf("%d entries in %s", entries, filepath.Base(file)), func() (bool, string) {
			b, _ = os.ReadFile(file)
			return strings.Count(string(b), "\n") >= entries, string(b)
		})
		return string(b)
	}
	if log := read(plain, 1); !strings.Contains(log, token) {
		t.Fatalf("the unfiltered access log lacks the token, so this test proves nothing:\n%s", log)
	}
	log := read(redacted, 2)
	if strings.Contains(log, token) {
		t.Fatalf("the token is in the access log:\n%s", log)
	}
	if n := strings.Count(log, `token=REDACTED`); n != 2 {
		t.Errorf("%d entries with a redacted token, want 2 (the upgrade and the stream):\n%s", n, log)
	}
	if !strings.Contains(log, "since=0") {
		t.Errorf("the other query parameters should stay:\n%s", log)
	}
}

// TestAPIBehindProxy: without a key, push_api serves loopback callers
// only, judging by the connection's address; behind a proxy on the same
// machine every caller is loopback. The README's remedies hold: a
// client_ip guard with trusted_proxies refuses callers the proxy vouches
// are outside, and a key refuses anyone without it.
func TestAPIBehindProxy(t *testing.T) {
	h := harness.InProcess(t)
	guarded := fmt.Sprintf("http://localhost:%d", h.Spare(0))
	keyed := fmt.Sprintf("http://localhost:%d", h.Spare(1))
	h.LoadWithOptions(`	servers {
		trusted_proxies static 127.0.0.1/8 ::1
	}`, fmt.Sprintf(`
{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}

%s {
	@outside not client_ip private_ranges
	handle @outside {
		respond "push_api serves internal callers only" 403
	}
	handle {
		push_api {
			hub {$HUB}
		}
	}
}

%s {
	push_api {
		hub {$HUB}
		key the-api-key
	}
}
`, guarded, keyed))
	outside := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	inside := http.Header{"X-Forwarded-For": {"10.1.2.3"}}

	// The hole: a proxy's caller from outside passes as loopback.
	if r := h.API().Do(t, http.MethodGet, "/stats", "", outside); r.Status != http.StatusOK {
		t.Errorf("plain push_api: HTTP %d; this test expects the hole it documents", r.Status)
	}
	// The client_ip guard.
	g := harness.API{URL: guarded}
	if r := g.Do(t, http.MethodGet, "/stats", "", outside); r.Status != http.StatusForbidden {
		t.Errorf("guarded, a caller from outside: HTTP %d, want 403", r.Status)
	}
	for name, hdr := range map[string]http.Header{"the proxy's internal caller": inside, "a local caller": nil} {
		if r := g.Do(t, http.MethodGet, "/stats", "", hdr); r.Status != http.StatusOK {
			t.Errorf("guarded, %s: HTTP %d, want 200", name, r.Status)
		}
	}
	// The key: nobody without it, wherever they come from.
	k := harness.API{URL: keyed}
	k.Do(t, http.MethodGet, "/stats", "", inside).ExpectError(http.StatusUnauthorized, "unauthorized")
	if r := k.WithKey("the-api-key").Do(t, http.MethodGet, "/stats", "", outside); r.Status != http.StatusOK {
		t.Errorf("keyed, with the key: HTTP %d, want 200", r.Status)
	}
}
