package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Conn is a WebSocket client of a test (gorilla/websocket), named for the
// failure messages. Every read and write waits at most Guard.
type Conn struct {
	*websocket.Conn
	t    testing.TB
	Name string
}

var dialer = &websocket.Dialer{HandshakeTimeout: Guard}

// Dial connects to url and fails t unless the upgrade succeeds; the socket
// is closed when the test ends. A wss:// URL is trusted against the local
// CA of the in-process Caddy (see WaitForCert) and nothing else.
func Dial(t testing.TB, name, url string, hdr http.Header) *Conn {
	t.Helper()
	d := dialer
	if strings.HasPrefix(url, "wss:") {
		d = &websocket.Dialer{HandshakeTimeout: Guard, TLSClientConfig: localTLS(t)}
	}
	ws, err := dial(d, url, hdr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return &Conn{Conn: ws, t: t, Name: name}
}

// LoggedIn dials url for a client named uid and logs it in as uid with a
// json login frame, asserting the welcome.
func LoggedIn(t testing.TB, url, uid string) *Conn {
	t.Helper()
	c := Dial(t, uid, url, nil)
	c.Login(uid)
	return c
}

// LoggedInText is LoggedIn for the text protocol.
func LoggedInText(t testing.TB, url, uid string) *Conn {
	t.Helper()
	c := Dial(t, uid, url, nil)
	c.LoginText(uid)
	return c
}

// DialErr connects to a ws:// url without a testing.TB, for goroutines of a
// test; the caller closes the socket.
func DialErr(url string, hdr http.Header) (*websocket.Conn, error) {
	return dial(dialer, url, hdr)
}

func dial(d *websocket.Dialer, url string, hdr http.Header) (*websocket.Conn, error) {
	ws, resp, err := d.Dial(url, hdr)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		return nil, fmt.Errorf("dialing %s: %v (%s)", url, err, status)
	}
	return ws, nil
}

// DialRefused asserts that the upgrade to url is refused with HTTP status.
func DialRefused(t testing.TB, url string, hdr http.Header, status int) {
	t.Helper()
	ws, resp, err := dialer.Dial(url, hdr)
	if err == nil {
		_ = ws.Close()
		t.Fatalf("dialing %s (headers %v) succeeded, want HTTP %d", url, hdr, status)
	}
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
		t.Fatalf("dialing %s: %v, want a refused handshake with HTTP %d", url, err, status)
	}
	if resp.StatusCode != status {
		t.Fatalf("dialing %s (headers %v): HTTP %d, want %d", url, hdr, resp.StatusCode, status)
	}
}

// Write writes one frame of type mt.
func (c *Conn) Write(mt int, b []byte) {
	c.t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(Guard))
	if err := c.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("%s: writing %.100q: %v", c.Name, b, err)
	}
}

// Send writes one text frame.
func (c *Conn) Send(s string) { c.t.Helper(); c.Write(websocket.TextMessage, []byte(s)) }

// SendJSON writes v as one text frame of JSON.
func (c *Conn) SendJSON(v any) { c.t.Helper(); c.Send(JSON(v)) }

// Read returns the next frame, which must be a text frame.
func (c *Conn) Read() string {
	c.t.Helper()
	return c.readFor("a frame")
}

func (c *Conn) readFor(want string) string {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(Guard))
	mt, b, err := c.ReadMessage()
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v", c.Name, want, err)
	}
	if mt != websocket.TextMessage {
		c.t.Fatalf("%s: got a frame of type %d (%.100q), want a text frame", c.Name, mt, b)
	}
	return string(b)
}

// ReadFrame returns the next frame of the json protocol.
func (c *Conn) ReadFrame() Frame {
	c.t.Helper()
	f, err := DecodeFrame([]byte(c.Read()))
	if err != nil {
		c.t.Fatalf("%s: %v", c.Name, err)
	}
	return f
}

// Expect asserts that the next frame is exactly want.
func (c *Conn) Expect(want string) {
	c.t.Helper()
	if got := c.readFor(fmt.Sprintf("%.200q", want)); got != want {
		c.t.Fatalf("%s: got frame\n\t%.300s\nwant\n\t%.300s", c.Name, got, want)
	}
}

// ExpectType asserts that the next frame is a json frame of type typ.
func (c *Conn) ExpectType(typ string) Frame {
	c.t.Helper()
	f := c.ReadFrame()
	if f.Type != typ {
		c.t.Fatalf("%s: got %.300s, want a %s frame", c.Name, f.Raw, typ)
	}
	return f
}

// SkipToMessage reads messages until one whose data is data (JSON), and
// returns it: earlier messages, which a test did not count, are skipped.
func (c *Conn) SkipToMessage(data string) Frame {
	c.t.Helper()
	for {
		if f := c.ExpectType("message"); string(f.Data) == data {
			return f
		}
	}
}

// ExpectWelcome asserts that the next frame is exactly a welcome for uid
// (a conn_id, a seq, an epoch where the hub keeps history, no resume) and
// returns it.
func (c *Conn) ExpectWelcome(uid string) Frame {
	c.t.Helper()
	w := c.ExpectType("welcome")
	if w.ConnID == "" || w.Raw != WelcomeJSON(w, uid, w.Seq, "") {
		c.t.Fatalf("%s: got %s, want a welcome for uid %q with a conn_id and no resume", c.Name, w.Raw, uid)
	}
	return w
}

