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
	gone := func(t *testing.T, uid string) { // and the observer still served
		t.Helper()
		api.WaitOnline(t, uid, 0)
		api.Post(t, "/send", `{"uid":"`+uid+`","data":1}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(0, 0))
		n++
		data := harness.JSON(fmt.Sprintf("after %d", n))
		api.Post(t, "/send", `{"uid":"observer","data":`+data+`}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
		obsR.ExpectMessage(t, data)
	}

	// Three peers go silent at once, each its own way; the server closes
	// each of them.
	raw := harness.DialRaw(t, "dead-raw", h.WS+"/ws", 0)
	raw.Login("dead-raw") // then it reads, but never writes: no pong
	deaf := harness.LoggedIn(t, h.WS+"/ws", "dead-ws")
	pings := 0
	deaf.SetPingHandler(func(string) error { pings++; return nil }) // no pong
	half := harness.DialRaw(t, "half", h.WS+"/ws", 0)
	half.Login("half")
	full := harness.FrameBytes(harness.OpText, []byte(`{"type":"ping","id":1}`))
	half.WriteBytes(full[:4]) // the header, half the mask key: then nothing

	if reason := raw.ExpectClose(4006); reason == "" {
		t.Fatal("dead-raw: 4006 without a reason")
	}
	gone(t, "dead-raw")

	deaf.ExpectClose(4006)
	deaf.ExpectHangup()
	if pings == 0 {
		t.Fatal("dead-ws: closed without having been pinged")
	}
	gone(t, "dead-ws")

	// Stuck in the middle of a frame, it gets no close frame it could read.
	op, p, err := half.Next()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("half: the server did not close the connection")
	}
	if err == nil && op != harness.OpClose {
		t.Fatalf("half: got opcode %d %q, want the connection closed", op, p)
	}
	gone(t, "half")

	// The observer, idle throughout, was pinged and stayed; a broadcast
	// reaches it alone.
	api.Post(t, "/send", `{"all":true,"data":"all"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	obsR.ExpectMessage(t, `"all"`)
	if err := obsR.Ended(); err != nil {
		t.Fatalf("observer: the connection ended: %v", err)
	}
}
