package pushapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/harness"
	"github.com/pushhub/caddy-pushhub/pushapi"
)

// The client against a real Caddy with push_hub and push_api (the
// module's harness), and real WebSocket clients that receive what it
// pushes.

const key = "pushapi-test-key-0123456789"

// config is a json push_hub at /ws, a page that is not the API at
// /not-the-api/ (a proxy's error page), and push_api with a key under
// /push/ on the API site.
const config = `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		allow_client_groups
	}
	respond /not-the-api/* "<html><body><h1>502 Bad Gateway</h1></body></html>" 502
}

{$API_SITE} {
	handle_path /push/* {
		push_api {
			hub {$HUB}
			key ` + key + `
		}
	}
}`

// start starts Caddy with config and returns it and a client of its API,
// whose requests are counted.
func start(t *testing.T) (*harness.Caddy, *pushapi.Client, *counter) {
	t.Helper()
	h := harness.Start(t, config)
	c, n := newClient(t, h.API().URL+"/push")
	return h, c, n
}

// counter counts the requests of a client (attempts, retries included),
// and those whose body carries an idempotency key.
type counter struct {
	rt       http.RoundTripper
	requests atomic.Int64
	keyed    atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	if r.GetBody != nil {
		if b, err := r.GetBody(); err == nil {
			body, _ := io.ReadAll(b)
			if bytes.Contains(body, []byte(`"idempotency_key"`)) {
				c.keyed.Add(1)
			}
		}
	}
	return c.rt.RoundTrip(r)
}

// newClient is a client of the API at base with the key, whose requests go
// through a counter.
func newClient(t *testing.T, base string) (*pushapi.Client, *counter) {
	t.Helper()
	tr := pushapi.NewTransport(16)
	t.Cleanup(tr.CloseIdleConnections)
	n := &counter{rt: tr}
	return pushapi.New(base, key, &http.Client{Transport: n, Timeout: harness.Guard}), n
}

