package pushapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAPI mimics push_api's JSON shapes: the last path segment names the
// call, a Bearer key is checked when set, refusals carry an error body.
type fakeAPI struct {
	key    string
	online []string // sorted

	mu    sync.Mutex
	calls []recorded
}

type recorded struct {
	method, path string
	body         map[string]any
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, code, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}
	if f.key != "" && r.Header.Get("Authorization") != "Bearer "+f.key {
		fail(http.StatusUnauthorized, "unauthorized", "the key is wrong")
		return
	}
	rec := recorded{method: r.Method, path: r.URL.Path}
	if r.Method == http.MethodPost {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			fail(http.StatusBadRequest, "bad_content_type", ct)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&rec.body); err != nil {
			fail(http.StatusBadRequest, "bad_json", err.Error())
			return
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, rec)
	f.mu.Unlock()

	var out any
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	switch name {
	case "send":
		if rec.body["data"] == nil {
			fail(http.StatusBadRequest, "missing_data", `"data" is required: any JSON value but null`)
			return
		}
		n := 1
		if uids, ok := rec.body["uids"].([]any); ok {
			n = len(uids)
		}
		res := map[string]any{"delivered": n, "dropped": 0, "stored": false}
		if _, ok := rec.body["wait_ack"]; ok {
			res["acked"] = n
		}
		out = res
	case "join":
		if !slices.Contains(f.online, rec.body["uid"].(string)) {
			fail(http.StatusNotFound, "uid_offline", "the uid has no connection on this hub")
			return
		}
		out = map[string]bool{"ok": true}
	case "leave":
		out = map[string]bool{"ok": true, "was_member": rec.body["group"] == "g"}
	case "kick":
		out = map[string]any{"uid": rec.body["uid"], "closed": 2}
	case "online":
		uid := r.URL.Query().Get("uid")
		n := 0
		if slices.Contains(f.online, uid) {
			n = 1
		}
		out = map[string]any{"uid": uid, "online": n > 0, "connections": n}
	case "uids":
		after := r.URL.Query().Get("after")
		limit := 1000
		if s := r.URL.Query().Get("limit"); s != "" {
			limit, _ = strconv.Atoi(s)
		}
		var page []string
		for _, u := range f.online {
			if u > after {
				page = append(page, u)
			}
		}
		res := map[string]any{}
		if len(page) > limit {
			page = page[:limit]
			res["next"] = page[limit-1]
		}
		res["uids"] = append([]string{}, page...)
		out = res
	case "stats":
		out = Stats{Hub: "default", Connections: 3, UIDs: 2, Goroutines: 17, MessagesOut: 5}
	default:
		fail(http.StatusNotFound, "unknown_call", "no API call "+name)
		return
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeAPI) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("no call reached the server")
	}
	return f.calls[len(f.calls)-1]
}

func newFake(t *testing.T, key, prefix string) (*fakeAPI, *Client) {
	t.Helper()
	f := &fakeAPI{key: key, online: []string{"a", "b", "c", "d", "e"}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, New(srv.URL+prefix, key, nil)
}

func TestSendTargets(t *testing.T) {
	f, c := newFake(t, "k3y", "/push/")
	ctx := context.Background()
	cases := []struct {
		name string
		call func() (SendReceipt, error)
		want map[string]any
		n    int
	}{
		{"uid", func() (SendReceipt, error) { return c.SendUID(ctx, "42", "hi") },
			map[string]any{"uid": "42", "data": "hi"}, 1},
		{"uids", func() (SendReceipt, error) { return c.SendUIDs(ctx, []string{"1", "2"}, 7) },
			map[string]any{"uids": []any{"1", "2"}, "data": 7.0}, 2},
		{"group", func() (SendReceipt, error) { return c.SendGroup(ctx, "g", map[string]int{"x": 1}) },
			map[string]any{"group": "g", "data": map[string]any{"x": 1.0}}, 1},
		{"all", func() (SendReceipt, error) { return c.Broadcast(ctx, json.RawMessage(`[1,"two"]`)) },
			map[string]any{"all": true, "data": []any{1.0, "two"}}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			if rc.Delivered != tc.n {
				t.Errorf("delivered %d, want %d", rc.Delivered, tc.n)
			}
			got := f.last(t)
			if got.method != http.MethodPost || got.path != "/push/send" {
				t.Errorf("called %s %s, want POST /push/send", got.method, got.path)
			}
			// Every push carries an idempotency key of its own.
			if k, _ := got.body["idempotency_key"].(string); len(k) != 32 {
				t.Errorf("idempotency_key %v, want 32 hex digits", got.body["idempotency_key"])
			}
			delete(got.body, "idempotency_key")
			if !reflect.DeepEqual(got.body, tc.want) {
				t.Errorf("body %v, want %v", got.body, tc.want)
			}
		})
	}
}

