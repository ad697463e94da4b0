package pushhub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/pushhub/caddy-pushhub/internal/harness"
	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// browserConfig serves www/ and a json push_hub on the WebSocket site and
// the push API on its own site.
const browserConfig = `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		protocol json
		auth first_message
		allow_client_publish
		allow_client_groups
	}
	root * %q
	file_server
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`

// browserEntry is a message as the demo page lists it in #log.
type browserEntry struct {
	Seq   string `json:"seq"`
	From  string `json:"from"`
	Group string `json:"group"`
	Text  string `json:"text"`
}

// TestBrowserDemo drives the demo page (www/index.html and www/pushhub.js)
// in a real headless Chromium against a real Caddy: log in, receive pushes
// from the HTTP API, send to another tab, join a group, and survive a
// dropped connection.
func TestBrowserDemo(t *testing.T) {
	chromium, www := browserNeeds(t)

	h := harness.Start(t, fmt.Sprintf(browserConfig, www))
	api := h.API()

	alice, aliceConsole := browserStart(t, chromium)

	// The page loads with its script and stylesheet.
	page := h.HTTP + "/?api=" + api.URL
	if err := chromedp.Do(alice, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	title, err := chromedp.Run(alice, chromedp.Title())
	if err != nil || title != "caddy-pushhub demo" {
		t.Fatalf("title = %q, %v", title, err)
	}
	browserWait(t, alice, "the stylesheet", `getComputedStyle(document.querySelector("header")).display === "flex"`)

	// Log in as alice by typing the uid and pressing Enter.
	if err := chromedp.Do(alice, chromedp.SendKeys(chromedp.ID("uid"), "alice\r")); err != nil {
		t.Fatalf("logging in: %v", err)
	}
	browserWait(t, alice, "alice online", `document.getElementById("status").dataset.state === "online"`)
	if got := browserText(t, alice, "me-uid"); got != "alice" {
		t.Errorf("#me-uid = %q, want alice", got)
	}
	connID := browserText(t, alice, "conn-id")
	if connID == "" || connID == "—" {
		t.Errorf("#conn-id = %q, want a connection id", connID)
	}

	// The curl box shows a working command: run it (as Go) and the push
	// arrives in the page's log.
	curl := browserText(t, alice, "curl")
	wantCurl := `curl -d '{"uid":"alice","data":"hello"}' ` + api.URL + `/send`
	if curl != wantCurl {
		t.Errorf("#curl = %q, want %q", curl, wantCurl)
	}
	m := regexp.MustCompile(`^curl -d '(.*)' (\S+)$`).FindStringSubmatch(curl)
	if m == nil {
		t.Fatalf("cannot parse the curl command %q", curl)
	}
	if n := (harness.API{URL: strings.TrimSuffix(m[2], "/send")}).Send(t, m[1]).Delivered; n != 1 {
		t.Errorf("the curl command delivered to %d connections, want 1", n)
	}
	e := browserWaitMessage(t, alice, "hello")
	if e.Seq != "1" || e.From != "" || e.Group != "" || !strings.Contains(e.Text, "from the API") {
		t.Errorf("API push listed as %+v, want seq 1 from the API", e)
	}
	if n := api.Send(t, `{"uid":"alice","data":{"order":42,"status":"shipped"}}`).Delivered; n != 1 {
		t.Errorf("API push delivered to %d connections, want 1", n)
	}
	if e := browserWaitMessage(t, alice, `{"order":42,"status":"shipped"}`); e.Seq != "2" {
		t.Errorf("second push listed as %+v, want seq 2", e)
	}

	// A second tab logs in as bob and gets what alice's page sends it.
	bob, closeBob := chromedp.NewContext(alice)
	defer closeBob()
	if err := chromedp.Do(bob); err != nil { // opens the tab
		t.Fatalf("opening a second tab: %v", err)
	}
	bobConsole := browserConsole(t, bob)
	if err := chromedp.Do(bob,
		chromedp.Navigate(page),
		chromedp.SetValue(chromedp.ID("uid"), "bob"),
		chromedp.Click(chromedp.ID("login")),
	); err != nil {
		t.Fatalf("logging in bob: %v", err)
	}
	browserWait(t, bob, "bob online", `document.getElementById("status").dataset.state === "online"`)

	browserSend(t, alice, "to", "bob", "hi bob, it's alice")
	browserWait(t, alice, "alice's send receipt", `document.getElementById("send-result").dataset.delivered === "1"`)
	if e := browserWaitMessage(t, bob, "hi bob, it's alice"); e.From != "alice" || e.Seq != "1" {
		t.Errorf("bob lists alice's message as %+v, want seq 1 from alice", e)
	}

	// Bob sends JSON to everyone: both pages get it.
	browserSend(t, bob, "all", "", `{"hello":"everyone"}`)
	browserWait(t, bob, "bob's broadcast receipt", `document.getElementById("send-result").dataset.delivered === "2"`)
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		if e := browserWaitMessage(t, tab, `{"hello":"everyone"}`); e.From != "bob" {
			t.Errorf("%s lists bob's broadcast as %+v, want it from bob", name, e)
		}
	}

	// Alice joins a group in the page; an API push to the group reaches her
	// alone.
	if err := chromedp.Do(alice,
		chromedp.SetValue(chromedp.ID("group"), "news"),
		chromedp.Click(chromedp.ID("join")),
	); err != nil {
		t.Fatalf("joining a group: %v", err)
	}
	browserWait(t, alice, "the group chip", `document.querySelector('#groups li[data-group="news"]') !== null`)
	if got := browserText(t, alice, "curl-groups"); !strings.Contains(got, `{"group":"news","data":"hello"}`) {
		t.Errorf("#curl-groups = %q, want the group's curl command", got)
	}
	if n := api.Send(t, `{"group":"news","data":"breaking news"}`).Delivered; n != 1 {
		t.Errorf("group push delivered to %d connections, want 1 (alice only)", n)
	}
	e = browserWaitMessage(t, alice, "breaking news")
	if e.Group != "news" || !strings.Contains(e.Text, "in news") {
		t.Errorf("group push listed as %+v, want it in news", e)
	}
	lastSeq := browserText(t, alice, "last-seq")

	shot, err := chromedp.Run(alice, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot: %v", err)
	} else if name := filepath.Join(os.TempDir(), "demo.png"); os.WriteFile(name, shot, 0o644) != nil {
		t.Errorf("cannot save the screenshot to %s", name)
	} else {
		t.Logf("screenshot of the page: %s", name)
	}

	// Drop alice's socket: the client reconnects by itself, logs in with
	// since = the last seq it saw, and joins its group again.
	evCtx, evCancel := context.WithTimeout(alice, 15*time.Second)
	defer evCancel()
	sent := chromedp.Events(evCtx, network.WebSocketFrameSent)
	if err := chromedp.Do(alice, chromedp.Evaluate[chromedp.Void](`demo.hub._ws.close(4000, "test drop")`)); err != nil {
		t.Fatalf("dropping the socket: %v", err)
	}
	browserWait(t, alice, "a new connection",
		fmt.Sprintf(`document.getElementById("status").dataset.state === "online" && document.getElementById("conn-id").textContent !== %q`, connID))
	var login map[string]any
	for ev, err := range sent {
		if err != nil {
			t.Fatalf("no login frame seen after the drop: %v", err)
		}
		var f map[string]any
		if json.Unmarshal(ev.Response.PayloadData, &f) == nil && f["type"] == "login" {
			login = f
			break
		}
	}
	if want, _ := strconv.ParseFloat(lastSeq, 64); login["uid"] != "alice" || login["since"] != want {
		t.Errorf("login frame after the drop = %v, want uid alice since %s", login, lastSeq)
	}
	harness.Eventually(t, "the group rejoined", func() (bool, string) {
		rc := api.Send(t, `{"group":"news","data":"after the drop"}`)
		return rc.Delivered == 1, fmt.Sprintf("%+v", rc)
	})
	browserWaitMessage(t, alice, "after the drop")

	// Bob logs out: the page says so and the hub has no bob any more.
	if err := chromedp.Do(bob, chromedp.Click(chromedp.ID("logout"))); err != nil {
		t.Fatalf("logging out: %v", err)
	}
	browserWait(t, bob, "bob offline", `document.getElementById("status").dataset.state === "offline"`)
	api.WaitOnline(t, "bob", 0)

	for name, c := range map[string]*browserConsoleLog{"alice": aliceConsole, "bob": bobConsole} {
		for _, m := range c.problems() {
			t.Errorf("%s's page: %s", name, m)
		}
	}
}

