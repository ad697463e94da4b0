package hub

import (
	"time"

	"go.uber.org/zap"
)

// The write path of a connection. One writer at a time: an inline write
// happens under c.mu with no writer goroutine running; otherwise the writer
// goroutine, started when frames are queued, drains the queue and exits.

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
		c.mu.Unlock()
		c.cutOff()
		return cut
	}
	if f.close {
		c.closing = true
	}
	if !c.writing && len(c.queue) == 0 && !f.close && c.tlsOut.inline() {
		pending, err := c.tlsOut.writeFrame(c.nc, f.wire)
		if err != nil { // the socket failed
			c.closing = true
			c.mu.Unlock()
			c.goConn("teardown", c.teardown)
			return closing
		}
		c.hub.writeLatency.observeSince(f.at)
		if pending == 0 {
			c.mu.Unlock()
			return queued
		}
		c.startWriter() // to flush what the socket did not take
		return queued
	}
	if !c.writing && len(c.queue) == 0 && c.inlineFD >= 0 {
		done, ok := c.writeInline(&f)
		if !ok { // the socket failed: the peer is gone
			c.closing = true
			c.mu.Unlock()
			c.goConn("teardown", c.teardown)
			return closing
		}
		if done {
			c.mu.Unlock()
			c.hub.writeLatency.observeSince(f.at)
			if f.close {
				c.teardown()
			}
			return queued
		}
		c.partialHead = true // what the socket did not take must follow what it did
	}
	c.queue = append(c.queue, f)
	c.startWriter()
	return queued
}

// writePending starts the writer for what crypto/tls wrote on its own from
// inside a read (an alert, a KeyUpdate's answer) and the socket did not
// take at once.
func (c *Conn) writePending() {
	if !c.tlsOut.hasPending() {
		return
	}
	c.mu.Lock()
	if c.writing || c.closing {
		c.mu.Unlock()
		return
	}
	c.startWriter()
}

// queued is how many frames wait in the connection's send queue.
func (c *Conn) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// startWriter starts the writer goroutine unless it runs, and unlocks c.mu.
func (c *Conn) startWriter() {
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.hub.run(job{c: c, write: true})
	}
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
	c.startWriter()
}

// closeAfterFlush queues a close frame behind everything already queued and
// bounds how long flushing may take.
func (c *Conn) closeAfterFlush(code int, reason string, within time.Duration) {
	c.mu.Lock()
	c.closingWith(code, reason)
	c.mu.Unlock()
	if c.enqueue(c.proto.Close(code, reason)) == queued {
		c.hub.routines.afterFunc(within, "close", nil, c.teardown)
	}
}

// abortWithin bounds how long an aborted connection's close frame may take.
const abortWithin = time.Second

// abort closes the connection now: the close frame follows what is
// already queued (the answers to what the client sent before it broke a
// rule), and the socket closes after abortWithin at the latest. It takes no
// lock but c's, so a publisher holding a uid's lock may call it; the
// teardown runs on a goroutine of its own.
func (c *Conn) abort(code int, reason string) { c.closeNow(code, reason, false) }

// cutOff closes a slow consumer with 4004, dropping its full queue: the
// close frame replaces it, and goes as soon as the writer is done with the
// frames in hand. A peer that never reads again is closed when that write
// times out (write_timeout), like any write.
func (c *Conn) cutOff() {
	c.hub.slowConsumers.Add(1)
	if ce := c.hub.logger().Check(zap.DebugLevel, "cutting off a slow consumer"); ce != nil {
		ce.Write(zap.String("conn", c.ID()), zap.String("uid", c.uid), zap.Int("send_queue", c.settings().SendQueue))
	}
	c.closeNow(CloseSlowConsumer, "send queue overflow", true)
}

func (c *Conn) closeNow(code int, reason string, drop bool) {
	f := c.proto.Close(code, reason)
	c.mu.Lock()
	c.closingWith(code, reason)
	if c.torn.Load() || (c.closing && len(c.queue) == 0 && !c.writing) {
		c.mu.Unlock()
		c.goConn("teardown", c.teardown)
		return
	}
	if c.closing && !drop {
		c.mu.Unlock() // a close frame is on its way already, bounded
		return
	}
	c.closing = true
	switch {
	case drop && c.partialHead && len(c.queue) > 0:
		// The rest of a frame the socket took only part of must go first,
		// or the close frame would land inside it.
		c.queue = append(c.queue[:1], f)
	case drop:
		c.queue = append(c.queue[:0], f)
	default:
		c.queue = append(c.queue, f)
	}
	c.exempt = 0
	if !c.writing && len(c.queue) == 1 && c.inlineFD >= 0 {
		done, ok := c.writeInline(&c.queue[0])
		if done || !ok {
			c.queue = nil
			c.mu.Unlock()
			c.goConn("teardown", c.teardown)
			return
		}
		c.partialHead = true
	}
	c.startWriter()
	if !drop {
		c.hub.routines.afterFunc(abortWithin, "abort", nil, c.teardown)
	}
}

// writeLoop drains the queue, then exits; enqueue starts it again when needed.
// Over TLS on the poller, a batch's frames are encrypted into the socket's
// pending bytes and flushed with one write (tls_socket.go).
func (c *Conn) writeLoop() {
	conn := c.nc
	for {
		c.mu.Lock()
		if len(c.queue) == 0 && !c.tlsOut.hasPending() {
			c.writing = false
			c.spare = nil // most frames go out inline: an idle connection keeps no batch
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.exempt, c.partialHead = c.spare[:0], 0, false
		c.mu.Unlock()

		// One deadline per batch: re-arming it costs a runtime timer update.
		ok := conn.SetWriteDeadline(time.Now().Add(c.settings().WriteTimeout)) == nil
		sent, closed := 0, false
		c.tlsOut.hold()
		for ok && !closed && sent < len(batch) {
			pending, err := c.tlsOut.writeFrame(conn, batch[sent].wire)
			ok, closed = err == nil, batch[sent].close
			sent++
			if ok && pending >= tlsFlushAt {
				ok = c.tlsOut.flush() == nil
				c.tlsOut.hold()
			}
		}
		ok = ok && c.tlsOut.flush() == nil
		for i := range batch {
			if ok && i < sent {
				c.hub.writeLatency.observeSince(batch[i].at)
			}
			batch[i] = outFrame{}
		}
		if !ok || closed { // written a close frame, or the socket failed
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
