package pushhub_test

// Helpers of the end-to-end tests (e2e_*_test.go): they run a real Caddy in
// this test binary through caddytest, load a Caddyfile per test, and talk to
// it with real WebSocket clients (gorilla/websocket) and a real HTTP client.
//
// caddytest shares one Caddy instance per test binary: the e2e tests never
// call t.Parallel, and each one loads the whole config it needs. Each test
// names its own hub, so no state (connections, groups, counters) leaks from
// one test into the next: loading a config that no longer names the previous
// test's hub closes that hub.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	_ "github.com/pushhub/caddy-pushhub"
)

// Ports of the e2e suite: a block of 100 ports (9500-9599 first). Two test
// binaries of this package may run at once in one checkout (an engineer's
// "go test ./..." next to another's); each claims a block of its own by
// holding a listener on the block's lock port for its whole life, so that
// neither loads its configs into the other's Caddy nor fights over ports.
// The admin port differs from caddytest's default (2999) for the same
// reason. The blocks avoid 9600-9699 and 9780-9789, which the robust_* and
// browser tests of this package use.
var (
	portBase  = claimPortBlock()
	wsPort    = portBase + 1  // the push_hub site (plain HTTP)
	apiPort   = portBase + 2  // the push_api site
	extPort   = portBase + 3  // push_api sites bound to a non-loopback address
	extKeyed  = portBase + 4  // the same, with a key
	httpsPort = portBase + 43 // https sites (tls internal)
	httpPort  = portBase + 80 // the HTTP->HTTPS redirects of https sites
	adminPort = portBase + 99
)

// portLock holds the claimed block for the life of the test binary.
var portLock net.Listener

// claimPortBlock returns the first block whose lock port (base+98) this
// process could bind, or 0 when every block is taken.
func claimPortBlock() int {
	for _, base := range []int{9500, 9800, 9900, 9400, 9300} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+98))
		if err == nil {
			portLock = l
			return base
		}
	}
	return 0
}

// ioTimeout guards every read and request: a failure guard, never an
// assertion on how fast something happens.
const ioTimeout = 5 * time.Second

var (
	wsURL    = fmt.Sprintf("ws://localhost:%d", wsPort)
	siteURL  = fmt.Sprintf("http://localhost:%d", wsPort)
	apiURL   = fmt.Sprintf("http://localhost:%d", apiPort)
	wssURL   = fmt.Sprintf("wss://localhost:%d", httpsPort)
	httpsURL = fmt.Sprintf("https://localhost:%d", httpsPort)
)