// TestBrowserResumesAfterReload: pushhub.js keeps its last seq and epoch
// per uid in sessionStorage, so a page that is reloaded and logs in again
// resumes where it was: what was pushed while it was away arrives after the
// welcome, whose resume says the gap was filled. Another connection of the
// uid stays online all along, so the uid has no mailbox: only the position
// the page kept can bring those messages back.
func TestBrowserResumesAfterReload(t *testing.T) {
	chromium, www := browserNeeds(t)
	h := harness.Start(t, fmt.Sprintf(`
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		history 100 1m
	}
	root * %q
	file_server
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`, www))
	api := h.API()
	other := harness.LoggedIn(t, h.WS+"/ws", "carol").StartReader() // carol's other device

	tab, console := browserStart(t, chromium)
	page := h.HTTP + "/?api=" + api.URL
	loginCarol := func() {
		t.Helper()
		if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.ID("login")), chromedp.SendKeys(chromedp.ID("uid"), "carol\r")); err != nil {
			t.Fatalf("logging in: %v", err)
		}
		browserWait(t, tab, "carol online", `document.getElementById("status").dataset.state === "online"`)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(page)); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	loginCarol()
	if n := api.Send(t, `{"uid":"carol","data":"before the reload"}`).Delivered; n != 2 {
		t.Fatalf("push delivered to %d connections, want 2", n)
	}
	other.ExpectMessage(t, `"before the reload"`)
	if e := browserWaitMessage(t, tab, "before the reload"); e.Seq != "1" {
		t.Fatalf("the page lists the push as %+v, want seq 1", e)
	}
	epoch, err := chromedp.Run(tab, chromedp.Evaluate[string](`demo.hub.epoch`))
	if err != nil || epoch == "" {
		t.Fatalf("the client's epoch: %q, %v", epoch, err)
	}

	// Reload the page; push while it is away.
	evCtx, evCancel := context.WithTimeout(tab, 30*time.Second)
	defer evCancel()
	sent := chromedp.Events(evCtx, network.WebSocketFrameSent)
	received := chromedp.Events(evCtx, network.WebSocketFrameReceived)
	if err := chromedp.Do(tab, chromedp.Reload()); err != nil {
		t.Fatalf("reloading the page: %v", err)
	}
	api.WaitOnline(t, "carol", 1)
	for _, data := range []string{"while away 1", "while away 2"} {
		if rc := api.Send(t, `{"uid":"carol","data":"`+data+`"}`); rc.Delivered != 1 || !rc.Stored {
			t.Fatalf("push while the page was away: receipt %+v, want the other device reached and the message stored", rc)
		}
		other.ExpectMessage(t, harness.JSON(data))
	}

	// Log in again: the login carries the position kept, the welcome says
	// the gap was filled, and the missed messages follow.
	loginCarol()
	var login map[string]any
	for ev, err := range sent {
		if err != nil {
			t.Fatalf("no login frame seen after the reload: %v", err)
		}
		if json.Unmarshal(ev.Response.PayloadData, &login) == nil && login["type"] == "login" {
			break
		}
	}
	if login["uid"] != "carol" || login["since"] != 1.0 || login["epoch"] != epoch {
		t.Fatalf("login frame after the reload = %v, want uid carol, since 1, epoch %q", login, epoch)
	}
	for ev, err := range received {
		if err != nil {
			t.Fatalf("no welcome seen after the reload: %v", err)
		}
		w, err := harness.DecodeFrame([]byte(ev.Response.PayloadData))
		if err != nil || w.Type != "welcome" {
			continue
		}
		if want := harness.WelcomeJSON(w, "carol", 3, `{"since":1,"recovered":true,"replayed":2}`); w.Raw != want || w.Epoch != epoch {
			t.Fatalf("welcome after the reload\n\t%s\nwant\n\t%s", w.Raw, want)
		}
		break
	}
	for i, data := range []string{"while away 1", "while away 2"} {
		if e := browserWaitMessage(t, tab, data); e.Seq != strconv.Itoa(i+2) {
			t.Errorf("the page lists %q as %+v, want seq %d", data, e, i+2)
		}
	}
	api.Send(t, `{"uid":"carol","data":"after the reload"}`)
	if e := browserWaitMessage(t, tab, "after the reload"); e.Seq != "4" {
		t.Errorf("the page lists the next push as %+v, want seq 4", e)
	}
	if got := browserText(t, tab, "last-seq"); got != "4" {
		t.Errorf("#last-seq = %q, want 4", got)
	}
	for _, m := range console.problems() {
		t.Errorf("the page: %s", m)
	}
}

