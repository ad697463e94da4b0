package pushhub_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestE2EHostileFrames: a frame over max_message_size closes 1009, a text
// frame that is not UTF-8 closes 1007, a binary frame closes 1003; a
// bystander keeps receiving through each of them.
func TestE2EHostileFrames(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_frames
		auth first_message
		max_message_size 1KiB
	}
	push_hub /ws-text {
		hub e2e_frames
		protocol text
		auth first_message
		max_message_size 1KiB
		allow_client_publish
	}
}

http://localhost:%d {
	push_api {
		hub e2e_frames
	}
}
`, wsPort, apiPort))
	bystander := dial(t, "bystander", wsURL+"/ws", nil)
	bystander.loginJSON("uid", "bystander", "bystander", 0)
	seq := 0
	checkBystander := func(after string) {
		t.Helper()
		seq++
		post(t, apiURL+"/send", `{"uid":"bystander","data":"after `+after+`"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
		bystander.expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":"after %s"}`, seq, after))
	}

	// A frame of exactly max_message_size is read.
	exact := dial(t, "exactly 1 KiB", wsURL+"/ws", nil)
	exact.loginJSON("uid", "exact", "exact", 0)
	frame := `{"type":"ping","id":"` + padding(1024-len(`{"type":"ping","id":""}`)) + `"}`
	exact.send(frame)
	exact.expect(`{"type":"pong","id":"` + padding(1024-len(`{"type":"ping","id":""}`)) + `"}`)

	for _, tc := range []struct {
		name, path, login string
		mt                int
		payload           []byte
		code              int
	}{
		{"one byte over max_message_size", "/ws", `{"type":"login","uid":"big"}`, websocket.TextMessage, []byte(strings.Repeat("y", 1025)), websocket.CloseMessageTooBig},
		{"over max_message_size before login", "/ws", "", websocket.TextMessage, []byte(strings.Repeat("y", 4096)), websocket.CloseMessageTooBig},
		{"over max_message_size (text)", "/ws-text", "big", websocket.TextMessage, []byte("all:" + strings.Repeat("y", 2048)), websocket.CloseMessageTooBig},
		{"invalid UTF-8", "/ws", `{"type":"login","uid":"utf"}`, websocket.TextMessage, []byte{0xff, 0xfe}, websocket.CloseInvalidFramePayloadData},
		{"invalid UTF-8 (text)", "/ws-text", "utf", websocket.TextMessage, []byte("all:\xc3\x28"), websocket.CloseInvalidFramePayloadData},
		{"invalid UTF-8 as the login", "/ws-text", "", websocket.TextMessage, []byte{0xff, 0xfe}, websocket.CloseInvalidFramePayloadData},
		{"binary", "/ws", `{"type":"login","uid":"bin"}`, websocket.BinaryMessage, []byte(`{"type":"ping"}`), websocket.CloseUnsupportedData},
		{"binary (text)", "/ws-text", "bin", websocket.BinaryMessage, []byte("all:hello"), websocket.CloseUnsupportedData},
	} {
		c := dial(t, tc.name, wsURL+tc.path, nil)
		if tc.login != "" {
			c.send(tc.login)
			c.read() // the welcome or the login answer
		}
		c.write(tc.mt, tc.payload)
		c.expectClose(tc.code)
		c.expectHangup()
		checkBystander(tc.name)
	}
	// Nothing of what the hostile clients sent reached anyone: the
	// bystander's next frame is the next push.
	checkBystander("everything")
	if s := getStats(t, apiURL); s.Connections != 2 || s.UIDs != 2 {
		t.Fatalf("stats %+v, want the bystander's and the exact client's connections only", s)
	}
}

// TestE2ESlowConsumer: a client that stops reading is cut off with 4004
// once its send_queue overflows, and a client of another uid receives every
// broadcast, in order, all along.
func TestE2ESlowConsumer(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_slow
		protocol text
		auth first_message
		send_queue 8
	}
}

