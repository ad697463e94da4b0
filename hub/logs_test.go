package hub_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pushhub/caddy-pushhub/hub"
)

// observed gives the test server's hub a logger that records every entry,
// debug included.
func observed(ts *testServer) *observer.ObservedLogs {
	core, logs := observer.New(zap.DebugLevel)
	ts.hub.SetLogger(zap.New(core))
	return logs
}

// closeLogged waits for the entry that logs uid's close, and checks its
// level and code.
func closeLogged(t *testing.T, logs *observer.ObservedLogs, uid string, level zapcore.Level, code int) {
	t.Helper()
	var seen []string
	eventually(t, fmt.Sprintf("the close of %s logged", uid), func() bool {
		seen = seen[:0]
		for _, e := range logs.All() {
			if !strings.HasPrefix(e.Message, "connection closed") || e.ContextMap()["uid"] != uid {
				continue
			}
			seen = append(seen, fmt.Sprintf("%s %q %v", e.Level, e.Message, e.ContextMap()))
			if e.Level == level && e.ContextMap()["code"] == int64(code) {
				return true
			}
		}
		return false
	})
	if len(seen) != 1 {
		t.Fatalf("the close of %s is logged %d times: %q", uid, len(seen), seen)
	}
}

// TestCloseLogs: the closes an operator wants to see (a slow consumer, a
// client over its rate limit, a peer gone silent) are logged at info with
// the uid and the close code; a connection's opening and an ordinary close
// at debug, and nothing per message above debug.
func TestCloseLogs(t *testing.T) {
	t.Run("slow consumer", func(t *testing.T) {
		ts := newTestServer(t, hub.Settings{SendQueue: 8, WriteTimeout: 200 * time.Millisecond})
		logs := observed(ts)
		slow := ts.dial("uid=slow&smallbuf")
		eventually(t, "slow logged in", func() bool { return ts.hub.Online("slow") == 1 })
		pad := strings.Repeat("x", 4096)
		for i := 1; ; i++ {
			if i > 5000 {
				t.Fatalf("no cut-off after %d pushes", i)
			}
			if ts.hub.SendToUID("slow", msg(fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, pad))).Dropped == 1 {
				break
			}
		}
		closeLogged(t, logs, "slow", zap.InfoLevel, hub.CloseSlowConsumer)
		_ = slow
	})
	t.Run("rate limit", func(t *testing.T) {
		ts := newTestServer(t, hub.Settings{RateLimit: 0.001, RateBurst: 5})
		logs := observed(ts)
		ts.jsonUser("flood").floodPast(5)
		closeLogged(t, logs, "flood", zap.InfoLevel, hub.CloseRateLimited)
	})
	t.Run("pong timeout", func(t *testing.T) {
		ts := newTestServer(t, hub.Settings{PingInterval: 50 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
		logs := observed(ts)
		deaf := ts.dial("uid=deaf") // never reads, so never answers a ping
		closeLogged(t, logs, "deaf", zap.InfoLevel, hub.ClosePingTimeout)
		_ = deaf
	})
	t.Run("ordinary traffic", func(t *testing.T) {
		ts := newTestServer(t, hub.Settings{})
		logs := observed(ts)
		c := ts.jsonUser("alice")
		text := ts.dial("uid=bob&proto=text")
		text.expectText("login success, your uid is bob")
		for i := 1; i <= 100; i++ {
			ts.hub.SendToUIDs([]string{"alice", "bob"}, msg(fmt.Sprint(i)))
			c.readMessage(uint64(i), fmt.Sprint(i))
			text.expectText(fmt.Sprint(i))
			c.sendJSON(map[string]any{"type": "ping", "id": i})
			c.readType("pong")
		}
		if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(guard)); err != nil {
			t.Fatal(err)
		}
		c.expectClose(websocket.CloseNormalClosure)
		closeLogged(t, logs, "alice", zap.DebugLevel, websocket.CloseNormalClosure)
		ts.hub.Kick("bob", "done")
		closeLogged(t, logs, "bob", zap.DebugLevel, hub.CloseKicked)

		if n := logs.FilterMessage("connection opened").FilterLevelExact(zap.DebugLevel).Len(); n != 2 {
			t.Errorf("%d connections logged as opened at debug, want 2", n)
		}
		for _, e := range logs.All() {
			if e.Level > zap.DebugLevel {
				t.Errorf("logged at %s: %q %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
}
