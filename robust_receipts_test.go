package pushhub_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestRobustReceipts: what POST /send answers — connections reached,
// slow consumers dropped, acknowledgements within wait_ack.
func TestRobustReceipts(t *testing.T) {
	hub := rbHubName("receipts")
	ws := strings.ReplaceAll(`
	push_hub /ws {
		hub HUB
		auth first_message
	}
	push_hub /text {
		hub HUB
		protocol text
		auth first_message
	}`, "HUB", hub)
	api := fmt.Sprintf(`
	push_api {
		hub %s
		key %s
	}`, hub, rbKey)
	rbLoad(t, rbSites(ws, api))
	send := func(body, want string) {
		t.Helper()
		rbExpectBody(t, rbAPI(t, http.MethodPost, "/send", body, nil), http.StatusOK, want)
	}

	// One uid on two json connections and a text one: three deliveries.
	j1 := rbDial(t, "multi-json#1", "/ws", nil)
	j1.login("multi", nil)
	j2 := rbDial(t, "multi-json#2", "/ws", nil)
	j2.login("multi", nil)
	tx := rbDial(t, "multi-text", "/text", nil)
	tx.sendText("multi")
	tx.expectText("login success, your uid is multi")
	send(`{"uid":"multi","data":"x"}`, `{"delivered":3,"dropped":0,"stored":false}`)
	j1.expectMessage(`"x"`)
	j2.expectMessage(`"x"`)
	tx.expectText("x")
	send(`{"uids":["multi","multi","nobody"],"data":"y"}`, `{"delivered":3,"dropped":0,"stored":false}`)
	j1.expectMessage(`"y"`)
	j2.expectMessage(`"y"`)
	tx.expectText("y")
	send(`{"uid":"nobody","data":"z"}`, `{"delivered":0,"dropped":0,"stored":false}`)

	// wait_ack: a json client that acks and one that does not.
	acker := rbDial(t, "acker", "/ws", nil)
	acker.login("ack", nil)
	silent := rbDial(t, "silent", "/ws", nil)
	silent.login("ack", nil)
	ackDone := make(chan error, 1)
	go func() {
		// acker's own goroutine: read the message, acknowledge its seq.
		_, b, err := acker.ws.ReadMessage()
		if err == nil {
			var f rbFrame
			if f, err = rbDecodeFrame(b); err == nil {
				err = acker.ws.WriteJSON(map[string]any{"type": "ack", "seq": f.Seq})
			}
		}
		ackDone <- err
	}()
	send(`{"uid":"ack","data":"please ack","wait_ack":"2s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":1}`)
	if err := <-ackDone; err != nil {
		t.Fatal(err)
	}
	silent.expectMessage(`"please ack"`)

	// Both ack: 2 (acks are cumulative: one ack of a later seq covers it).
	both := rbDial(t, "acker#2", "/ws", nil)
	both.login("both", nil)
	both2 := rbDial(t, "acker#3", "/ws", nil)
	both2.login("both", nil)
	for _, c := range []*rbClient{both, both2} {
		go func() {
			for {
				_, b, err := c.ws.ReadMessage()
				if err != nil {
					return
				}
				if f, err := rbDecodeFrame(b); err == nil && f.Type == "message" {
					_ = c.ws.WriteJSON(map[string]any{"type": "ack", "seq": f.Seq + 5})
				}
			}
		}()
	}
	send(`{"uid":"both","data":1,"wait_ack":"10s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":2}`)

	// A text connection is never counted in acked, even if it sends what
	// looks like an ack.
	mj := rbDial(t, "mixed-json", "/ws", nil)
	mj.login("mixed", nil)
	mt := rbDial(t, "mixed-text", "/text", nil)
	mt.sendText("mixed")
	mt.expectText("login success, your uid is mixed")
	textDone := make(chan error, 1)
	go func() {
		_, _, err := mt.ws.ReadMessage()
		if err == nil {
			err = mt.ws.WriteMessage(1, []byte(`{"type":"ack","seq":99999999999}`))
		}
		textDone <- err
	}()
	go func() {
		_, b, err := mj.ws.ReadMessage()
		if err == nil {
			if f, err := rbDecodeFrame(b); err == nil {
				_ = mj.ws.WriteJSON(map[string]any{"type": "ack", "seq": f.Seq})
			}
		}
	}()
	send(`{"uid":"mixed","data":"m","wait_ack":"2s"}`, `{"delivered":2,"dropped":0,"stored":false,"acked":1}`)
	if err := <-textDone; err != nil {
		t.Fatal(err)
	}

	// Broadcast: every connection.
	rbExpectBody(t, rbAPI(t, http.MethodPost, "/send", `{"all":true,"data":"all"}`, nil), http.StatusOK,
		`{"delivered":9,"dropped":0,"stored":false}`)

	// wait_ack out of range.
	for _, v := range []string{`"-1s"`, `"1h"`, `"31s"`} {
		rbExpectAPIError(t, rbAPI(t, http.MethodPost, "/send", `{"uid":"ack","data":1,"wait_ack":`+v+`}`, nil),
			http.StatusBadRequest, "bad_wait_ack")
	}
}