func TestSendWaitAck(t *testing.T) {
	f, c := newFake(t, "", "")
	rc, err := c.Send(context.Background(), SendRequest{UID: "42", Data: "x", WaitAck: 2 * time.Second})
	if err != nil || rc.Acked == nil || *rc.Acked != 1 {
		t.Fatalf("send with wait_ack = %+v, %v; want acked 1", rc, err)
	}
	if got := f.last(t).body["wait_ack"]; got != float64(2*time.Second) {
		t.Errorf("wait_ack sent as %v, want %d nanoseconds", got, 2*time.Second)
	}
	rc, err = c.SendUID(context.Background(), "42", "x")
	if err != nil || rc.Acked != nil {
		t.Errorf("send without wait_ack = %+v, %v; want no acked", rc, err)
	}
	if _, sent := f.last(t).body["wait_ack"]; sent {
		t.Error("a zero WaitAck was sent")
	}
}

func TestAPIErrors(t *testing.T) {
	_, c := newFake(t, "k3y", "")
	ctx := context.Background()

	_, err := c.Send(ctx, SendRequest{UID: "42"}) // data is null
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != "missing_data" || e.Message == "" {
		t.Fatalf("send without data: %#v, want a 400 missing_data *Error", err)
	}

	err = c.Join(ctx, "nobody", "g")
	if !IsOffline(err) || !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("join of an offline uid: %v, want a 404 uid_offline", err)
	}

	wrong := New(c.base, "wrong", nil)
	if _, err := wrong.Stats(ctx); !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Code != "unauthorized" {
		t.Fatalf("wrong key: %v, want a 401 unauthorized", err)
	}
}

func TestNonAPIErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := New(srv.URL, "", nil).SendUID(context.Background(), "1", "x")
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "" || !strings.Contains(e.Message, "bad gateway") {
		t.Fatalf("got %#v, want a 502 *Error without code that quotes the body", err)
	}
	if !strings.Contains(e.Error(), "502") {
		t.Errorf("Error() = %q, want the status in it", e.Error())
	}
}

func TestMembershipKickOnline(t *testing.T) {
	f, c := newFake(t, "", "")
	ctx := context.Background()
	if err := c.Join(ctx, "a", "g"); err != nil {
		t.Fatal(err)
	}
	if got := f.last(t); got.path != "/join" || got.body["uid"] != "a" || got.body["group"] != "g" {
		t.Errorf("join sent %+v", got)
	}
	if was, err := c.Leave(ctx, "a", "g"); err != nil || !was {
		t.Errorf("leave = %v, %v; want true", was, err)
	}
	if was, err := c.Leave(ctx, "a", "other"); err != nil || was {
		t.Errorf("leave of a non-member = %v, %v; want false", was, err)
	}
	if n, err := c.Kick(ctx, "a", "bye"); err != nil || n != 2 {
		t.Errorf("kick = %d, %v; want 2", n, err)
	}
	if got := f.last(t); got.body["reason"] != "bye" {
		t.Errorf("kick sent %+v", got.body)
	}
	on, err := c.Online(ctx, "b")
	if err != nil || on != (Online{UID: "b", Online: true, Connections: 1}) {
		t.Errorf("online = %+v, %v", on, err)
	}
	if got := f.last(t); got.method != http.MethodGet || got.path != "/online" {
		t.Errorf("online called %s %s", got.method, got.path)
	}
}

func TestUIDsPaging(t *testing.T) {
	_, c := newFake(t, "", "")
	ctx := context.Background()
	page, err := c.UIDs(ctx, UIDsQuery{Limit: 2})
	if err != nil || !slices.Equal(page.UIDs, []string{"a", "b"}) || page.Next != "b" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	page, err = c.UIDs(ctx, UIDsQuery{After: page.Next, Limit: 2})
	if err != nil || !slices.Equal(page.UIDs, []string{"c", "d"}) {
		t.Fatalf("second page = %+v, %v", page, err)
	}
	all, err := c.AllUIDs(ctx, "", 2)
	if err != nil || !slices.Equal(all, []string{"a", "b", "c", "d", "e"}) {
		t.Fatalf("AllUIDs = %v, %v", all, err)
	}
	all, err = c.AllUIDs(ctx, "", 0)
	if err != nil || len(all) != 5 {
		t.Fatalf("AllUIDs with the default limit = %v, %v", all, err)
	}
}

func TestStats(t *testing.T) {
	_, c := newFake(t, "", "")
	st, err := c.Stats(context.Background())
	if err != nil || st.Connections != 3 || st.Goroutines != 17 || st.MessagesOut != 5 || st.Hub != "default" {
		t.Fatalf("stats = %+v, %v", st, err)
	}
}

// TestKeepAlive checks that concurrent callers share a bounded set of
// connections instead of opening one per call.
func TestKeepAlive(t *testing.T) {
	f := &fakeAPI{}
	srv := httptest.NewUnstartedServer(f)
	var opened atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := New(srv.URL, "", nil)
	const workers, calls = 16, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				if _, err := c.SendUID(context.Background(), "u", "x"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := opened.Load(); n > 2*workers {
		t.Errorf("%d calls opened %d connections, want at most %d", workers*calls, n, 2*workers)
	}
}

func TestContextCanceled(t *testing.T) {
	_, c := newFake(t, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Stats(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