// browserNeeds finds Chromium (the test skips without it) and the absolute
// path of www/, which the tests' configs serve.
func browserNeeds(t *testing.T) (chromium, www string) {
	t.Helper()
	chromium = testenv.LookPath(t, []string{"chromium", "chromium-browser", "google-chrome"}, "apt-get install chromium")
	www, err := filepath.Abs("www")
	if err != nil {
		t.Fatal(err)
	}
	return chromium, www
}

// browserStart launches a headless Chromium with a fresh profile, for two
// minutes at most, and returns the context of its first tab and the log of
// that tab's console. When the test ends, the browser is closed and waited
// for.
func browserStart(t *testing.T, execPath string) (context.Context, *browserConsoleLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancel()
	})
	if err := chromedp.Do(tab); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", execPath, err)
	}
	return tab, browserConsole(t, tab)
}

// browserConsoleLog collects what a tab writes to its console.
type browserConsoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

// browserConsole starts collecting the console of tab until its context ends.
func browserConsole(t *testing.T, tab context.Context) *browserConsoleLog {
	t.Helper()
	c := new(browserConsoleLog)
	msgs := chromedp.Console(tab)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	return c
}

// problems lists the exceptions and errors the page reported.
func (c *browserConsoleLog) problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.IsException() || m.Type == chromedp.ConsoleError {
			out = append(out, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
		}
	}
	return out
}

