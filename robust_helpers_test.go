package pushhub_test

// Helpers of the robustness tests (robust_*_test.go). Like the e2e suite
// they run a real Caddy in this test binary through caddytest, load a
// Caddyfile per test and talk to it with real WebSocket clients: gorilla's
// Dialer, and for peers that must misbehave below the WebSocket layer (never
// read, never answer a ping, stop halfway through a frame) a raw TCP socket
// after a hand-made handshake.
//
// Every identifier here starts with rb: other engineers' test files share
// this package. Ports are 9600-9699. Each test names fresh hubs, so loading
// its config closes the previous test's hubs and no state leaks between
// tests (nor between runs of -count=N).

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/gorilla/websocket"

	_ "github.com/pushhub/caddy-pushhub"
)

const (
	rbAdminPort = 9600
	rbWSPort    = 9601 // the push_hub site
	rbAPIPort   = 9602 // the push_api site
	rbHTTPPort  = 9680
	rbHTTPSPort = 9643

	rbKey    = "rb-api-key-0123456789"
	rbSecret = "rb-jwt-secret-0123456789abcdef"

	// rbGuard bounds every wait: a failure guard against a hang, never an
	// assertion on how fast something happens.
	rbGuard = 15 * time.Second
)

var (
	rbWSBase  = fmt.Sprintf("ws://127.0.0.1:%d", rbWSPort)
	rbAPIBase = fmt.Sprintf("http://127.0.0.1:%d", rbAPIPort)
)

