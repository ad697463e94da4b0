package hub_test

import (
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/pushhub/caddy-pushhub/hub"
)

// TestCloseRacingLogins: connections that log in while the hub closes are
// either refused or closed with it; none stays open on a closed hub.
func TestCloseRacingLogins(t *testing.T) {
	for round := range 10 {
		ts := newTestServer(t, hub.Settings{})
		const n = 16
		clients := make(chan *client, n)
		var dialers sync.WaitGroup
		for i := range n {
			dialers.Add(1)
			go func() {
				defer dialers.Done()
				query := "uid=u"
				if i%2 == 1 {
					query = ""
				}
				c, err := ts.tryDial(query)
				if err != nil {
					return
				}
				if query == "" {
					_ = c.ws.WriteMessage(1, []byte(`{"type":"login","uid":"v"}`))
				}
				clients <- c
			}()
		}
		ts.hub.Close("closing")
		dialers.Wait()
		close(clients)
		for c := range clients {
			_, err := c.drainUntilClose()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("round %d: a connection is still open %v after its hub closed", round, guard)
			}
		}
		waitStats(t, ts.hub, "a closed, empty hub", func(s hub.Stats) bool {
			return s.Connections == 0 && s.Pending == 0 && s.UIDs == 0
		})
		ts.shutdown()
	}
}