// WelcomeJSON is the exact text of a welcome for uid at seq, with the
// conn_id and epoch of w, and resume (JSON, "" for none).
func WelcomeJSON(w Frame, uid string, seq uint64, resume string) string {
	s := fmt.Sprintf(`{"type":"welcome","uid":%s,"conn_id":%s,"seq":%d`, JSON(uid), JSON(w.ConnID), seq)
	if w.Epoch != "" {
		s += `,"epoch":` + JSON(w.Epoch)
	}
	if resume != "" {
		s += `,"resume":` + resume
	}
	return s + "}"
}

// Login logs in with a json login frame for uid and asserts the welcome.
func (c *Conn) Login(uid string) Frame {
	c.t.Helper()
	c.SendJSON(map[string]string{"type": "login", "uid": uid})
	return c.ExpectWelcome(uid)
}

// LoginSince logs in for uid resuming after since in the numbering epoch
// ("" for none: the current one), and returns the welcome (with its resume
// object) for the test to check.
func (c *Conn) LoginSince(uid string, since uint64, epoch string) Frame {
	c.t.Helper()
	login := map[string]any{"type": "login", "uid": uid, "since": since}
	if epoch != "" {
		login["epoch"] = epoch
	}
	c.SendJSON(login)
	w := c.ExpectType("welcome")
	if w.UID != uid || w.ConnID == "" {
		c.t.Fatalf("%s: got %s, want a welcome for uid %q", c.Name, w.Raw, uid)
	}
	return w
}

// LoginText logs in on the text protocol: the uid (or a token) as the first
// frame, then the recipe's answer.
func (c *Conn) LoginText(uid string) {
	c.t.Helper()
	c.Send(uid)
	c.Expect("login success, your uid is " + uid)
}

// ExpectMessage asserts that the next frame is a json message whose data
// is exactly data (JSON text), and returns it.
func (c *Conn) ExpectMessage(data string) Frame {
	c.t.Helper()
	f := c.ReadFrame()
	if f.Type != "message" || string(f.Data) != data {
		c.t.Fatalf("%s: got %.300s, want a message with data %s", c.Name, f.Raw, data)
	}
	return f
}

// ExpectError asserts that the next frame is an error frame with code and
// id (raw JSON, "" for none) and a message, and nothing else.
func (c *Conn) ExpectError(code, id string) {
	c.t.Helper()
	raw := c.readFor(fmt.Sprintf("an error frame with code %q", code))
	var e struct {
		Type    string          `json:"type"`
		ID      json.RawMessage `json:"id"`
		Code    string          `json:"code"`
		Message string          `json:"message"`
	}
	if err := StrictJSON(raw, &e); err != nil || e.Type != "error" || e.Code != code || string(e.ID) != id || e.Message == "" {
		c.t.Fatalf("%s: got %.300s, want an error frame with code %q, id %q and a message", c.Name, raw, code, id)
	}
}

// StillOpen proves that the connection is open and served: a json ping
// gets its pong.
func (c *Conn) StillOpen() {
	c.t.Helper()
	c.Send(`{"type":"ping","id":"still-open"}`)
	c.Expect(`{"type":"pong","id":"still-open"}`)
}

// ExpectClose asserts that the next thing the server sends is a close frame
// with code, and returns its reason. A data frame before it fails t.
func (c *Conn) ExpectClose(code int) string {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(Guard))
	mt, b, err := c.ReadMessage()
	if err == nil {
		c.t.Fatalf("%s: got a frame (type %d) %.300q, want close %d", c.Name, mt, b, code)
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		c.t.Fatalf("%s: %v, want close %d", c.Name, err, code)
	}
	if ce.Code != code {
		c.t.Fatalf("%s: closed with %d %q, want close %d", c.Name, ce.Code, ce.Text, code)
	}
	return ce.Text
}

// ExpectHangup asserts that the server has closed the TCP connection: a
// read on the socket ends (EOF or reset) instead of timing out.
func (c *Conn) ExpectHangup() {
	c.t.Helper()
	nc := c.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(Guard))
	buf := make([]byte, 512)
	for {
		_, err := nc.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("%s: the server did not close the TCP connection", c.Name)
		}
		return
	}
}

// ExpectDropped asserts that the connection ends without a close frame, as
// when the server's process dies (gorilla reports it as 1006).
func (c *Conn) ExpectDropped() {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(Guard))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
		c.t.Fatalf("%s: read %v, want the connection dropped without a close frame", c.Name, err)
	}
}

// CloseNormally sends a close frame (1000) and closes the socket.
func (c *Conn) CloseNormally() {
	_ = c.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(Guard))
	_ = c.Close()
}

// Reset closes the socket with a TCP reset instead of a close handshake.
func (c *Conn) Reset() { Reset(c.Conn) }

// Reset closes ws with a TCP reset.
func Reset(ws *websocket.Conn) {
	if tc, ok := ws.NetConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = ws.Close()
}