// browserWait waits until the JavaScript expression is truthy in tab.
func browserWait(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	err := chromedp.Do(tab, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// browserWaitMessage waits until the page's log lists a message whose data
// reads text, and returns the entry.
func browserWaitMessage(t *testing.T, tab context.Context, text string) browserEntry {
	t.Helper()
	e, err := chromedp.Run(tab, chromedp.PollFunction[browserEntry](`(text) => {
		const li = [...document.querySelectorAll("#log li.msg")]
			.find((li) => li.querySelector(".data").textContent === text);
		return li && { seq: li.dataset.seq, from: li.dataset.from, group: li.dataset.group, text: li.textContent };
	}`, chromedp.WithPollingArgs(text),
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Fatalf("waiting for the message %q in the page: %v", text, err)
	}
	return e
}

// browserText returns the text of the element with the id.
func browserText(t *testing.T, tab context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.TextContent(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("reading #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

// browserSend fills in the page's send form and submits it.
func browserSend(t *testing.T, tab context.Context, kind, to, data string) {
	t.Helper()
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.WaitEnabled(chromedp.ID("send")),
		chromedp.Evaluate[chromedp.Void](`delete document.getElementById("send-result").dataset.delivered`),
		chromedp.SetValue(chromedp.ID("send-kind"), kind),
	}
	if to != "" { // SetValue refuses ""
		steps = append(steps, chromedp.SetValue(chromedp.ID("send-to"), to))
	}
	steps = append(steps,
		chromedp.SetValue(chromedp.ID("send-data"), data),
		chromedp.Click(chromedp.ID("send")),
	)
	err := chromedp.Do(tab, steps...)
	if err != nil {
		t.Fatalf("sending %q from the page: %v", data, err)
	}
}

// eventSourceConfig serves www/ and, on the same path as WebSockets, event
// streams with history, so that a reconnecting EventSource resumes.
const eventSourceConfig = `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		history 100 2m
		events %s/events
	}
	root * %q
	file_server
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`

// TestBrowserEventSource: the browser's own EventSource, in the demo
// page's origin, listens on push_hub's path and gets pushes whose
// lastEventId is the seq; when the stream ends (here: kicked), the browser
// reconnects by itself with Last-Event-ID, and the hub replays what was
// pushed meanwhile. And pushhub.js's app() reaches the application.
func TestBrowserEventSource(t *testing.T) {
	chromium, www := browserNeeds(t)
	app := harness.StartApp(t, "")
	h := harness.Start(t, fmt.Sprintf(eventSourceConfig, app.URL, www))
	api := h.API()

	tab, console := browserStart(t, chromium)
	if err := chromedp.Do(tab, chromedp.Navigate(h.HTTP+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](`
		window.es = { welcomes: [], messages: [], closes: [] };
		const source = new EventSource("/ws?uid=listener");
		source.addEventListener("welcome", (e) => es.welcomes.push(JSON.parse(e.data)));
		source.addEventListener("message", (e) => es.messages.push({ id: e.lastEventId, frame: JSON.parse(e.data) }));
		source.addEventListener("close", (e) => es.closes.push(JSON.parse(e.data)));
	`))
	if err != nil {
		t.Fatalf("opening an EventSource: %v", err)
	}
	browserWait(t, tab, "the welcome", `es.welcomes.length === 1 && es.welcomes[0].uid === "listener"`)
	api.WaitOnline(t, "listener", 1)

	for _, d := range []string{`"one"`, `{"two":2}`} {
		api.Post(t, "/send", `{"uid":"listener","data":`+d+`}`).ExpectJSON(http.StatusOK, `{"delivered":1,"dropped":0,"stored":true}`)
	}
	browserWait(t, tab, "two messages", `es.messages.length === 2`)

	// Kicked: the stream ends with a close event; the EventSource comes
	// back by itself, with Last-Event-ID: 2.
	api.Post(t, "/kick", `{"uid":"listener","reason":"reconnect, please"}`).ExpectJSON(http.StatusOK, `{"closed":1,"uid":"listener"}`)
	browserWait(t, tab, "the close event", `es.closes.length === 1 && es.closes[0].close_code === 4005`)
	api.WaitOnline(t, "listener", 0)
	for _, d := range []string{`"three"`, `"four"`} {
		if rc := api.Send(t, `{"uid":"listener","data":`+d+`}`); rc.Delivered != 0 || !rc.Stored {
			t.Fatalf("push while the browser is away: %+v, want stored for it", rc)
		}
	}
	browserWait(t, tab, "the EventSource back", `es.welcomes.length === 2`)
	browserWait(t, tab, "what was missed", `es.messages.length === 4`)
	api.Send(t, `{"uid":"listener","data":"five"}`)
	browserWait(t, tab, "a new message", `es.messages.length === 5`)

	type pageMessage struct {
		ID    string          `json:"id"`
		Frame json.RawMessage `json:"frame"`
	}
	type pageState struct {
		Welcomes []map[string]any `json:"welcomes"`
		Messages []pageMessage    `json:"messages"`
	}
	got, err := chromedp.Run(tab, chromedp.Evaluate[pageState](`es`))
	if err != nil {
		t.Fatalf("reading what the page got: %v", err)
	}
	if r, _ := json.Marshal(got.Welcomes[1]["resume"]); string(r) != `{"recovered":true,"replayed":2,"since":2}` {
		t.Errorf("the second welcome's resume = %s, want 2 replayed since 2 (the Last-Event-ID)", r)
	}
	for i, want := range []string{`"one"`, `{"two":2}`, `"three"`, `"four"`, `"five"`} {
		m := got.Messages[i]
		wantFrame := fmt.Sprintf(`{"type":"message","seq":%d,"data":%s}`, i+1, want)
		if m.ID != strconv.Itoa(i+1) || string(m.Frame) != wantFrame {
			t.Errorf("message %d: id %q %s, want id %d %s", i, m.ID, m.Frame, i+1, wantFrame)
		}
	}

	// pushhub.js in the same page sends to the application: app() is
	// settled by the hub's "queued", and the application gets the data.
	answer, err := chromedp.Run(tab, chromedp.Evaluate[string](`(async () => {
		const { PushHub } = await import("/pushhub.js");
		const hub = new PushHub("ws://" + location.host + "/ws", { uid: "app-user", storage: null });
		await new Promise((resolve) => hub.on("welcome", resolve));
		await hub.app({ from: "the page" });
		hub.close();
		return "queued";
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || answer != "queued" {
		t.Fatalf("app() from the page: %q, %v", answer, err)
	}
	app.WaitEvent(t, "the page's app message", func(e harness.AppEvent) bool {
		return e.Kind == "message" && e.UID == "app-user" && string(e.Data) == `{"from":"the page"}`
	})
	for _, m := range console.problems() {
		t.Errorf("the page: %s", m)
	}
}
