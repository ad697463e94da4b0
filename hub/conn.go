package hub

import (
	"crypto/tls"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// frameKind tells the writer what a queued frame is.
type frameKind uint8

const (
	frameData  frameKind = iota // a prepared text frame
	framePing                   // a WebSocket ping
	frameClose                  // a close frame; nothing after it is written
	framePong                   // a WebSocket pong answering a ping
)

type outFrame struct {
	kind    frameKind
	pm      *websocket.PreparedMessage // a frame shared by many connections
	data    []byte                     // or a frame of this connection's own
	code    int
	reason  string
	payload []byte // a pong's
}

// Conn is one WebSocket connection on a hub. It has one writer at a time: a
// goroutine that exists only while frames are queued, so an idle connection
// costs no writer. Publishers never block on it: a full queue cuts the
// connection off as a slow consumer.
type Conn struct {
	hub      *Hub
	ws       *websocket.Conn
	id       string
	protocol Protocol
	remote   string
	opened   time.Time
	opts     ConnOptions
	tls      bool // read through a TLS layer, which buffers on its own
	pollID   uint64
	pollFD   int  // the socket, while polled
	polled   bool // registered with the poller; guarded by mu

	uid string // set once, at login, before the connection is registered

	lastRead atomic.Int64 // unix nanoseconds of the last frame or pong read
	loggedIn atomic.Bool
	acked    atomic.Uint64 // highest sequence number the client acknowledged

	// The reader's token bucket for rate_limit.
	tokens     float64
	tokensTime int64

	mu      sync.Mutex
	queue   []outFrame
	exempt  int        // frames in queue outside send_queue's bound: a login's welcome and replay
	spare   []outFrame // the writer's previous batch, reused
	writing bool
	closing bool // a close is queued or done: nothing more is accepted
	timer   *time.Timer

	torn atomic.Bool // resources released
}

func newConn(h *Hub, ws *websocket.Conn, o ConnOptions) *Conn {
	id := h.nextConnID.Add(1)
	_, isTLS := ws.NetConn().(*tls.Conn)
	c := &Conn{
		hub:      h,
		ws:       ws,
		id:       "c" + strconv.FormatUint(id, 36),
		protocol: o.Protocol,
		remote:   ws.RemoteAddr().String(),
		opened:   time.Now(),
		opts:     o,
		tls:      isTLS,
		pollID:   id,
	}
	c.lastRead.Store(c.opened.UnixNano())
	return c
}

// settings are the connection's endpoint's, or else its hub's.
func (c *Conn) settings() *Settings {
	if c.opts.Endpoint != nil {
		return c.opts.Endpoint.s.Load()
	}
	return c.hub.settings.Load()
}

// ID is the connection's id, unique within its hub.
func (c *Conn) ID() string { return c.id }

// UID is the uid the connection logged in as, or "" before login.
func (c *Conn) UID() string { return c.uid }

// queueResult says what became of a frame offered to a connection.
type queueResult uint8

const (
	queued  queueResult = iota
	cut                 // the queue was full: this frame cut the connection off
	closing             // the connection was already closing: not counted
)

// enqueue queues a frame for the writer. It never blocks: when the queue is
// full the connection is cut off as a slow consumer.
func (c *Conn) enqueue(f outFrame) queueResult {
	s := c.settings()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return closing
	}
	if len(c.queue)-c.exempt >= s.SendQueue {
		c.closing = true
		c.queue = nil
		c.mu.Unlock()
		c.hub.slowConsumers.Add(1)
		c.hub.logger().Debug("cutting off a slow consumer",
			zap.String("conn", c.id), zap.String("uid", c.uid), zap.Int("send_queue", s.SendQueue))
		go c.abort(CloseSlowConsumer, "send queue overflow")
		return cut
	}
	c.queue = append(c.queue, f)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return queued
}

