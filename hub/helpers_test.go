package hub_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushhub/caddy-pushhub/hub"
)

// guard bounds every wait in these tests. It only turns a hang into a
// failure: no test asserts anything about how long something took.
const guard = 5 * time.Second

// smallSocketBuffer is the socket buffer size of connections that must
// back up quickly (slow consumer tests). Not tiny: below a few segments
// (loopback's are 64 KiB) TCP holds back window updates, and a reader that
// resumes would wait for the sender's zero-window probes.
const smallSocketBuffer = 128 << 10

// testServer is an httptest server whose only handler upgrades to a
// WebSocket on a hub, the way push_hub does.
type testServer struct {
	t   testing.TB
	hub *testHub
	url string
	tls *tls.Config // a client's, when the server speaks TLS
	// shutdown closes the hub, then the HTTP server; it runs at the end of
	// the test if not before.
	shutdown func()
}

// newTestServer starts a hub with settings s behind a real HTTP server,
// its connections read the way push_hub reads them (readiness-driven where
// the platform has it).
func newTestServer(t testing.TB, s hub.Settings) *testServer {
	t.Helper()
	return newTestServerReader(t, s, reading{poll: true})
}

// reading is how a test server's connections are read and carried.
type reading struct {
	poll bool // by the hub's poller, as push_hub does; else a goroutine each
	tls  bool // over TLS (wss)
}

// readings are the ways forEachReader runs a test.
var readings = []struct {
	name string
	r    reading
}{
	{"poller", reading{poll: true}},
	{"goroutine", reading{}},
	{"poller-wss", reading{poll: true, tls: true}},
	{"goroutine-wss", reading{tls: true}},
}

// forEachReader runs a test with connections read by the hub's poller (as
// push_hub does) and with a reader goroutine per connection, each over
// plain TCP and over TLS, where crypto/tls reads and writes through the
// hub's socket (tls_socket.go).
func forEachReader(t *testing.T, test func(t *testing.T, newServer func(hub.Settings) *testServer)) {
	for _, rd := range readings {
		t.Run(rd.name, func(t *testing.T) {
			test(t, func(s hub.Settings) *testServer { return newTestServerReader(t, s, rd.r) })
		})
	}
}

// connKey finds a request's connection in its context.
type connKey struct{}

// newTestServerReader starts a hub with settings s behind a real HTTP
// server, its connections read and carried as rd says. Query parameters
// of a dial choose the connection's options: proto=text, uid=<uid> (logged
// in at the upgrade), since=<seq> and epoch=<epoch>, nologin (no
// LoginFunc), smallbuf (a small server send buffer).
func newTestServerReader(t testing.TB, s hub.Settings, rd reading) *testServer {
	t.Helper()
	ts := &testServer{t: t, hub: &testHub{t: t, Hub: hub.New("test", hub.Options{Settings: s, GoroutineReaders: !rd.poll})}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("smallbuf") {
			nc := r.Context().Value(connKey{}).(net.Conn)
			if tc, ok := nc.(*tls.Conn); ok {
				nc = tc.NetConn()
			}
			if tc, ok := nc.(*net.TCPConn); ok {
				_ = tc.SetWriteBuffer(smallSocketBuffer)
			}
		}
		o := hub.ConnOptions{UID: q.Get("uid"), Login: testLogin, QuickLogin: true, Protocol: q.Get("proto")}
		if q.Has("nologin") {
			o.Login = nil
		}
		if v := q.Get("since"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				panic(err)
			}
			o.Since = &hub.Position{Epoch: q.Get("epoch"), Offset: n}
		}
		if err := ts.hub.Upgrade(w, r, o); err != nil {
			t.Errorf("upgrade: %v", err)
		}
	}))
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	if rd.tls {
		srv.StartTLS()
		ts.tls = srv.Client().Transport.(*http.Transport).TLSClientConfig // trusts the server's certificate
	} else {
		srv.Start()
	}
	ts.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
	ts.shutdown = sync.OnceFunc(func() {
		ts.hub.Close("test over")
		srv.Close()
	})
	t.Cleanup(ts.shutdown)
	return ts
}

// testHub is a hub with the calls tests make most, answering plain values:
// an error fails the test.
type testHub struct {
	*hub.Hub
	t testing.TB
}

func (h *testHub) send(t hub.Target, m hub.Message) hub.Receipt {
	r, err := h.Hub.Send(context.Background(), t, m, hub.SendOptions{})
	if err != nil {
		h.t.Errorf("send to %+v: %v", t, err)
	}
	return r
}

func (h *testHub) SendToUID(uid string, m hub.Message) hub.Receipt {
	return h.send(hub.Target{UID: uid}, m)
}

func (h *testHub) SendToUIDs(uids []string, m hub.Message) hub.Receipt {
	return h.send(hub.Target{UIDs: uids}, m)
}