// rbGlobal precedes every config: logs at ERROR only, so the tests print
// nothing unless something breaks.
var rbGlobal = fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	skip_install_trust
	persist_config off
	grace_period 1s
	log {
		level ERROR
	}
}
`, rbAdminPort, rbHTTPPort, rbHTTPSPort)

var rbHubSeq atomic.Int64

// rbHubName is a hub name no earlier config of this binary has used.
func rbHubName(kind string) string {
	return fmt.Sprintf("rb-%s-%d", kind, rbHubSeq.Add(1))
}

// rbSites wraps the push_hub site's and the push_api site's directives.
func rbSites(ws, api string) string {
	return fmt.Sprintf("http://127.0.0.1:%d {\n\tbind 127.0.0.1\n%s\n}\n\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n%s\n}\n",
		rbWSPort, ws, rbAPIPort, api)
}

// rbLoad loads the sites into the binary's Caddy (a reload when one runs)
// and stops the test if that fails.
func rbLoad(t *testing.T, sites string) {
	t.Helper()
	if err := rbLockPorts(); err != nil {
		t.Fatal(err)
	}
	if !rbInProcess() {
		// Not ours yet: the admin port must then be free, or the load would
		// go to another process's Caddy.
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("localhost:%d", rbAdminPort), time.Second); err == nil {
			_ = c.Close()
			t.Fatalf("another process serves admin port %d: it is running these tests (or uses ports %d-%d) without the lock",
				rbAdminPort, rbAdminPort, rbAPIPort)
		}
	}
	rbHTTP.CloseIdleConnections()
	before := t.Failed()
	caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
		AdminPort:          rbAdminPort,
		LoadRequestTimeout: 30 * time.Second,
	}).InitServer(rbGlobal+sites, "caddyfile")
	if !before && t.Failed() {
		t.Fatalf("loading the config failed:\n%s", sites)
	}
	if !rbInProcess() {
		t.Fatalf("the Caddy on admin port %d is not this test process's: another process uses ports %d-%d", rbAdminPort, rbAdminPort, rbAPIPort)
	}
	rbHTTP.CloseIdleConnections()
}

// rbInProcess reports whether the config running in this process is ours:
// the memory and goroutine figures are only meaningful if it is.
func rbInProcess() bool {
	app, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil {
		return false
	}
	httpApp, ok := app.(*caddyhttp.App)
	if !ok {
		return false
	}
	want := fmt.Sprintf("127.0.0.1:%d", rbWSPort)
	for _, srv := range httpApp.Servers {
		for _, l := range srv.Listen {
			if strings.HasSuffix(l, want) {
				return true
			}
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// The push API

var rbHTTP = &http.Client{
	Timeout:   rbGuard,
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32},
}

type rbResp struct {
	status int
	header http.Header
	body   string
}

// rbRequest calls the API site at path with hdr (nil: the right key).
func rbRequest(method, path, body string, hdr http.Header) (rbResp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rbAPIBase+path, rd)
	if err != nil {
		return rbResp{}, err
	}
	if hdr == nil {
		hdr = http.Header{"Authorization": {"Bearer " + rbKey}}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := rbHTTP.Do(req)
	if err != nil {
		return rbResp{}, fmt.Errorf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return rbResp{}, fmt.Errorf("%s %s: reading the body: %v", method, path, err)
	}
	return rbResp{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

func rbAPI(t *testing.T, method, path, body string, hdr http.Header) rbResp {
	t.Helper()
	r, err := rbRequest(method, path, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rbReceipt is the answer of POST /send.
type rbReceipt struct {
	Delivered int  `json:"delivered"`
	Dropped   int  `json:"dropped"`
	Stored    bool `json:"stored"`
	Acked     *int `json:"acked"`
}

func (r rbReceipt) String() string {
	s := fmt.Sprintf("delivered %d, dropped %d, stored %t", r.Delivered, r.Dropped, r.Stored)
	if r.Acked != nil {
		s += fmt.Sprintf(", acked %d", *r.Acked)
	}
	return s
}

// rbSendErr posts body to path (a .../send) and decodes the receipt.
func rbSendErr(path, body string) (rbReceipt, error) {
	r, err := rbRequest(http.MethodPost, path, body, nil)
	if err != nil {
		return rbReceipt{}, err
	}
	if r.status != http.StatusOK {
		return rbReceipt{}, fmt.Errorf("POST %s %s: HTTP %d %q", path, body, r.status, r.body)
	}
	var rc rbReceipt
	if err := strictJSON(r.body, &rc); err != nil {
		return rbReceipt{}, fmt.Errorf("POST %s: receipt %q: %v", path, r.body, err)
	}
	return rc, nil
}

func rbSend(t *testing.T, path, body string) rbReceipt {
	t.Helper()
	rc, err := rbSendErr(path, body)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// rbExpectBody asserts an answer's status and exact body.
func rbExpectBody(t *testing.T, r rbResp, status int, body string) {
	t.Helper()
	if r.status != status || r.body != body+"\n" {
		t.Fatalf("got HTTP %d %q, want HTTP %d %q", r.status, r.body, status, body+"\n")
	}
}

// rbExpectAPIError asserts status and an error body with code.
func rbExpectAPIError(t *testing.T, r rbResp, status int, code string) {
	t.Helper()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if r.status != status {
		t.Fatalf("got HTTP %d %q, want HTTP %d with error code %q", r.status, r.body, status, code)
	}
	if err := strictJSON(r.body, &body); err != nil || body.Error.Code != code || body.Error.Message == "" {
		t.Fatalf("error body %q (%v), want code %q and a message", r.body, err, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// rbStats is what the tests read of GET /stats.
type rbStats struct {
	Hub             string `json:"hub"`
	Connections     int64  `json:"connections"`
	Pending         int    `json:"pending"`
	UIDs            int    `json:"uids"`
	OfflineKept     int    `json:"offline_uids_kept"`
	SlowConsumers   uint64 `json:"slow_consumers"`
	HistoryMessages int64  `json:"history_messages"`
	HistoryBytes    int64  `json:"history_bytes"`
}

func rbGetStats(t *testing.T, prefix string) rbStats {
	t.Helper()
	r := rbAPI(t, http.MethodGet, prefix+"/stats", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s/stats: HTTP %d %q", prefix, r.status, r.body)
	}
	var s rbStats
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		t.Fatalf("GET %s/stats %q: %v", prefix, r.body, err)
	}
	return s
}

// rbWaitOnline waits until uid holds n connections.
func rbWaitOnline(t *testing.T, prefix, uid string, n int) {
	t.Helper()
	want := fmt.Sprintf(`{"connections":%d,"online":%t,"uid":%s}`+"\n", n, n > 0, jsonText(uid))
	eventuallyWithin(t, rbGuard, fmt.Sprintf("uid %q holds %d connections", uid, n), func() (bool, string) {
		r := rbAPI(t, http.MethodGet, prefix+"/online?uid="+uid, "", nil)
		return r.status == http.StatusOK && r.body == want, fmt.Sprintf("HTTP %d %q", r.status, r.body)
	})
}

// ---------------------------------------------------------------------------
// JSON

// rbFrame is any frame of the json protocol the server sends; decoding is
// strict, so a field PROTOCOL.md does not list fails the test.
type rbFrame struct {
	Type      string          `json:"type"`
	ID        json.RawMessage `json:"id"`
	UID       string          `json:"uid"`
	ConnID    string          `json:"conn_id"`
	Seq       uint64          `json:"seq"`
	Epoch     string          `json:"epoch"`
	Resume    *rbResume       `json:"resume"`
	Data      json.RawMessage `json:"data"`
	From      string          `json:"from"`
	Group     string          `json:"group"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Reason    string          `json:"reason"`
	RetryMS   *int64          `json:"retry_ms"`
	Delivered *int            `json:"delivered"`
	Dropped   *int            `json:"dropped"`

	raw string
}