// TestSend: each of the client's sends reaches the connections it names,
// with the receipt the API gave and the data as it was given.
func TestSend(t *testing.T) {
	h, c, _ := start(t)
	ctx := context.Background()
	a := harness.LoggedIn(t, h.WS+"/ws", "a")
	b := harness.LoggedIn(t, h.WS+"/ws", "b")
	d := harness.LoggedIn(t, h.WS+"/ws", "d")
	receipt := func(n int) pushapi.SendReceipt { return pushapi.SendReceipt{Delivered: n} }
	for _, tc := range []struct {
		name string
		send func() (pushapi.SendReceipt, error)
		want pushapi.SendReceipt
		got  map[*harness.Conn]string
	}{
		{"SendUID", func() (pushapi.SendReceipt, error) { return c.SendUID(ctx, "a", "hi") },
			receipt(1), map[*harness.Conn]string{a: `{"type":"message","seq":1,"data":"hi"}`}},
		{"SendUIDs", func() (pushapi.SendReceipt, error) { return c.SendUIDs(ctx, []string{"a", "b", "ghost"}, 7) },
			receipt(2), map[*harness.Conn]string{a: `{"type":"message","seq":2,"data":7}`, b: `{"type":"message","seq":1,"data":7}`}},
		{"SendGroup", func() (pushapi.SendReceipt, error) {
			if err := c.Join(ctx, "b", "g"); err != nil {
				return pushapi.SendReceipt{}, err
			}
			return c.SendGroup(ctx, "g", map[string]int{"x": 1})
		}, receipt(1), map[*harness.Conn]string{b: `{"type":"message","seq":2,"data":{"x":1},"group":"g"}`}},
		{"Broadcast", func() (pushapi.SendReceipt, error) { return c.Broadcast(ctx, json.RawMessage(`[1,"two"]`)) },
			receipt(3), map[*harness.Conn]string{
				a: `{"type":"message","seq":3,"data":[1,"two"]}`,
				b: `{"type":"message","seq":3,"data":[1,"two"]}`,
				d: `{"type":"message","seq":1,"data":[1,"two"]}`,
			}},
		{"Send with Data a struct", func() (pushapi.SendReceipt, error) {
			return c.Send(ctx, pushapi.SendRequest{UID: "d", Data: struct {
				Order  int    `json:"order"`
				Status string `json:"status"`
			}{1234, "shipped"}})
		}, receipt(1), map[*harness.Conn]string{d: `{"type":"message","seq":2,"data":{"order":1234,"status":"shipped"}}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := tc.send()
			if err != nil || rc != tc.want {
				t.Fatalf("receipt %+v, %v; want %+v", rc, err, tc.want)
			}
			for conn, frame := range tc.got {
				conn.Expect(frame)
			}
		})
	}
}

// TestSendWaitAck: WaitAck waits for the json connections to acknowledge;
// the receipt counts those that did; without it, Acked is nil.
func TestSendWaitAck(t *testing.T) {
	h, c, _ := start(t)
	ctx := context.Background()
	acker := harness.LoggedIn(t, h.WS+"/ws", "acker")
	acked := make(chan error, 1)
	go func() {
		f, err := readFrame(acker)
		if err == nil {
			err = acker.WriteJSON(map[string]any{"type": "ack", "seq": f.Seq})
		}
		acked <- err
	}()
	rc, err := c.Send(ctx, pushapi.SendRequest{UID: "acker", Data: "please ack", WaitAck: 5 * time.Second})
	if err != nil || rc.Delivered != 1 || rc.Acked == nil || *rc.Acked != 1 {
		t.Fatalf("send with WaitAck: %+v, %v; want delivered 1, acked 1", rc, err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	rc, err = c.SendUID(ctx, "acker", "no wait")
	if err != nil || rc.Acked != nil {
		t.Fatalf("send without WaitAck: %+v, %v; want no acked", rc, err)
	}
	acker.ExpectMessage(`"no wait"`)
}

func readFrame(c *harness.Conn) (harness.Frame, error) {
	_ = c.SetReadDeadline(time.Now().Add(harness.Guard))
	_, b, err := c.ReadMessage()
	if err != nil {
		return harness.Frame{}, err
	}
	return harness.DecodeFrame(b)
}

// TestSendIdempotencyKey: a Send that repeats an idempotency key delivers
// nothing again and returns the first receipt, marked Duplicate; Sends
// without a key each get one of their own.
func TestSendIdempotencyKey(t *testing.T) {
	h, c, _ := start(t)
	ctx := context.Background()
	u := harness.LoggedIn(t, h.WS+"/ws", "u")
	first, err := c.Send(ctx, pushapi.SendRequest{UID: "u", Data: "once", IdempotencyKey: "order-1234"})
	if err != nil || first != (pushapi.SendReceipt{Delivered: 1}) {
		t.Fatalf("first send: %+v, %v", first, err)
	}
	u.ExpectMessage(`"once"`)
	harness.LoggedIn(t, h.WS+"/ws", "u") // a repeat delivered now would reach 2
	again, err := c.Send(ctx, pushapi.SendRequest{UID: "u", Data: "once", IdempotencyKey: "order-1234"})
	if err != nil || again != (pushapi.SendReceipt{Delivered: 1, Duplicate: true}) {
		t.Fatalf("repeat: %+v, %v; want the first receipt, Duplicate", again, err)
	}
	for i := range 2 {
		rc, err := c.SendUID(ctx, "u", i)
		if err != nil || rc != (pushapi.SendReceipt{Delivered: 2}) {
			t.Fatalf("send %d without a key: %+v, %v; want delivered to both connections", i, rc, err)
		}
		u.ExpectMessage(fmt.Sprint(i))
	}
}

// TestMembershipKickOnline: Join, Leave, Kick and Online, with what the API
// answers.
func TestMembershipKickOnline(t *testing.T) {
	h, c, _ := start(t)
	ctx := context.Background()
	a1 := harness.LoggedIn(t, h.WS+"/ws", "a")
	a2 := harness.LoggedIn(t, h.WS+"/ws", "a")
	if err := c.Join(ctx, "a", "g"); err != nil {
		t.Fatal(err)
	}
	if page, err := c.UIDs(ctx, pushapi.UIDsQuery{Group: "g"}); err != nil || !slices.Equal(page.UIDs, []string{"a"}) || page.Group != "g" {
		t.Fatalf("members of g: %+v, %v", page, err)
	}
	if was, err := c.Leave(ctx, "a", "g"); err != nil || !was {
		t.Fatalf("leave: %v, %v; want was_member", was, err)
	}
	if was, err := c.Leave(ctx, "a", "g"); err != nil || was {
		t.Fatalf("leave again: %v, %v; want not a member", was, err)
	}
	on, err := c.Online(ctx, "a")
	if err != nil || on != (pushapi.Online{UID: "a", Online: true, Connections: 2}) {
		t.Fatalf("online: %+v, %v", on, err)
	}
	if n, err := c.Kick(ctx, "a", "account closed"); err != nil || n != 2 {
		t.Fatalf("kick: %d, %v; want 2", n, err)
	}
	for _, k := range []*harness.Conn{a1, a2} {
		k.ExpectError("kicked", "")
		if reason := k.ExpectClose(4005); reason != "account closed" {
			t.Fatalf("%s: kick reason %q", k.Name, reason)
		}
	}
	harness.Eventually(t, "a offline after the kick", func() (bool, string) {
		on, err := c.Online(ctx, "a")
		return err == nil && on == (pushapi.Online{UID: "a"}), fmt.Sprintf("%+v, %v", on, err)
	})
	if n, err := c.Kick(ctx, "nobody", ""); err != nil || n != 0 {
		t.Fatalf("kick of nobody: %d, %v", n, err)
	}
}

// TestUIDsAndStats: UIDs pages through the online uids, AllUIDs follows the
// pages, Stats reads the hub's counters.
func TestUIDsAndStats(t *testing.T) {
	h, c, _ := start(t)
	ctx := context.Background()
	for _, uid := range []string{"e", "c", "a", "d", "b"} {
		harness.LoggedIn(t, h.WS+"/ws", uid)
	}
	page, err := c.UIDs(ctx, pushapi.UIDsQuery{Limit: 2})
	if err != nil || !slices.Equal(page.UIDs, []string{"a", "b"}) || page.Next != "b" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	page, err = c.UIDs(ctx, pushapi.UIDsQuery{After: page.Next, Limit: 2})
	if err != nil || !slices.Equal(page.UIDs, []string{"c", "d"}) || page.Next != "d" {
		t.Fatalf("second page: %+v, %v", page, err)
	}
	page, err = c.UIDs(ctx, pushapi.UIDsQuery{After: page.Next})
	if err != nil || !slices.Equal(page.UIDs, []string{"e"}) || page.Next != "" {
		t.Fatalf("last page: %+v, %v", page, err)
	}
	for _, limit := range []int{2, 0} {
		if all, err := c.AllUIDs(ctx, "", limit); err != nil || !slices.Equal(all, []string{"a", "b", "c", "d", "e"}) {
			t.Fatalf("AllUIDs with pages of %d: %v, %v", limit, all, err)
		}
	}
	if err := c.Join(ctx, "c", "g"); err != nil {
		t.Fatal(err)
	}
	if all, err := c.AllUIDs(ctx, "g", 1); err != nil || !slices.Equal(all, []string{"c"}) {
		t.Fatalf("AllUIDs of g: %v, %v", all, err)
	}
	if _, err := c.SendUID(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.Hub != h.Hub("HUB") || st.Connections != 5 || st.UIDs != 5 || st.Groups != 1 ||
		st.Pushes != 1 || st.MessagesOut != 1 || st.Goroutines <= 0 || st.Cluster != nil {
		t.Fatalf("stats %+v, %v; want the hub's name, 5 connections and uids, 1 group, 1 push", st, err)
	}
}

// TestErrors: a refusal by the API is a *pushapi.Error with its status and
// code, never retried; an answer that is not the API's (a proxy's error
// page) is one without a code, quoting the body.
func TestErrors(t *testing.T) {
	h, c, n := start(t)
	ctx := context.Background()
	harness.LoggedIn(t, h.WS+"/ws", "a")
	for _, tc := range []struct {
		name   string
		call   func(*pushapi.Client) error
		status int
		code   string
	}{
		{"send without data", func(c *pushapi.Client) error { _, err := c.Send(ctx, pushapi.SendRequest{UID: "a"}); return err }, 400, "missing_data"},
		{"send to two targets", func(c *pushapi.Client) error {
			_, err := c.Send(ctx, pushapi.SendRequest{UID: "a", All: true, Data: 1})
			return err
		}, 400, "bad_target"},
		{"send to a uid with a control character", func(c *pushapi.Client) error { _, err := c.SendUID(ctx, "a\x00", 1); return err }, 400, "invalid_uid"},
		{"send with a key too long", func(c *pushapi.Client) error {
			_, err := c.Send(ctx, pushapi.SendRequest{UID: "a", Data: 1, IdempotencyKey: strings.Repeat("k", 257)})
			return err
		}, 400, "bad_idempotency_key"},
		{"join of an offline uid", func(c *pushapi.Client) error { return c.Join(ctx, "nobody", "g") }, 404, "uid_offline"},
		{"online without a uid", func(c *pushapi.Client) error { _, err := c.Online(ctx, ""); return err }, 400, "invalid_uid"},
		{"uids with a limit over 10000", func(c *pushapi.Client) error {
			_, err := c.UIDs(ctx, pushapi.UIDsQuery{Limit: 10001})
			return err
		}, 400, "bad_limit"},
		{"the wrong key", func(*pushapi.Client) error {
			_, err := pushapi.New(h.API().URL+"/push", "not-the-key", nil).Stats(ctx)
			return err
		}, 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := n.requests.Load()
			err := tc.call(c)
			var e *pushapi.Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code || e.Message == "" {
				t.Fatalf("got %#v (%v), want a *pushapi.Error with status %d and code %q", err, err, tc.status, tc.code)
			}
			if want := fmt.Sprintf("push API: %d %s: ", tc.status, tc.code); !strings.HasPrefix(e.Error(), want) {
				t.Fatalf("Error() = %q, want it to start with %q", e.Error(), want)
			}
			if pushapi.IsOffline(err) != (tc.code == "uid_offline") {
				t.Fatalf("IsOffline(%v) = %v", err, pushapi.IsOffline(err))
			}
			if tc.status != 401 {
				if got := n.requests.Load() - before; got != 1 {
					t.Fatalf("%d requests for one refused call, want 1: a refusal is not retried", got)
				}
			}
		})
	}

	t.Run("not the API's answer", func(t *testing.T) {
		_, err := pushapi.New(h.HTTP+"/not-the-api", "", nil).SendUID(ctx, "a", 1)
		var e *pushapi.Error
		if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "" || !strings.Contains(e.Message, "502 Bad Gateway") {
			t.Fatalf("got %#v, want a 502 *pushapi.Error without a code that quotes the body", err)
		}
		if !strings.HasPrefix(e.Error(), "push API: 502 Bad Gateway: ") {
			t.Fatalf("Error() = %q", e.Error())
		}
	})

	t.Run("context canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		before := n.requests.Load()
		if _, err := c.SendUID(cctx, "a", 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if _, err := c.Stats(cctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if got := n.requests.Load() - before; got > 2 {
			t.Fatalf("%d requests with a canceled context: not retried", got)
		}
	})
}

// proxy stands between a client and Caddy's API site, and does to each
// connection it accepts what fault says.
type proxy struct {
	ln       net.Listener
	target   string
	fault    func(n int64) fault // n counts the connections from 1
	accepted atomic.Int64
	wg       sync.WaitGroup
}

type fault int

const (
	pass          fault = iota // carry the connection both ways
	resetAtAccept              // reset it at once: nothing reaches Caddy
	resetAnswer                // carry the request, then reset it when Caddy's answer begins: the call landed
)

func startProxy(t *testing.T, target string, f func(n int64) fault) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, fault: f}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

// URL is the proxy's address by the name localhost, which Caddy's site
// answers to.
func (p *proxy) URL() string {
	return fmt.Sprintf("http://localhost:%d", p.ln.Addr().(*net.TCPAddr).Port)
}

func (p *proxy) serve() {
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	defer func() {
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		conns.Wait()
	}()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		f := p.fault(p.accepted.Add(1))
		if f == resetAtAccept {
			reset(c)
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			reset(c)
			continue
		}
		mu.Lock()
		open = append(open, c, up)
		mu.Unlock()
		conns.Go(func() {
			_, _ = io.Copy(up, c)
			_ = up.Close()
		})
		conns.Go(func() {
			if f == resetAnswer {
				var b [1]byte
				_, _ = up.Read(b[:])
				reset(c)
				return
			}
			_, _ = io.Copy(c, up)
			_ = c.Close()
		})
	}
}

// reset closes c with a TCP reset.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// TestRetry: Send retries a connection error with the same idempotency
// key, so a push lands once: when the connection failed before the request
// reached the API (the retry delivers it), and when it failed after the
// push was made but before its answer came (the retry delivers nothing and
// gets the first receipt). It gives up after Retries more attempts.
func TestRetry(t *testing.T) {
	h := harness.Start(t, config)
	ctx := context.Background()
	u := harness.LoggedIn(t, h.WS+"/ws", "u")
	target := strings.TrimPrefix(h.API().URL, "http://")
	firstOnly := func(f fault) func(int64) fault {
		return func(n int64) fault {
			if n == 1 {
				return f
			}
			return pass
		}
	}

	t.Run("reset before the request reaches the API", func(t *testing.T) {
		p := startProxy(t, target, firstOnly(resetAtAccept))
		c, n := newClient(t, p.URL()+"/push")
		rc, err := c.SendUID(ctx, "u", "after a reset")
		if err != nil || rc != (pushapi.SendReceipt{Delivered: 1}) {
			t.Fatalf("send: %+v, %v; want it delivered by the retry", rc, err)
		}
		u.ExpectMessage(`"after a reset"`)
		if p.accepted.Load() != 2 || n.requests.Load() != 2 || n.keyed.Load() != 2 {
			t.Fatalf("%d connections, %d requests, %d with a key; want 2 of each: the attempt, then the retry with its key", p.accepted.Load(), n.requests.Load(), n.keyed.Load())
		}
	})

	t.Run("reset before the answer of a push that landed", func(t *testing.T) {
		p := startProxy(t, target, firstOnly(resetAnswer))
		c, n := newClient(t, p.URL()+"/push")
		rc, err := c.SendUID(ctx, "u", "landed")
		if err != nil || rc != (pushapi.SendReceipt{Delivered: 1, Duplicate: true}) {
			t.Fatalf("send: %+v, %v; want the first push's receipt, marked Duplicate", rc, err)
		}
		if p.accepted.Load() != 2 || n.requests.Load() != 2 {
			t.Fatalf("%d connections, %d requests; want 2 of each", p.accepted.Load(), n.requests.Load())
		}
		u.ExpectMessage(`"landed"`)
		// Once: the next frame is the next push.
		if _, err := c.SendUID(ctx, "u", "next"); err != nil {
			t.Fatal(err)
		}
		u.ExpectMessage(`"next"`)
	})

	t.Run("no retries", func(t *testing.T) {
		p := startProxy(t, target, firstOnly(resetAtAccept))
		c, n := newClient(t, p.URL()+"/push")
		c.Retries = 0
		if _, err := c.SendUID(ctx, "u", "lost"); err == nil {
			t.Fatal("send through a reset with Retries 0 succeeded, want the connection error")
		}
		if p.accepted.Load() != 1 || n.requests.Load() != 1 || n.keyed.Load() != 0 {
			t.Fatalf("%d connections, %d requests, %d with a key; want 1 request, no retry, no key", p.accepted.Load(), n.requests.Load(), n.keyed.Load())
		}
		if _, err := c.SendUID(ctx, "u", "next"); err != nil {
			t.Fatal(err)
		}
		u.ExpectMessage(`"next"`)
	})

	t.Run("every connection reset", func(t *testing.T) {
		p := startProxy(t, target, func(int64) fault { return resetAtAccept })
		c, _ := newClient(t, p.URL()+"/push")
		c.Retries = 2
		_, err := c.SendUID(ctx, "u", "never")
		var e *pushapi.Error
		var ue *url.Error
		if err == nil || errors.As(err, &e) || !errors.As(err, &ue) {
			t.Fatalf("send through a proxy that resets everything: %v, want the connection error", err)
		}
		if p.accepted.Load() != 3 {
			t.Fatalf("%d connections, want 3: the attempt and 2 retries", p.accepted.Load())
		}
		u.StillOpen() // nothing came
	})
}

// TestKeepAlive: concurrent callers of one Client (New's own HTTP client)
// share a bounded set of connections instead of opening one per call.
func TestKeepAlive(t *testing.T) {
	h := harness.Start(t, config)
	p := startProxy(t, strings.TrimPrefix(h.API().URL, "http://"), func(int64) fault { return pass })
	c := pushapi.New(p.URL()+"/push", key, nil)
	const workers, calls = 16, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				if _, err := c.SendUID(context.Background(), "nobody", "x"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := p.accepted.Load(); n > 2*workers {
		t.Fatalf("%d calls opened %d connections, want at most %d", workers*calls, n, 2*workers)
	}
	st, err := c.Stats(context.Background())
	if err != nil || st.Pushes != workers*calls {
		t.Fatalf("stats %+v, %v; want %d pushes", st, err, workers*calls)
	}
}
