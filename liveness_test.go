package pushhub_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestDeadPeers: peers that go silent are closed once ping_interval plus
// pong_timeout pass without a frame or a pong (4006, or a hang-up for one
// stuck in the middle of a frame), and a healthy idle peer, pinged all
// along, is not.
func TestDeadPeers(t *testing.T) {
	h := harness.Start(t, harness.OneHub("ping_interval 1s", "pong_timeout 1s"))
	api := h.API()
	obs := harness.LoggedIn(t, h.WS+"/ws", "observer")
	obsR := obs.StartReader() // idle but alive: gorilla answers pings while reading
	n := 0
	gone := func(t *testing.T, uid string) {
		t.Helper()
		api.WaitOnline(t, uid, 0)
		api.Post(t, "/send", `{"uid":"`+uid+`","data":1}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(0, 0))
		n++
		data := harness.JSON(fmt.Sprintf("after %d", n))
		api.Send(t, `{"all":true,"data":`+data+`}`)
		obsR.ExpectMessage(t, data)
	}

	t.Run("silent socket after login", func(t *testing.T) {
		r := harness.DialRaw(t, "dead-raw", h.WS+"/ws", 0)
		r.Login("dead-raw")
		if reason := r.ExpectClose(4006); reason == "" { // it reads, but never writes: no pong
			t.Fatal("4006 without a reason")
		}
		gone(t, "dead-raw")
	})
	t.Run("client that stopped answering pings", func(t *testing.T) {
		c := harness.LoggedIn(t, h.WS+"/ws", "dead-ws")
		pings := 0
		c.SetPingHandler(func(string) error { pings++; return nil })
		c.ExpectClose(4006)
		c.ExpectHangup()
		if pings == 0 {
			t.Fatal("closed without having been pinged")
		}
		gone(t, "dead-ws")
	})
	t.Run("stalls halfway through a frame", func(t *testing.T) {
		r := harness.DialRaw(t, "half", h.WS+"/ws", 0)
		r.Login("half")
		full := harness.FrameBytes(harness.OpText, []byte(`{"type":"ping","id":1}`))
		r.WriteBytes(full[:4]) // the header, half the mask key: then nothing
		op, p, err := r.Next()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close the connection")
		}
		if err == nil && op != harness.OpClose {
			t.Fatalf("got opcode %d %q, want the connection closed", op, p)
		}
		gone(t, "half")
	})

	// The observer, idle throughout, was pinged and stayed.
	api.Get(t, "/online?uid=observer").ExpectJSON(http.StatusOK, harness.OnlineJSON("observer", 1))
	if err := obsR.Ended(); err != nil {
		t.Fatalf("observer: the connection ended: %v", err)
	}
}
