package hub

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestUpgradeReadsThroughTheHubsReader guards the contract upgrade.go rests
// on: after the handshake, gorilla reads frames through the reader the
// hijack handed it, so the hub sees every byte gorilla will read. The hub
// pulls a client's frame into that reader itself; gorilla must then read
// the same frame from it. Were gorilla to read through a reader of its own,
// the frame's bytes would already be gone from the socket and its read
// would time out.
func TestUpgradeReadsThroughTheHubsReader(t *testing.T) {
	type upgraded struct {
		ws  *websocket.Conn
		err error
		br  bool
	}
	done := make(chan upgraded, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, br, err := handshake(w, r)
		if err != nil {
			done <- upgraded{err: err}
			return
		}
		if br == nil {
			done <- upgraded{ws: ws}
			return
		}
		// Pull the client's frame into the hub's reader, as the poller's
		// reader does when it peeks for control frames.
		_ = ws.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.Peek(2); err != nil {
			done <- upgraded{ws: ws, err: err}
			return
		}
		if br.Buffered() < len("hello")+6 {
			_, _ = br.Peek(len("hello") + 6)
		}
		_ = ws.NetConn().SetReadDeadline(time.Now().Add(time.Second))
		_, msg, err := ws.ReadMessage()
		if err == nil && string(msg) != "hello" {
			err = &Error{Code: "wrong_message", Message: "gorilla read " + string(msg)}
		}
		done <- upgraded{ws: ws, err: err, br: true}
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-done:
		if u.ws != nil {
			defer u.ws.Close()
		}
		switch {
		case !u.br:
			t.Fatalf("the handshake gave the hub no reader (error %v)", u.err)
		case u.err != nil:
			t.Fatalf("gorilla did not read the frame through the hub's reader: %v "+
				"(has gorilla's reuse of the hijacked reader changed? see upgrade.go)", u.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never finished the handshake")
	}
}
