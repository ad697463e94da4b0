package hub_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/hub"
)

// sseServer serves event streams of a hub: ?uid= is the uid.
func sseServer(t *testing.T, h *testHub, http2 bool) *httptest.Server {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := hub.ConnOptions{UID: r.URL.Query().Get("uid")}
		if err := h.ServeSSE(w, r, o); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	srv := httptest.NewUnstartedServer(handler)
	if http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// sseEvent is one event of a stream.
type sseEvent struct {
	id, event, data string
	comment         bool
}

// sseClient reads an event stream.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

func openSSE(t *testing.T, srv *httptest.Server, query string, hdr http.Header) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range hdr {
		req.Header[k] = v
	}
	client := srv.Client()
	if tr, ok := client.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		tr.ForceAttemptHTTP2 = true
		tr.TLSClientConfig.NextProtos = []string{"h2"}
		_ = tls.VersionTLS13
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("answer %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 256), cancel: cancel}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e != (sseEvent{}) {
					c.events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, ":"):
				e.comment = true
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.data = line[6:]
			}
		}
	}()
	return c
}

// next returns the next event that is not a comment.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				c.t.Fatal("the stream ended")
			}
			if !e.comment {
				return e
			}
		case <-time.After(guard):
			c.t.Fatal("no event")
		}
	}
}

func (c *sseClient) expect(event string) frame {
	c.t.Helper()
	e := c.next()
	if e.event != event {
		c.t.Fatalf("got event %+v, want %q", e, event)
	}
	var f frame
	if err := json.Unmarshal([]byte(e.data), &f); err != nil {
		c.t.Fatalf("event data %q: %v", e.data, err)
	}
	if event == "message" && e.id != strings.TrimSpace(jsonNumber(f.Seq)) {
		c.t.Fatalf("message id %q, seq %d: the id is the seq", e.id, f.Seq)
	}
	return f
}

func jsonNumber(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// TestSSE: a client that only listens gets its welcome, the pushes to its
// uid, its groups and everyone, numbered with the seq as the event id,
// heartbeats as comments, and a last event when the hub closes; over
// HTTP/1.1 and HTTP/2.
func TestSSE(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "http1"
		if h2 {
			name = "http2"
		}
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, hub.Settings{PingInterval: 50 * time.Millisecond})
			srv := sseServer(t, ts.hub, h2)
			c := openSSE(t, srv, "uid=alice", nil)
			if h2 && c.resp.ProtoMajor != 2 {
				t.Fatalf("protocol %s, want HTTP/2", c.resp.Proto)
			}
			if w := c.expect("welcome"); w.UID != "alice" || w.ConnID == "" {
				t.Fatalf("welcome %+v", w)
			}
			ws := ts.jsonUser("alice") // the same uid over a WebSocket
			if err := ts.hub.Join("alice", "room"); err != nil {
				t.Fatal(err)
			}
			wantReceipt(t, "to alice", ts.hub.SendToUID("alice", msg("{\"a\":\n 1}")), 2, 0)
			ts.hub.SendToGroup("room", msg(`"room"`))
			ts.hub.Broadcast(msg(`"all"`))
			for i, data := range []string{`{"a":1}`, `"room"`, `"all"`} {
				if f := c.expect("message"); f.Seq != uint64(i+1) || string(f.Data) != data {
					t.Fatalf("message %d: %+v", i+1, f)
				}
			}
			ws.readMessage(1, "{\"a\":\n 1}") // WebSocket clients get data as it was sent
			// Heartbeats keep the stream alive.
			sawComment := false
			for !sawComment {
				select {
				case e := <-c.events:
					sawComment = e.comment
				case <-time.After(guard):
					t.Fatal("no heartbeat")
				}
			}
			ts.hub.Close("test over")
			if f := c.expect("going_away"); f.Reason != "test over" {
				t.Fatalf("going_away %+v", f)
			}
			c.expect("close")
		})
	}
}

// TestSSEResume: an EventSource that reconnects with Last-Event-ID gets
// what it missed, in order, before anything new.
func TestSSEResume(t *testing.T) {
	ts := newTestServer(t, historySettings(10))
	srv := sseServer(t, ts.hub, false)
	c := openSSE(t, srv, "uid=bob", nil)
	c.expect("welcome")
	ts.hub.SendToUID("bob", msg(`1`))
	last := c.expect("message")
	c.cancel()
	eventually(t, "bob offline", func() bool { return ts.hub.Online("bob") == 0 })
	ts.hub.SendToUID("bob", msg(`2`))
	ts.hub.SendToUID("bob", msg(`3`))
	back := openSSE(t, srv, "uid=bob", http.Header{"Last-Event-ID": {jsonNumber(last.Seq)}})
	w := back.expect("welcome")
	if w.Resume == nil || !w.Resume.Recovered || w.Resume.Replayed != 2 {
		t.Fatalf("welcome %+v resume %+v", w, w.Resume)
	}
	back.expect("message")
	if f := back.expect("message"); string(f.Data) != "3" {
		t.Fatalf("message %+v", f)
	}
}