type rbResume struct {
	Since     uint64 `json:"since"`
	Recovered bool   `json:"recovered"`
	Replayed  int    `json:"replayed"`
	Reason    string `json:"reason"`
}

func rbDecodeFrame(b []byte) (rbFrame, error) {
	var f rbFrame
	if err := strictJSON(string(b), &f); err != nil {
		return f, fmt.Errorf("frame %.300s: %v", b, err)
	}
	f.raw = string(b)
	return f, nil
}

// rbInt is a message's data as an integer.
func (f rbFrame) rbInt() (int64, error) {
	var n int64
	if f.Type != "message" {
		return 0, fmt.Errorf("got %.300s, want a message", f.raw)
	}
	if err := json.Unmarshal(f.Data, &n); err != nil {
		return 0, fmt.Errorf("message data %.100s: %v", f.Data, err)
	}
	return n, nil
}

// ---------------------------------------------------------------------------
// gorilla WebSocket clients

type rbClient struct {
	t    *testing.T
	name string
	ws   *websocket.Conn
}

var rbDialer = &websocket.Dialer{HandshakeTimeout: rbGuard}

func rbDialErr(path string, hdr http.Header) (*websocket.Conn, error) {
	ws, resp, err := rbDialer.Dial(rbWSBase+path, hdr)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		return nil, fmt.Errorf("dialing %s: %v (%s)", path, err, status)
	}
	return ws, nil
}

// rbDial connects to path on the push_hub site; the socket is closed when
// the test ends.
func rbDial(t *testing.T, name, path string, hdr http.Header) *rbClient {
	t.Helper()
	ws, err := rbDialErr(path, hdr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return &rbClient{t: t, name: name, ws: ws}
}

func (c *rbClient) write(mt int, b []byte) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(rbGuard))
	if err := c.ws.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("%s: writing %.100q: %v", c.name, b, err)
	}
}

func (c *rbClient) sendText(s string) { c.t.Helper(); c.write(websocket.TextMessage, []byte(s)) }
func (c *rbClient) sendJSON(v any)    { c.t.Helper(); c.sendText(jsonText(v)) }

// readText returns the next text frame.
func (c *rbClient) readText() string {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(rbGuard))
	mt, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("%s: waiting for a frame: %v", c.name, err)
	}
	if mt != websocket.TextMessage {
		c.t.Fatalf("%s: got a frame of type %d, want a text frame", c.name, mt)
	}
	return string(b)
}

// read returns the next frame of the json protocol.
func (c *rbClient) read() rbFrame {
	c.t.Helper()
	f, err := rbDecodeFrame([]byte(c.readText()))
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return f
}

// expectText asserts the next frame is exactly want.
func (c *rbClient) expectText(want string) {
	c.t.Helper()
	if got := c.readText(); got != want {
		c.t.Fatalf("%s: got frame %.300q, want %.300q", c.name, got, want)
	}
}

// expectMessage asserts the next frame is a message carrying data (JSON).
func (c *rbClient) expectMessage(data string) rbFrame {
	c.t.Helper()
	f := c.read()
	if f.Type != "message" || string(f.Data) != data {
		c.t.Fatalf("%s: got %.300s, want a message with data %s", c.name, f.raw, data)
	}
	return f
}

