package hub

import (
	"context"
	"net"
	"testing"
	"time"
)

// Helpers of the package's internal tests (benchmarks, bursts, fuzzing).

// push sends m to t and returns the receipt.
func (h *Hub) push(t Target, m Message) Receipt {
	r, _ := h.Send(context.Background(), t, m, SendOptions{})
	return r
}

// stats is Stats without a context.
func (h *Hub) stats() Stats { return h.Stats(context.Background()) }

// serveConn hands the hub a connection whose handshake is done, read by a
// goroutine of its own.
func (h *Hub) serveConn(nc net.Conn, o ConnOptions) *Conn {
	return h.serve(nc, lookupProtocol(o.Protocol), o, false)
}

// waitFor waits until cond holds, failing t after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s: %s", what)
		}
	}
}