// enqueueAll queues first and then frames beyond the queue's bound: the
// welcome and a resume's replay, which history already bounds.
func (c *Conn) enqueueAll(first outFrame, frames [][]byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, first)
	for _, b := range frames {
		c.queue = append(c.queue, outFrame{kind: frameData, data: b})
	}
	c.exempt += 1 + len(frames)
	c.hub.framesOut.Add(uint64(len(frames)))
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// allow takes one token from the reader's bucket; false means the client
// is over rate_limit. Only the reader calls it.
func (c *Conn) allow(s *Settings, now int64) bool {
	if c.tokensTime == 0 {
		c.tokens = float64(s.RateBurst)
	} else {
		c.tokens = min(float64(s.RateBurst), c.tokens+float64(now-c.tokensTime)/1e9*s.RateLimit)
	}
	c.tokensTime = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// send queues a data frame and counts it.
func (c *Conn) send(f outFrame) queueResult {
	r := c.enqueue(f)
	if r == queued {
		c.hub.framesOut.Add(1)
	}
	return r
}

// closeAfterFlush queues a close frame behind everything already queued and
// bounds how long flushing may take.
func (c *Conn) closeAfterFlush(code int, reason string, within time.Duration) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.queue = append(c.queue, outFrame{kind: frameClose, code: code, reason: reason})
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	time.AfterFunc(within, c.teardown)
}

// writeLoop drains the queue, then exits; enqueue starts it again when needed.
func (c *Conn) writeLoop() {
	defer c.hub.recoverLog("writer", c)
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			c.spare = c.spare[:0]
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.exempt = c.spare[:0], 0
		c.mu.Unlock()

		// One deadline per batch: re-arming it costs a runtime timer
		// update, which is worth saving on every frame of a broadcast.
		deadline := time.Now().Add(c.settings().WriteTimeout)
		ok := c.ws.SetWriteDeadline(deadline) == nil
		for i := range batch {
			if !ok || !c.write(batch[i], deadline) {
				c.mu.Lock()
				c.writing = false
				c.closing = true
				c.queue = nil
				c.mu.Unlock()
				c.teardown()
				return
			}
			batch[i] = outFrame{}
		}
		c.mu.Lock()
		c.spare = batch[:0]
		c.mu.Unlock()
	}
}

// write writes one frame under the batch's deadline; false means the
// connection is finished.
func (c *Conn) write(f outFrame, deadline time.Time) bool {
	switch f.kind {
	case framePing:
		return c.ws.WriteControl(websocket.PingMessage, nil, deadline) == nil
	case framePong:
		return c.ws.WriteControl(websocket.PongMessage, f.payload, deadline) == nil
	case frameClose:
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(f.code, f.reason), deadline)
		c.teardown()
		return false
	default:
		if f.pm != nil {
			return c.ws.WritePreparedMessage(f.pm) == nil
		}
		return c.ws.WriteMessage(websocket.TextMessage, f.data) == nil
	}
}

// abort closes the connection now, dropping whatever is queued: a close frame
// is attempted with a short deadline, then the socket is closed.
func (c *Conn) abort(code int, reason string) {
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	c.mu.Unlock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(time.Second))
	c.teardown()
}

// teardown releases the connection once: it leaves the hub, its timer stops
// and its socket closes, which ends its reader.
func (c *Conn) teardown() {
	if !c.torn.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	c.hub.poller.remove(c)
	c.mu.Unlock()
	c.hub.remove(c)
	_ = c.ws.NetConn().Close()
	c.hub.live.Add(-1)
}

// tick runs on the connection's timer: it enforces the auth timeout, detects
// dead peers and queues pings.
func (c *Conn) tick() {
	if c.torn.Load() {
		return
	}
	s := c.settings()
	now := time.Now()
	next := s.PingInterval + s.PongTimeout
	if !c.loggedIn.Load() {
		left := s.AuthTimeout - now.Sub(c.opened)
		if left <= 0 {
			c.abort(CloseAuthTimeout, "no login within auth_timeout")
			return
		}
		next = min(next, left)
	}
	silent := now.Sub(time.Unix(0, c.lastRead.Load()))
	deadline := s.PingInterval + s.PongTimeout
	switch {
	case silent >= deadline:
		c.abort(ClosePingTimeout, "no pong within pong_timeout")
		return
	case silent >= s.PingInterval-s.PingInterval/10:
		// Due: ping, and look again when the pong is overdue.
		c.enqueue(outFrame{kind: framePing})
		next = min(next, deadline-silent)
	default:
		next = min(next, s.PingInterval-silent)
	}
	next = max(next, 10*time.Millisecond)
	c.mu.Lock()
	if !c.closing {
		c.timer.Reset(next)
	}
	c.mu.Unlock()
}

// startTimer arms the connection's timer for the first time.
func (c *Conn) startTimer() {
	s := c.settings()
	c.mu.Lock()
	c.timer = time.AfterFunc(min(s.AuthTimeout, s.PingInterval), c.tick)
	c.mu.Unlock()
}