// expectError asserts the next frame is an error frame with code and id
// (raw JSON, "" for none).
func (c *rbClient) expectError(code, id string) {
	c.t.Helper()
	f := c.read()
	if f.Type != "error" || f.Code != code || string(f.ID) != id || f.Message == "" {
		c.t.Fatalf("%s: got %.300s, want an error frame with code %q, id %q and a message", c.name, f.raw, code, id)
	}
}

// expectClose asserts the next thing the server sends is a close frame with
// code; it returns the reason.
func (c *rbClient) expectClose(code int) string {
	c.t.Helper()
	return expectCloseFrame(c.t, c.name, c.ws, rbGuard, code)
}

// stillOpen proves the connection is open and served: a ping frame gets
// its pong.
func (c *rbClient) stillOpen(id int) {
	c.t.Helper()
	c.sendJSON(map[string]any{"type": "ping", "id": id})
	if f := c.read(); f.Type != "pong" || string(f.ID) != fmt.Sprint(id) {
		c.t.Fatalf("%s: got %.300s, want a pong with id %d", c.name, f.raw, id)
	}
}

// login logs in with a json login frame and returns the welcome.
func (c *rbClient) login(uid string, since *uint64) rbFrame {
	c.t.Helper()
	m := map[string]any{"type": "login", "uid": uid}
	if since != nil {
		m["since"] = *since
	}
	c.sendJSON(m)
	w := c.read()
	if w.Type != "welcome" || w.UID != uid || w.ConnID == "" {
		c.t.Fatalf("%s: got %.300s, want a welcome for %q", c.name, w.raw, uid)
	}
	return w
}

// closeNormally sends a close frame and closes the socket.
func (c *rbClient) closeNormally() {
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(rbGuard))
	_ = c.ws.Close()
}

// reset closes the socket with a TCP reset.
func (c *rbClient) reset() {
	rbReset(c.ws)
}

func rbReset(ws *websocket.Conn) {
	if tc, ok := ws.NetConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = ws.Close()
}

// rbReader reads a client on its own goroutine, so that it answers pings
// while the test does something else, and hands the frames over.
type rbReader struct {
	name   string
	frames chan rbFrame
	done   chan error
}

func (c *rbClient) startReader() *rbReader {
	r := &rbReader{name: c.name, frames: make(chan rbFrame, 8192), done: make(chan error, 1)}
	_ = c.ws.SetReadDeadline(time.Time{})
	go func() {
		for {
			_, b, err := c.ws.ReadMessage()
			if err != nil {
				r.done <- err
				return
			}
			f, err := rbDecodeFrame(b)
			if err != nil {
				r.done <- err
				return
			}
			r.frames <- f
		}
	}()
	return r
}

func (r *rbReader) next(t *testing.T, what string) rbFrame {
	t.Helper()
	select {
	case f := <-r.frames:
		return f
	case err := <-r.done:
		t.Fatalf("%s: the connection ended (%v) while waiting for %s", r.name, err, what)
	case <-time.After(rbGuard):
		t.Fatalf("%s: nothing came within %s while waiting for %s", r.name, rbGuard, what)
	}
	return rbFrame{}
}

// expectMessage asserts the reader's next frame is a message with data.
func (r *rbReader) expectMessage(t *testing.T, data string) {
	t.Helper()
	if f := r.next(t, "a message with data "+data); f.Type != "message" || string(f.Data) != data {
		t.Fatalf("%s: got %.300s, want a message with data %s", r.name, f.raw, data)
	}
}

// ---------------------------------------------------------------------------
// Raw WebSocket clients: a TCP socket, a hand-made handshake and frames
// written and read by hand, for peers that must stay truly silent.

type rbRaw struct {
	t    *testing.T
	name string
	conn *net.TCPConn
	br   *bufio.Reader
}

// rbRawDial upgrades a raw TCP connection on path; rcvbuf > 0 shrinks the
// socket's receive buffer (so a peer that does not read stalls quickly).
func rbRawDial(t *testing.T, name, path string, rcvbuf int) *rbRaw {
	t.Helper()
	nc, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", rbWSPort), rbGuard)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	conn := nc.(*net.TCPConn)
	t.Cleanup(func() { _ = conn.Close() })
	if rcvbuf > 0 {
		if err := conn.SetReadBuffer(rcvbuf); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + fmt.Sprintf("127.0.0.1:%d", rbWSPort) +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(rbGuard))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("%s: writing the handshake: %v", name, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: reading the handshake answer: %v", name, err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-Websocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("%s: handshake answered %s %v", name, resp.Status, resp.Header)
	}
	_ = conn.SetDeadline(time.Time{})
	return &rbRaw{t: t, name: name, conn: conn, br: br}
}