func (h *testHub) SendToGroup(group string, m hub.Message) hub.Receipt {
	return h.send(hub.Target{Group: group}, m)
}

func (h *testHub) Broadcast(m hub.Message) hub.Receipt { return h.send(hub.Target{All: true}, m) }

func (h *testHub) Join(uid, group string) error { return h.Hub.Join(context.Background(), uid, group) }

func (h *testHub) Leave(uid, group string) bool {
	member, err := h.Hub.Leave(context.Background(), uid, group)
	if err != nil {
		h.t.Errorf("leave: %v", err)
	}
	return member
}

func (h *testHub) Kick(uid, reason string) int {
	n, err := h.Hub.Kick(context.Background(), uid, reason)
	if err != nil {
		h.t.Errorf("kick: %v", err)
	}
	return n
}

func (h *testHub) Online(uid string) int {
	n, err := h.Hub.Online(context.Background(), uid)
	if err != nil {
		h.t.Errorf("online: %v", err)
	}
	return n
}

func (h *testHub) UIDs(group, after string, limit int) ([]string, bool) {
	uids, more, err := h.Hub.UIDs(context.Background(), group, after, limit)
	if err != nil {
		h.t.Errorf("uids: %v", err)
	}
	return uids, more
}

func (h *testHub) Stats() hub.Stats { return h.Hub.Stats(context.Background()) }

// Configure applies s to the hub's default endpoint at once.
func (h *testHub) Configure(s hub.Settings) {
	ep := h.Endpoint("", s)
	h.Apply(ep)
	h.ReleaseEndpoint(ep)
}

// testLogin trusts the credential as the uid, except that one starting with
// "deny" is refused with the code "denied".
func testLogin(credential string) (hub.Identity, error) {
	if strings.HasPrefix(credential, "deny") {
		return hub.Identity{}, &hub.Error{Code: "denied", Message: "denied by the test"}
	}
	return hub.Identity{UID: credential}, nil
}

// client is the other end of one connection: a gorilla client.
type client struct {
	t  testing.TB
	ws *websocket.Conn
}

// dial opens a connection; query is the test server's options, e.g.
// "uid=alice&proto=text". With "smallbuf" the client's receive buffer is
// small too.
func (ts *testServer) dial(query string) *client {
	ts.t.Helper()
	c, err := ts.tryDial(query)
	if err != nil {
		ts.t.Fatalf("dial %q: %v", query, err)
	}
	return c
}

func (ts *testServer) tryDial(query string) (*client, error) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, err
	}
	d := websocket.Dialer{HandshakeTimeout: guard, TLSClientConfig: ts.tls}
	if q.Has("smallbuf") {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			conn, err := nd.DialContext(ctx, network, addr)
			if err == nil {
				_ = conn.(*net.TCPConn).SetReadBuffer(smallSocketBuffer)
			}
			return conn, err
		}
	}
	ws, _, err := d.Dial(ts.url+"?"+query, nil)
	if err != nil {
		return nil, err
	}
	c := &client{t: ts.t, ws: ws}
	ts.t.Cleanup(func() { ws.Close() })
	return c, nil
}