// globalOptions precede every config the suite loads.
func globalOptions() string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	skip_install_trust
	persist_config off
	grace_period 2s
}
`, adminPort, httpPort, httpsPort)
}

// loadConfig loads sites (Caddyfile site blocks) into the test binary's
// Caddy, starting it on first use, and stops the test if the load fails.
// Loading again is a config reload.
func loadConfig(t *testing.T, sites string) {
	t.Helper()
	if portBase == 0 {
		t.Fatal("every e2e port block is taken: are five other test binaries of this package running?")
	}
	before := t.Failed()
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
		AdminPort:          adminPort,
		LoadRequestTimeout: 10 * time.Second,
	})
	tester.InitServer(globalOptions()+sites, "caddyfile")
	if !before && t.Failed() {
		t.Fatalf("loading the config failed:\n%s", sites)
	}
	waitOldListenersClosed(t)
}

// waitOldListenersClosed waits until each port of the block has at most
// one listening socket. On Linux, Caddy binds a reloaded config's
// listeners with SO_REUSEPORT next to the old ones and /load returns once
// the old servers have begun shutting down, not once their sockets are
// closed; a connection that the kernel queued on an old socket in that
// moment is reset (Caddy's behaviour, not the plugin's). A readiness guard
// only: where /proc/net/tcp cannot be read, it returns at once.
func waitOldListenersClosed(t *testing.T) {
	t.Helper()
	ports := []int{wsPort, apiPort, extPort, extKeyed, httpsPort, httpPort}
	eventually(t, "the previous config's listeners are closed", func() (bool, string) {
		counts, ok := listeningSockets()
		if !ok {
			return true, ""
		}
		for _, p := range ports {
			if counts[p] > 1 {
				return false, fmt.Sprintf("%d sockets listen on port %d", counts[p], p)
			}
		}
		return true, ""
	})
}

// listeningSockets counts the TCP sockets in LISTEN state per local port,
// from /proc/net/tcp and /proc/net/tcp6.
func listeningSockets() (map[int]int, bool) {
	counts := make(map[int]int)
	read := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		read = true
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, port, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if n, err := strconv.ParseUint(port, 16, 16); err == nil {
				counts[int(n)]++
			}
		}
	}
	return counts, read
}

// ---------------------------------------------------------------------------
// WebSocket clients

// wsConn is a real WebSocket client of the test.
type wsConn struct {
	t    *testing.T
	name string
	*websocket.Conn
}

var dialer = &websocket.Dialer{HandshakeTimeout: ioTimeout}

// dial connects to url and fails the test if the upgrade does not succeed.
// The connection is closed when the test ends.
func dial(t *testing.T, name, url string, hdr http.Header) *wsConn {
	t.Helper()
	return dialWith(t, dialer, name, url, hdr)
}

func dialWith(t *testing.T, d *websocket.Dialer, name, url string, hdr http.Header) *wsConn {
	t.Helper()
	c, resp, err := d.Dial(url, hdr)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("%s: dialing %s: %v (%s)", name, url, err, status)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("%s: upgrade answered %s, want 101", name, resp.Status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &wsConn{t: t, name: name, Conn: c}
}

// dialRefused asserts that the upgrade to url is refused with status.
func dialRefused(t *testing.T, url string, hdr http.Header, status int) {
	t.Helper()
	c, resp, err := dialer.Dial(url, hdr)
	if err == nil {
		_ = c.Close()
		t.Fatalf("dialing %s (headers %v) succeeded, want HTTP %d", url, hdr, status)
	}
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
		t.Fatalf("dialing %s: %v, want a refused handshake with HTTP %d", url, err, status)
	}
	if resp.StatusCode != status {
		t.Fatalf("dialing %s (headers %v): HTTP %d, want %d", url, hdr, resp.StatusCode, status)
	}
}

// send writes one text frame.
func (c *wsConn) send(s string) {
	c.t.Helper()
	c.write(websocket.TextMessage, []byte(s))
}

// write writes one frame of type mt.
func (c *wsConn) write(mt int, b []byte) {
	c.t.Helper()
	if err := c.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	if err := c.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("%s: writing %q: %v", c.name, b, err)
	}
}

// read returns the next text frame; anything else fails the test.
func (c *wsConn) read() string {
	c.t.Helper()
	return c.readFor("a frame")
}

// readFor is read, with what the test waits for in the failure message.
func (c *wsConn) readFor(want string) string {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	mt, b, err := c.ReadMessage()
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v", c.name, want, err)
	}
	if mt != websocket.TextMessage {
		c.t.Fatalf("%s: got a frame of type %d (%q), want a text frame", c.name, mt, b)
	}
	return string(b)
}

// expect reads the next frame and asserts it is exactly want.
func (c *wsConn) expect(want string) {
	c.t.Helper()
	if got := c.readFor(want); got != want {
		c.t.Fatalf("%s: got frame\n\t%s\nwant\n\t%s", c.name, got, want)
	}
}

// expectClose asserts that the next thing the server sends is a close frame
// with code, and returns its reason. A data frame before it fails the test.
func (c *wsConn) expectClose(code int) string {
	c.t.Helper()
	return expectCloseFrame(c.t, c.name, c.Conn, ioTimeout, code)
}

// expectCloseFrame asserts that the next thing ws reads, within the guard,
// is a close frame with code, and returns its reason.
func expectCloseFrame(t *testing.T, name string, ws *websocket.Conn, guard time.Duration, code int) string {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(guard))
	mt, b, err := ws.ReadMessage()
	if err == nil {
		t.Fatalf("%s: got a frame (type %d) %.300q, want close %d", name, mt, b, code)
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v, want close %d", name, err, code)
	}
	if ce.Code != code {
		t.Fatalf("%s: closed with %d %q, want close %d", name, ce.Code, ce.Text, code)
	}
	return ce.Text
}

// expectHangup asserts that the server has closed the TCP connection: a
// read on the socket ends (EOF or reset), it does not time out.
func (c *wsConn) expectHangup() {
	c.t.Helper()
	nc := c.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 512)
	for {
		_, err := nc.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("%s: the server did not close the TCP connection", c.name)
		}
		return
	}
}

// closeNormally sends a close frame (1000) and closes the socket.
func (c *wsConn) closeNormally() {
	_ = c.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(ioTimeout))
	_ = c.Close()
}

// loginJSON logs in with a json login frame carrying uid (or a token) and
// asserts the welcome; it returns the connection id.
func (c *wsConn) loginJSON(field, credential, uid string, seq uint64) string {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"type": "login", field: credential})
	c.send(string(b))
	return c.expectWelcome(uid, seq)
}

// welcome is the json protocol's greeting.
type welcome struct {
	Type   string `json:"type"`
	UID    string `json:"uid"`
	ConnID string `json:"conn_id"`
	Seq    uint64 `json:"seq"`
}

// expectWelcome asserts that the next frame is exactly a welcome for uid at
// sequence seq (with a non-empty conn_id) and returns the conn_id.
func (c *wsConn) expectWelcome(uid string, seq uint64) string {
	c.t.Helper()
	frame := c.readFor(fmt.Sprintf("a welcome for uid %q", uid))
	var w welcome
	if err := strictJSON(frame, &w); err != nil {
		c.t.Fatalf("%s: %v in welcome frame %s", c.name, err, frame)
	}
	if w.Type != "welcome" || w.UID != uid || w.Seq != seq || w.ConnID == "" {
		c.t.Fatalf("%s: got %s, want a welcome with uid %q, seq %d and a conn_id", c.name, frame, uid, seq)
	}
	want := fmt.Sprintf(`{"type":"welcome","uid":%s,"conn_id":%s,"seq":%d}`, jsonText(uid), jsonText(w.ConnID), seq)
	if frame != want {
		c.t.Fatalf("%s: got welcome %s, want %s", c.name, frame, want)
	}
	return w.ConnID
}

// errorFrame is the json protocol's error frame.
type errorFrame struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

// expectError asserts that the next frame is an error frame with code and
// the request id (raw JSON, "" for none) and nothing else but a message.
func (c *wsConn) expectError(code, id string) {
	c.t.Helper()
	frame := c.readFor(fmt.Sprintf("an error frame with code %q", code))
	var e errorFrame
	if err := strictJSON(frame, &e); err != nil {
		c.t.Fatalf("%s: %v in error frame %s", c.name, err, frame)
	}
	if e.Type != "error" || e.Code != code || string(e.ID) != id || e.Message == "" {
		c.t.Fatalf("%s: got %s, want an error frame with code %q, id %q and a message", c.name, frame, code, id)
	}
}

// reader reads c on its own goroutine (so the client answers pings while the
// test waits for something else) and hands every text frame over.
type reader struct {
	frames chan string
	done   chan error // the read error that ended the reader
}

func (c *wsConn) startReader() *reader {
	r := &reader{frames: make(chan string, 4096), done: make(chan error, 1)}
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		for {
			mt, b, err := c.ReadMessage()
			if err != nil {
				r.done <- err
				return
			}
			if mt != websocket.TextMessage {
				r.done <- fmt.Errorf("got a frame of type %d", mt)
				return
			}
			r.frames <- string(b)
		}
	}()
	return r
}

// expect asserts that the next frame the reader got is exactly want.
func (r *reader) expect(t *testing.T, name, want string) {
	t.Helper()
	select {
	case got := <-r.frames:
		if got != want {
			t.Fatalf("%s: got frame\n\t%.200s\nwant\n\t%.200s", name, got, want)
		}
	case err := <-r.done:
		t.Fatalf("%s: connection ended (%v) while waiting for %.200s", name, err, want)
	case <-time.After(ioTimeout):
		t.Fatalf("%s: no frame while waiting for %.200s", name, want)
	}
}

// ---------------------------------------------------------------------------
// HTTP and the push API

// httpClient speaks to the sites; no keep-alive, so a config reload never
// leaves the client holding a connection to a server that is going away.
var httpClient = &http.Client{
	Timeout:   ioTimeout,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// response is an HTTP answer, read whole.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request; headers come as name, value pairs.
func do(t *testing.T, method, url, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// post sends a JSON body to the API call at url.
func post(t *testing.T, url, body string, headers ...string) response {
	t.Helper()
	return do(t, http.MethodPost, url, body, headers...)
}

func get(t *testing.T, url string, headers ...string) response {
	t.Helper()
	return do(t, http.MethodGet, url, "", headers...)
}

// expectJSON asserts status, a JSON content type and the exact body (the API
// ends its bodies with a newline).
func (r response) expectJSON(t *testing.T, status int, body string) {
	t.Helper()
	if r.status != status || r.body != body+"\n" {
		t.Fatalf("got HTTP %d %q, want HTTP %d %q", r.status, r.body, status, body+"\n")
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// expectAPIError asserts status and a JSON error body
// {"error":{"code":code,"message":"..."}} and nothing more.
func (r response) expectAPIError(t *testing.T, status int, code string) {
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
	if err := strictJSON(r.body, &body); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Fatalf("error body %q, want code %q and a message", r.body, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// receipt is the exact body of a send's answer.
func receipt(delivered, dropped int) string {
	return fmt.Sprintf(`{"delivered":%d,"dropped":%d,"stored":false}`, delivered, dropped)
}

// online is the exact body of GET /online.
func online(uid string, n int) string {
	return fmt.Sprintf(`{"connections":%d,"online":%t,"uid":%s}`, n, n > 0, jsonText(uid))
}

// stats reads GET /stats.
type stats struct {
	Hub           string `json:"hub"`
	Connections   int64  `json:"connections"`
	Pending       int    `json:"pending"`
	UIDs          int    `json:"uids"`
	Groups        int    `json:"groups"`
	MessagesIn    uint64 `json:"messages_in"`
	MessagesOut   uint64 `json:"messages_out"`
	Pushes        uint64 `json:"pushes"`
	SlowConsumers uint64 `json:"slow_consumers"`
}

func getStats(t *testing.T, base string) stats {
	t.Helper()
	r := get(t, base+"/stats")
	if r.status != http.StatusOK {
		t.Fatalf("GET /stats: HTTP %d %q", r.status, r.body)
	}
	var s stats // the fields the tests look at; stats may carry more
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		t.Fatalf("GET /stats %q: %v", r.body, err)
	}
	return s
}

// eventually polls cond until it holds; it guards against a hang with a
// generous deadline and is never used to measure time. It is for effects
// the server applies after the client's side is done (a closed socket is
// unbound by the server's reader a moment later). cond also describes what
// it last saw, for the failure message.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	eventuallyWithin(t, ioTimeout, what, cond)
}

func eventuallyWithin(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %s (last seen: %s)", within, what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitOnline waits until GET /online?uid=uid reports n connections.
func waitOnline(t *testing.T, base, uid string, n int) {
	t.Helper()
	want := online(uid, n) + "\n"
	eventually(t, "GET /online?uid="+uid+" answers "+want, func() (bool, string) {
		r := get(t, base+"/online?uid="+uid)
		return r.status == http.StatusOK && r.body == want, fmt.Sprintf("HTTP %d %q", r.status, r.body)
	})
}

// ---------------------------------------------------------------------------
// JSON

// strictJSON decodes s into v, refusing unknown fields and trailing data.
func strictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// jsonText is v's JSON text.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// JWT

// signToken signs claims with method and key.
func signToken(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noneToken is an unsigned token (alg none).
func noneToken(claims jwt.MapClaims) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(jsonText(claims))) + "."
}

// valid and expired are claims for uid.
func validClaims(uid string) jwt.MapClaims {
	return jwt.MapClaims{"sub": uid, "exp": time.Now().Add(time.Hour).Unix()}
}

func expiredClaims(uid string) jwt.MapClaims {
	return jwt.MapClaims{"sub": uid, "exp": time.Now().Add(-time.Hour).Unix()}
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// ---------------------------------------------------------------------------
// TLS and addresses

// localCARoots trusts Caddy's local CA (the issuer of tls internal), read
// from Caddy's storage once a config with tls internal has been loaded.
func localCARoots(t *testing.T) *x509.CertPool {
	t.Helper()
	path := filepath.Join(caddy.AppDataDir(), "pki", "authorities", "local", "root.crt")
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading Caddy's local root certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no certificate", path)
	}
	return pool
}

// tlsConfig trusts only Caddy's local CA; nothing is skipped.
func tlsConfig(t *testing.T) *tls.Config {
	t.Helper()
	return &tls.Config{RootCAs: localCARoots(t), MinVersion: tls.VersionTLS12}
}

// waitForCert waits until the https site serves a certificate from Caddy's
// local CA: tls internal issues it in the background after a config loads.
// Only a readiness guard: nothing is asserted on how long it takes.
func waitForCert(t *testing.T) *tls.Config {
	t.Helper()
	var cfg *tls.Config
	// Issuing waits for the storage's lock, which another Caddy sharing the
	// storage may hold, or a crashed one may have left (stale after 10 s).
	eventuallyWithin(t, 30*time.Second, "the https site serves a certificate of Caddy's local CA", func() (bool, string) {
		if cfg == nil {
			if _, err := os.Stat(filepath.Join(caddy.AppDataDir(), "pki", "authorities", "local", "root.crt")); err != nil {
				return false, err.Error()
			}
			cfg = tlsConfig(t)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", fmt.Sprintf("localhost:%d", httpsPort), cfg)
		if err != nil {
			return false, err.Error()
		}
		_ = c.Close()
		return true, ""
	})
	return cfg
}

// nonLoopbackIPv4 is an IPv4 address of an interface that is up and not a
// loopback, or nil.
func nonLoopbackIPv4() net.IP {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.To4()
			}
		}
	}
	return nil
}

// padding is n bytes of readable text.
func padding(n int) string {
	return string(bytes.Repeat([]byte("x"), n))
}