http://localhost:%d {
	push_api {
		hub e2e_slow
	}
}
`, wsPort, apiPort))
	slow := dial(t, "slow (never reads)", wsURL+"/ws", nil)
	slow.send("slow")
	slow.expect("login success, your uid is slow")
	fast := dial(t, "fast", wsURL+"/ws", nil)
	fast.send("fast")
	fast.expect("login success, your uid is fast")
	fastFrames := fast.startReader()

	// From here the slow client reads nothing: the server's socket buffer
	// and the client's fill up, then its queue of 8, then it is cut off.
	const maxPushes = 5000 // 80 MB: far beyond any kernel's socket buffers
	body := padding(16 << 10)
	cutAt := 0
	for i := 1; i <= maxPushes && cutAt == 0; i++ {
		r := post(t, apiURL+"/send", fmt.Sprintf(`{"all":true,"data":"%d:%s"}`, i, body))
		switch r.body {
		case receipt(2, 0) + "\n":
		case receipt(1, 1) + "\n":
			cutAt = i
		default:
			t.Fatalf("broadcast %d: HTTP %d %q, want %s (or %s when the slow client is cut off)",
				i, r.status, r.body, receipt(2, 0), receipt(1, 1))
		}
		fastFrames.expect(t, "fast", fmt.Sprintf("%d:%s", i, body))
	}
	if cutAt == 0 {
		t.Fatalf("the slow client was never cut off in %d broadcasts of 16 KiB", maxPushes)
	}
	t.Logf("the slow client was cut off at broadcast %d", cutAt)

	// The slow client now reads: what was written before the cut-off, in
	// order, then close 4004.
	_ = slow.SetReadDeadline(time.Now().Add(ioTimeout))
	got := 0
	for {
		mt, b, err := slow.ReadMessage()
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != 4004 {
				t.Fatalf("slow: read ended with %v after %d messages, want close 4004", err, got)
			}
			break
		}
		n, _, _ := strings.Cut(string(b), ":")
		if mt != websocket.TextMessage || n != strconv.Itoa(got+1) {
			t.Fatalf("slow: message %.20q after %d messages, want message %d", b, got, got+1)
		}
		got++
	}
	if got >= cutAt {
		t.Fatalf("slow: got %d messages, but it was cut off at message %d", got, cutAt)
	}
	waitOnline(t, apiURL, "slow", 0)

	// The fast client keeps receiving.
	for i := cutAt + 1; i <= cutAt+3; i++ {
		post(t, apiURL+"/send", fmt.Sprintf(`{"all":true,"data":"%d:after"}`, i)).expectJSON(t, http.StatusOK, receipt(1, 0))
		fastFrames.expect(t, "fast", fmt.Sprintf("%d:after", i))
	}
	if s := getStats(t, apiURL); s.SlowConsumers != 1 || s.Connections != 1 {
		t.Fatalf("stats %+v, want 1 slow consumer and 1 connection left", s)
	}
}

// TestE2EPingTimeout: a client that never answers pings is closed with 4006
// after ping_interval + pong_timeout, and the server closes the socket; a
// client that answers stays and keeps receiving.
func TestE2EPingTimeout(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_ping
		auth first_message
		ping_interval 1s
		pong_timeout 1s
	}
}

http://localhost:%d {
	push_api {
		hub e2e_ping
	}
}
`, wsPort, apiPort))
	alive := dial(t, "alive (answers pings)", wsURL+"/ws", nil)
	alive.loginJSON("uid", "alive", "alive", 0)
	aliveFrames := alive.startReader() // gorilla answers pings while reading

	dead := dial(t, "dead (never answers pings)", wsURL+"/ws", nil)
	dead.loginJSON("uid", "dead", "dead", 0)
	pings := 0
	dead.SetPingHandler(func(string) error { pings++; return nil }) // no pong
	dead.expectClose(4006)
	dead.expectHangup()
	if pings == 0 {
		t.Fatal("dead: the server closed it without having pinged it")
	}
	waitOnline(t, apiURL, "dead", 0)

	// Well past ping_interval + pong_timeout, the answering client is still
	// there.
	post(t, apiURL+"/send", `{"uid":"alive","data":"still alive"}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	aliveFrames.expect(t, "alive", `{"type":"message","seq":1,"data":"still alive"}`)
	get(t, apiURL+"/online?uid=alive").expectJSON(t, http.StatusOK, online("alive", 1))
}