// frame is any json-protocol frame from the server.
type frame struct {
	Type      string          `json:"type"`
	UID       string          `json:"uid"`
	ConnID    string          `json:"conn_id"`
	Seq       uint64          `json:"seq"`
	Epoch     string          `json:"epoch"`
	Data      json.RawMessage `json:"data"`
	From      string          `json:"from"`
	Group     string          `json:"group"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	ID        json.RawMessage `json:"id"`
	Delivered *int            `json:"delivered"`
	Dropped   *int            `json:"dropped"`
	Resume    *hub.Resume     `json:"resume"`
	Reason    string          `json:"reason"`
	RetryMS   int64           `json:"retry_ms"`
}

// next reads the next data frame, within the guard.
func (c *client) next() (int, []byte, error) {
	if err := c.ws.SetReadDeadline(time.Now().Add(guard)); err != nil {
		return 0, nil, err
	}
	return c.ws.ReadMessage()
}

// nextFrame reads and decodes the next json frame.
func (c *client) nextFrame() (frame, error) {
	mt, b, err := c.next()
	if err != nil {
		return frame{}, err
	}
	if mt != websocket.TextMessage {
		return frame{}, fmt.Errorf("message type %d, want a text frame", mt)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("frame %q: %v", b, err)
	}
	return f, nil
}

// readFrame is nextFrame for the test goroutine: an error fails the test.
func (c *client) readFrame() frame {
	c.t.Helper()
	f, err := c.nextFrame()
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// readType reads a frame and checks its type.
func (c *client) readType(typ string) frame {
	c.t.Helper()
	f := c.readFrame()
	if f.Type != typ {
		c.t.Fatalf("got a %q frame %+v, want %q", f.Type, f, typ)
	}
	return f
}

// readMessage reads a json message frame and checks its seq and data.
func (c *client) readMessage(seq uint64, data string) frame {
	c.t.Helper()
	f := c.readType("message")
	if f.Seq != seq || string(f.Data) != data {
		c.t.Fatalf("got message seq %d data %s, want seq %d data %s", f.Seq, f.Data, seq, data)
	}
	return f
}

// readText reads a text-protocol frame.
func (c *client) readText() string {
	c.t.Helper()
	mt, b, err := c.next()
	if err != nil {
		c.t.Fatalf("reading a text frame: %v", err)
	}
	if mt != websocket.TextMessage {
		c.t.Fatalf("message type %d, want a text frame", mt)
	}
	return string(b)
}

// expectText reads a text-protocol frame and checks it.
func (c *client) expectText(want string) {
	c.t.Helper()
	if got := c.readText(); got != want {
		c.t.Fatalf("got text frame %q, want %q", got, want)
	}
}

// closeCode is the close code of a read error, 0 when it is not a close.
func closeCode(err error) int {
	code, _ := closeOf(err)
	return code
}

// closeOf returns the close code and reason of a read error; code 0 when
// the error is not a close.
func closeOf(err error) (int, string) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Text
	}
	return 0, ""
}

// expectClose reads, requiring that the next thing is a close with code; it
// returns the close reason.
func (c *client) expectClose(code int) string {
	c.t.Helper()
	mt, b, err := c.next()
	if err == nil {
		c.t.Fatalf("got frame (type %d) %q, want close %d", mt, b, code)
	}
	got, reason := closeOf(err)
	if got != code {
		c.t.Fatalf("connection ended with %v, want close %d", err, code)
	}
	return reason
}

// drainUntilClose reads until the connection ends and returns the text
// frames it got and the error that ended it.
func (c *client) drainUntilClose() ([]string, error) {
	var got []string
	for {
		_, b, err := c.next()
		if err != nil {
			return got, err
		}
		got = append(got, string(b))
	}
}

func (c *client) send(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("sending %q: %v", s, err)
	}
}

func (c *client) sendJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(string(b))
}

// floodPast sends burst pings, each answered, and one more, on a server
// whose rate limit allows bursts of burst and refills too slowly to matter:
// the frame over the limit closes c as rate limited.
func (c *client) floodPast(burst int) {
	c.t.Helper()
	for range burst {
		c.sendJSON(map[string]any{"type": "ping"})
		c.readType("pong")
	}
	c.sendJSON(map[string]any{"type": "ping"})
	c.expectClose(hub.CloseRateLimited)
}

// loginJSON logs in with a login frame and returns the welcome.
func (c *client) loginJSON(uid string) frame {
	c.t.Helper()
	c.sendJSON(map[string]any{"type": "login", "uid": uid})
	w := c.readType("welcome")
	if w.UID != uid {
		c.t.Fatalf("welcome for uid %q, want %q", w.UID, uid)
	}
	return w
}

// loginText logs in with the text protocol's first frame.
func (c *client) loginText(uid string) {
	c.t.Helper()
	c.send(uid)
	c.expectText("login success, your uid is " + uid)
}

// jsonUser dials a json connection logged in at the upgrade as uid and
// reads its welcome.
func (ts *testServer) jsonUser(uid string) *client {
	ts.t.Helper()
	c := ts.dial("uid=" + url.QueryEscape(uid))
	w := c.readType("welcome")
	if w.UID != uid {
		ts.t.Fatalf("welcome for uid %q, want %q", w.UID, uid)
	}
	return c
}

// textUser dials a text connection logged in at the upgrade as uid.
func (ts *testServer) textUser(uid string) *client {
	ts.t.Helper()
	c := ts.dial("proto=text&uid=" + url.QueryEscape(uid))
	c.expectText("login success, your uid is " + uid)
	return c
}

// eventually polls cond until it holds; the guard turns a hang into a
// failure.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v) for: %s", guard, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitStats polls the hub's stats until check accepts them.
func waitStats(t testing.TB, h *testHub, what string, check func(hub.Stats) bool) hub.Stats {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		st := h.Stats()
		if check(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v) for: %s; last stats %+v", guard, what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// msg is a push API message with JSON data.
func msg(data string) hub.Message { return hub.Message{Data: json.RawMessage(data)} }

func wantReceipt(t testing.TB, what string, got hub.Receipt, delivered, dropped int) {
	t.Helper()
	if got.Delivered != delivered || got.Dropped != dropped {
		t.Fatalf("%s: receipt %+v, want delivered %d dropped %d", what, got, delivered, dropped)
	}
}

// sendWait is Send with options, answering the receipt.
func (h *testHub) sendWait(ctx context.Context, t hub.Target, m hub.Message, o hub.SendOptions) hub.Receipt {
	r, err := h.Hub.Send(ctx, t, m, o)
	if err != nil {
		h.t.Errorf("send to %+v: %v", t, err)
	}
	return r
}
