package hub

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// burstServer serves a hub over TLS or plain TCP and reports whether its
// connections went to the poller.
func burstServer(t *testing.T, useTLS bool) (*Hub, string) {
	h := New("burst", Options{Settings: Settings{AllowClientPublish: true, RateLimit: 1e6, RateBurst: 1e6, SendQueue: 10000}})
	t.Cleanup(func() { h.Close("test over") })
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Upgrade(w, r, ConnOptions{UID: r.URL.Query().Get("uid")}); err != nil {
			t.Errorf("upgrade: %v", err)
		}
	})
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(handler)
	} else {
		srv = httptest.NewServer(handler)
	}
	t.Cleanup(srv.Close)
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// TestBurstIsReadWhole sends bursts of frames that arrive together, so that
// after one message is read the rest sits in the reader's buffer or, over
// TLS, in the TLS layer while the socket has nothing more to read. Every
// frame must be handled; a reader that handed the connection back to the
// poller with frames still buffered would stall here.
func TestBurstIsReadWhole(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "ws", true: "wss"}[useTLS], func(t *testing.T) {
			h, url := burstServer(t, useTLS)
			d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the test server's own certificate
			ws, _, err := d.Dial(url+"/?uid=me", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if h.poller != nil {
				// Serve registers the login, then hands the socket to the poller.
				waitPolled(t, h.connOf(t, "me"))
			}
			const bursts, perBurst = 20, 50
			go func() {
				n := 0
				for range bursts {
					for range perBurst {
						n++
						frame := `{"type":"send","to":"me","data":` + strconv.Itoa(n) + `}`
						if ws.WriteMessage(websocket.TextMessage, []byte(frame)) != nil {
							return
						}
					}
					time.Sleep(5 * time.Millisecond) // let each burst land as one
				}
			}()
			readNumbered(t, ws, bursts*perBurst)
		})
	}
}

// readNumbered reads json messages whose data are 1 to n, in that order,
// skipping frames that are not messages (the welcome).
func readNumbered(t *testing.T, ws *websocket.Conn, n int) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for next := 1; next <= n; {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", next-1, n, err)
		}
		var f struct {
			Type string
			Data int
		}
		if json.Unmarshal(b, &f) != nil || f.Type != "message" {
			continue // the welcome
		}
		if f.Data != next {
			t.Fatalf("got message %d, want %d", f.Data, next)
		}
		next++
	}
}

// connOf finds the connection of a uid that holds exactly one.
func (h *Hub) connOf(t *testing.T, uid string) *Conn {
	t.Helper()
	var c *Conn
	waitFor(t, "uid "+uid+" has a single connection", func() bool {
		h.withEntry(uid, func(e *uidEntry) {
			if len(e.conns) == 1 {
				c = e.conns[0]
			}
		})
		return c != nil
	})
	return c
}

// waitPolled waits until c is on the poller: a test of the poller's reads
// that ran without it would not test them.
func waitPolled(t *testing.T, c *Conn) {
	t.Helper()
	waitFor(t, "the connection on the poller (without it this test would not test it)", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.polled
	})
}

// TestBroadcastAcrossCores runs a broadcast big enough to be split among
// goroutines (under -race): every connection gets it exactly once.
func TestBroadcastAcrossCores(t *testing.T) {
	h := New("wide", Options{Settings: Settings{PingInterval: time.Hour, AuthTimeout: time.Hour}})
	defer h.Close("test over")
	n := parallelFrom + 100
	for i := range n {
		h.serveConn(newSinkConn(), ConnOptions{Protocol: []string{"json", "text"}[i%2], UID: "u" + strconv.Itoa(i)})
	}
	for round := 1; round <= 3; round++ {
		if r := h.push(Target{All: true}, Message{Data: json.RawMessage(`"hi"`)}); r.Delivered != n || r.Dropped != 0 {
			t.Fatalf("round %d: receipt %+v, want %d delivered", round, r, n)
		}
		if got := h.stats().MessagesOut; got != uint64(round*n) {
			t.Fatalf("round %d: %d frames queued in all, want %d", round, got, round*n)
		}
	}
}

// TestFramesInPieces: the poller reads a logged-in client's whole frames
// itself, without waiting; a frame that arrives in pieces, or is larger
// than the reader's buffer, is finished by a worker that waits for the
// rest. Every message arrives, in order, however the bytes were cut.
func TestFramesInPieces(t *testing.T) {
	h, url := burstServer(t, false)
	nc, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write([]byte("GET /?uid=me HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	c := h.connOf(t, "me")
	waitPolled(t, c)
	if !c.readsInline() {
		t.Fatal("a logged-in client on plain TCP with the in-process broker is not read inline: this test would not test it")
	}

	n := 0
	frame := func(pad int) []byte {
		n++
		return maskedText(fmt.Sprintf(`{"type":"send","to":"me","data":{"n":%d,"pad":%q}}`, n, strings.Repeat("p", pad)))
	}
	cut := func(b []byte, pieces ...int) {
		for _, p := range pieces {
			if _, err := nc.Write(b[:p]); err != nil {
				t.Fatal(err)
			}
			b = b[p:]
			time.Sleep(20 * time.Millisecond) // let each piece land on its own
		}
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	cut(frame(0), 1)                                             // one byte, then the rest
	cut(frame(0), 5)                                             // a header cut short
	cut(frame(0), 20)                                            // a payload cut short
	cut(frame(1000))                                             // larger than the reader's buffer, whole
	big := frame(5000)                                           // larger still, dribbled
	cut(big, 100, 100, 100, 1000, 2000)                          // (the rest in one piece)
	cut(append(append(frame(0), frame(0)...), frame(0)...), 150) // whole frames, then half of one

	want := 1
	for want <= n {
		f, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", want-1, n, err)
		}
		var m struct {
			Type string
			Data struct{ N int }
		}
		if json.Unmarshal(f, &m) != nil || m.Type != "message" {
			continue // the welcome
		}
		if m.Data.N != want {
			t.Fatalf("message %d, want %d", m.Data.N, want)
		}
		want++
	}
}

// maskedText is a client's text frame, masked as RFC 6455 requires.
func maskedText(payload string) []byte {
	key := [4]byte{1, 2, 3, 4}
	b := appendFrameHeader(nil, opText, len(payload))
	b[1] |= maskBit
	b = append(b, key[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

// readServerFrame reads one unmasked, unfragmented server frame's payload.
func readServerFrame(br *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, err
	}
	size := int(h[1] & 0x7f)
	switch size {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return nil, err
		}
		size = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return nil, err
		}
		size = int(binary.BigEndian.Uint64(l[:]))
	}
	p := make([]byte, size)
	_, err := io.ReadFull(br, p)
	return p, err
}
