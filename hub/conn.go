package hub

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Conn is one WebSocket connection on a hub. Publishers never block on it:
// a frame offered to an idle connection on the poller is written straight
// to its non-blocking socket; what the socket cannot take at once is queued
// for a writer goroutine that exists only while frames are queued. A full
// queue cuts the connection off as a slow consumer. One writer at a time:
// an inline write happens under mu with no writer goroutine running.
type Conn struct {
	hub      *Hub
	ws       *websocket.Conn
	protocol Protocol
	opened   time.Time
	opts     ConnOptions
	tls      bool // read through a TLS layer, which buffers on its own
	pollID   uint64
	pollFD   int  // the socket, once polled (valid until the socket is closed), or -1
	polled   bool // registered with the poller; guarded by mu
	inlineFD int  // the socket publishers may write to directly, or -1; guarded by mu

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
		protocol: o.Protocol,
		opened:   time.Now(),
		opts:     o,
		tls:      isTLS,
		pollID:   id,
		pollFD:   -1,
		inlineFD: -1,
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

// ID is the connection's id, unique within its hub. It is made when asked
// for rather than kept: every byte an idle connection holds counts.
func (c *Conn) ID() string { return "c" + strconv.FormatUint(c.pollID, 36) }

// UID is the uid the connection logged in as, or "" before login.
func (c *Conn) UID() string { return c.uid }

// queueResult says what became of a frame offered to a connection.
type queueResult uint8

const (
	queued  queueResult = iota
	cut                 // the queue was full: this frame cut the connection off
	closing             // the connection was already closing: not counted
)

// enqueue offers a frame to the connection. It never blocks: an idle
// connection's socket takes it at once if it can; otherwise it is queued for
// the writer, and when the queue is full the connection is cut off as a slow
// consumer.
func (c *Conn) enqueue(f outFrame) queueResult {
	s := c.settings()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return closing
	}
	if !f.close && len(c.queue)-c.exempt >= s.SendQueue {
		c.closing = true
		c.queue = nil
		c.mu.Unlock()
		c.hub.slowConsumers.Add(1)
		c.hub.logger().Debug("cutting off a slow consumer",
			zap.String("conn", c.ID()), zap.String("uid", c.uid), zap.Int("send_queue", s.SendQueue))
		go c.abort(CloseSlowConsumer, "send queue overflow")
		return cut
	}
	if f.close {
		c.closing = true
	}
	if !c.writing && len(c.queue) == 0 && c.inlineFD >= 0 {
		done, ok := c.writeInline(&f)
		if !ok { // the socket failed: the peer is gone
			c.closing = true
			c.mu.Unlock()
			go c.teardown()
			return closing
		}
		if done {
			c.mu.Unlock()
			if f.close {
				c.teardown()
			}
			return queued
		}
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

// writeInline writes as much of f as the socket takes without waiting,
// under c.mu; f keeps what is left. ok is false when the socket failed.
func (c *Conn) writeInline(f *outFrame) (done, ok bool) {
	n, err := writeNonblocking(c.inlineFD, f.wire)
	if n == len(f.wire) {
		return true, true
	}
	if err != nil && !errWouldBlock(err) {
		return false, false
	}
	f.wire = f.wire[n:]
	return false, true
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
		c.queue = append(c.queue, outFrame{wire: b})
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

// closeAfterFlush queues a close frame behind everything already queued and
// bounds how long flushing may take.
func (c *Conn) closeAfterFlush(code int, reason string, within time.Duration) {
	if c.enqueue(closeFrame(code, reason)) == queued {
		time.AfterFunc(within, c.teardown)
	}
}

// writeLoop drains the queue, then exits; enqueue starts it again when needed.
func (c *Conn) writeLoop() {
	defer c.hub.recoverLog("writer", c)
	conn := c.ws.NetConn()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			c.spare = nil // most frames go out inline: an idle connection keeps no batch
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.exempt = c.spare[:0], 0
		c.mu.Unlock()

		// One deadline per batch: re-arming it costs a runtime timer update.
		ok := conn.SetWriteDeadline(time.Now().Add(c.settings().WriteTimeout)) == nil
		for i := range batch {
			if ok {
				_, err := conn.Write(batch[i].wire)
				ok = err == nil && !batch[i].close
			}
			batch[i] = outFrame{}
		}
		if !ok { // written a close frame, or the socket failed
			c.mu.Lock()
			c.writing = false
			c.closing = true
			c.queue = nil
			c.mu.Unlock()
			c.teardown()
			return
		}
		c.mu.Lock()
		c.spare = batch[:0]
		c.mu.Unlock()
	}
}

// abort closes the connection now, dropping whatever is queued. The close
// frame is written once the writer is done with the frame in hand, waiting
// a second at most (a writer stuck on a full socket would not get it through
// either); then the socket is closed.
func (c *Conn) abort(code int, reason string) {
	f := closeFrame(code, reason)
	deadline := time.Now().Add(time.Second)
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	for c.writing && time.Now().Before(deadline) {
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
		c.mu.Lock()
	}
	idle := !c.writing
	if idle && c.inlineFD >= 0 {
		c.writeInline(&f)
		idle = false // written, or as much as the socket took
	}
	c.mu.Unlock()
	if idle {
		conn := c.ws.NetConn()
		if conn.SetWriteDeadline(deadline) == nil {
			_, _ = conn.Write(f.wire)
		}
	}
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
	c.inlineFD = -1 // no inline write after this: the socket number may be reused
	if c.timer != nil {
		c.timer.Stop()
	}
	c.hub.poller.remove(c)
	fd := c.pollFD
	c.mu.Unlock()
	c.hub.remove(c)
	c.closeSocket(fd)
	c.hub.live.Add(-1)
}

// closeSocket closes the socket. If the peer's bytes are still unread, a
// plain close would answer them with a reset, which can destroy the close
// frame just sent before the peer reads it; so the socket is half-closed and
// drained for a moment first (a lingering close), off the caller's goroutine.
func (c *Conn) closeSocket(fd int) {
	conn := c.ws.NetConn()
	if fd >= 0 && unreadBytes(fd) == 0 {
		_ = conn.Close()
		return
	}
	go func() {
		defer conn.Close()
		if tcp, ok := tcpConnOf(conn); ok {
			_ = tcp.CloseWrite()
		}
		if conn.SetReadDeadline(time.Now().Add(time.Second)) == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
		}
	}()
}

// tcpConnOf finds the TCP connection under TLS.
func tcpConnOf(conn net.Conn) (*net.TCPConn, bool) {
	if t, ok := conn.(*tls.Conn); ok {
		conn = t.NetConn()
	}
	tcp, ok := conn.(*net.TCPConn)
	return tcp, ok
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
		c.enqueue(outFrame{wire: pingWire})
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
