package pushhub_test

import (
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestReceipts: what POST /send answers: connections reached, and with
// wait_ack the json connections that acknowledged in time. (Slow consumers
// dropped: TestSlowConsumer.)
func TestReceipts(t *testing.T) {
	h := harness.InProcess(t)
	h.Load(`
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
	}
	push_hub /text {
		hub {$HUB}
		protocol text
		auth first_message
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`)
	api := h.API()
	send := func(body, want string) {
		t.Helper()
		api.Post(t, "/send", body).ExpectJSON(http.StatusOK, want)
	}

	// One uid on two json connections and a text one: three deliveries.
	j1 := harness.Dial(t, "multi-json#1", h.WS+"/ws", nil)
	j1.Login("multi")
	j2 := harness.Dial(t, "multi-json#2", h.WS+"/ws", nil)
	j2.Login("multi")
	tx := harness.Dial(t, "multi-text", h.WS+"/text", nil)
	tx.LoginText("multi")
	send(`{"uid":"multi","data":"x"}`, harness.ReceiptJSON(3, 0))
	j1.ExpectMessage(`"x"`)
	j2.ExpectMessage(`"x"`)
	tx.Expect("x")

	// wait_ack: a json client that acks and one that does not.
	acker := harness.Dial(t, "acker", h.WS+"/ws", nil)
	acker.Login("ack")
	silent := harness.Dial(t, "silent", h.WS+"/ws", nil)
	silent.Login("ack")
	ackDone := ackOnce(acker.Conn, 0)
	send(`{"uid":"ack","data":"please ack","wait_ack":"2s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":1}`)
	if err := <-ackDone; err != nil {
		t.Fatal(err)
	}
	silent.ExpectMessage(`"please ack"`)

	// Both ack: 2. Acknowledgements are cumulative: an ack of a later seq
	// covers the message.
	both := harness.Dial(t, "both#1", h.WS+"/ws", nil)
	both.Login("both")
	both2 := harness.Dial(t, "both#2", h.WS+"/ws", nil)
	both2.Login("both")
	ack1, ack2 := ackOnce(both.Conn, 5), ackOnce(both2.Conn, 5)
	send(`{"uid":"both","data":1,"wait_ack":"10s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":2}`)
	for _, done := range []chan error{ack1, ack2} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	// A text connection is never counted in acked, even if it sends what
	// looks like an ack.
	mj := harness.Dial(t, "mixed-json", h.WS+"/ws", nil)
	mj.Login("mixed")
	mt := harness.Dial(t, "mixed-text", h.WS+"/text", nil)
	mt.LoginText("mixed")
	textDone := make(chan error, 1)
	go func() {
		_, _, err := mt.ReadMessage()
		if err == nil {
			err = mt.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","seq":99999999999}`))
		}
		textDone <- err
	}()
	jsonDone := ackOnce(mj.Conn, 0)
	send(`{"uid":"mixed","data":"m","wait_ack":"2s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":1}`)
	for _, done := range []chan error{textDone, jsonDone} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	// Broadcast: every connection.
	send(`{"all":true,"data":"all"}`, harness.ReceiptJSON(9, 0))
}

// ackOnce reads one message on ws's own goroutine and acknowledges its seq
// plus ahead.
func ackOnce(ws *websocket.Conn, ahead uint64) chan error {
	done := make(chan error, 1)
	go func() {
		_, b, err := ws.ReadMessage()
		if err == nil {
			var f harness.Frame
			if f, err = harness.DecodeFrame(b); err == nil {
				err = ws.WriteJSON(map[string]any{"type": "ack", "seq": f.Seq + ahead})
			}
		}
		done <- err
	}()
	return done
}
