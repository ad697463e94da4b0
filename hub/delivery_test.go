package hub

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// recordConn is a connection whose handshake is done and whose client never
// sends anything: it keeps what the hub writes to it.
type recordConn struct {
	sinkConn
	mu      sync.Mutex
	written []byte
}

func newRecordConn() *recordConn { return &recordConn{sinkConn: sinkConn{closed: make(chan struct{})}} }

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written = append(c.written, b...)
	return len(b), nil
}

// wrote reports whether the hub has written s to the connection.
func (c *recordConn) wrote(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Contains(c.written, []byte(s))
}

// TestPushReachesWhoWasLoggedInWhenItBegan: a broadcast visits the uids one
// after another. A text client that logs in while one is on its way must
// not get it: others got it before that client even logged in, and a text
// client has no sequence numbers to place it by. A json client that logs
// in meanwhile gets it, numbered after its welcome.
func TestPushReachesWhoWasLoggedInWhenItBegan(t *testing.T) {
	h := New("began", Options{Settings: Settings{PingInterval: time.Hour}})
	t.Cleanup(func() { h.Close("test over") })
	serve := func(proto, uid string) *recordConn {
		rc := newRecordConn()
		h.serveConn(rc, ConnOptions{Protocol: proto, UID: uid})
		return rc
	}
	early := serve("text", "early")

	// The broadcast begins, and two clients log in before it reaches
	// their uids.
	m := Message{Data: json.RawMessage(`"the news"`)}
	d := &delivery{msg: &m, at: time.Now().UnixNano(), binds: h.binds.Load()}
	lateText := serve("text", "late-text")
	lateJSON := serve("json", "late-json")
	if r := h.broadcastShards(d, DeliverOptions{}, 0, shardCount); r.Delivered != 2 {
		t.Fatalf("the broadcast was delivered %d times, want 2 (early, late-json)", r.Delivered)
	}
	h.push(Target{UID: "late-text"}, Message{Data: json.RawMessage(`"after it"`)})

	waitFor(t, "early got the broadcast", func() bool { return early.wrote("the news") })
	waitFor(t, "late-json got the broadcast", func() bool { return lateJSON.wrote(`"data":"the news"`) })
	waitFor(t, "late-text got the push after it", func() bool { return lateText.wrote("after it") })
	if lateText.wrote("the news") {
		t.Fatal("a text client that logged in after the broadcast began got it")
	}
}