// WebSocket opcodes.
const (
	rbOpText  = 0x1
	rbOpClose = 0x8
	rbOpPing  = 0x9
)

// frameBytes is a whole masked client frame.
func rbFrameBytes(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

func (r *rbRaw) writeBytes(b []byte) {
	r.t.Helper()
	_ = r.conn.SetWriteDeadline(time.Now().Add(rbGuard))
	if _, err := r.conn.Write(b); err != nil {
		r.t.Fatalf("%s: writing: %v", r.name, err)
	}
}

func (r *rbRaw) writeFrame(op byte, payload []byte) {
	r.t.Helper()
	r.writeBytes(rbFrameBytes(op, payload))
}

// readFrame reads one server frame (unmasked, unfragmented).
func (r *rbRaw) readFrame() (op byte, payload []byte, err error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(rbGuard))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0xf0 != 0x80 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("bad server frame header %x", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}

// readData returns the next text frame, skipping pings (never answered).
func (r *rbRaw) readData() rbFrame {
	r.t.Helper()
	for {
		op, p, err := r.readFrame()
		if err != nil {
			r.t.Fatalf("%s: waiting for a frame: %v", r.name, err)
		}
		switch op {
		case rbOpPing:
			continue
		case rbOpText:
			f, err := rbDecodeFrame(p)
			if err != nil {
				r.t.Fatalf("%s: %v", r.name, err)
			}
			return f
		default:
			r.t.Fatalf("%s: got a frame with opcode %d (%.100q), want a text frame", r.name, op, p)
		}
	}
}

func (r *rbRaw) login(uid string) rbFrame {
	r.t.Helper()
	r.writeFrame(rbOpText, []byte(jsonText(map[string]string{"type": "login", "uid": uid})))
	w := r.readData()
	if w.Type != "welcome" || w.UID != uid {
		r.t.Fatalf("%s: got %.300s, want a welcome for %q", r.name, w.raw, uid)
	}
	return w
}

// rbCloseCode splits a close frame's payload.
func rbCloseCode(p []byte) (int, string) {
	if len(p) < 2 {
		return 1005, ""
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:])
}

// expectClose reads, skipping pings and failing on data, until a close
// frame, asserts its code, then asserts the server closes the socket.
func (r *rbRaw) expectClose(code int) string {
	r.t.Helper()
	for {
		op, p, err := r.readFrame()
		if err != nil {
			r.t.Fatalf("%s: %v, want close %d", r.name, err, code)
		}
		switch op {
		case rbOpPing:
			continue
		case rbOpClose:
			got, reason := rbCloseCode(p)
			if got != code {
				r.t.Fatalf("%s: closed with %d %q, want %d", r.name, got, reason, code)
			}
			r.expectHangup()
			return reason
		default:
			r.t.Fatalf("%s: got a frame with opcode %d (%.100q), want close %d", r.name, op, p, code)
		}
	}
}

// expectHangup asserts the server closes the TCP connection (EOF or reset,
// not a timeout) with nothing but pings before.
func (r *rbRaw) expectHangup() {
	r.t.Helper()
	for {
		op, p, err := r.readFrame()
		if err == nil && op == rbOpPing {
			continue
		}
		var ne net.Error
		switch {
		case err == nil:
			r.t.Fatalf("%s: got a frame with opcode %d (%.100q), want the server to hang up", r.name, op, p)
		case errors.As(err, &ne) && ne.Timeout():
			r.t.Fatalf("%s: the server did not close the connection within %s", r.name, rbGuard)
		}
		return
	}
}

// ---------------------------------------------------------------------------
// Process figures (Caddy runs in this process)

// rbHeap returns HeapAlloc and HeapInuse after a full collection.
func rbHeap() (alloc, inuse uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.HeapInuse
}

const rbMiB = 1 << 20
