package hub

import (
	"context"

	"github.com/gorilla/websocket"
)

// Helpers of the package's internal tests (benchmarks, bursts, fuzzing).

// push sends m to t and returns the receipt.
func (h *Hub) push(t Target, m Message) Receipt {
	r, _ := h.Send(context.Background(), t, m, SendOptions{})
	return r
}

// stats is Stats without a context.
func (h *Hub) stats() Stats { return h.Stats(context.Background()) }

// serveWebSocket hands the hub a WebSocket upgraded elsewhere, read by a
// goroutine of its own.
func (h *Hub) serveWebSocket(ws *websocket.Conn, o ConnOptions) *Conn {
	return h.serve(ws, nil, lookupProtocol(o.Protocol), o)
}
