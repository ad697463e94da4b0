package hub

import (
	"testing"
	"time"
)

// TestLanesInStats: stats count the clients' commands waiting in the
// lanes, the figure an operator watches for a slow Redis in cluster mode.
func TestLanesInStats(t *testing.T) {
	h := New("lanes", Options{Settings: Settings{PingInterval: time.Hour, AuthTimeout: time.Hour}})
	defer h.Close("test over")
	h.serveConn(newSinkConn(), ConnOptions{UID: "u"})
	c := h.connOf(t, "u")
	if n := h.stats().LaneQueued; n != 0 {
		t.Fatalf("%d commands in lanes that never started", n)
	}
	holding, release := make(chan struct{}), make(chan struct{})
	h.laterFrom(c, func() { close(holding); <-release }) // holds c's lane up
	<-holding
	for range 10 {
		h.laterFrom(c, func() {})
	}
	if n := h.stats().LaneQueued; n != 10 {
		t.Fatalf("stats say %d commands wait in the lanes, want 10", n)
	}
	close(release)
	waitFor(t, "the lane drained in stats", func() bool { return h.stats().LaneQueued == 0 })
}
