package hub

import (
	"io"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The read path of a connection: where the poller runs (Linux), readReady
// reads whatever has arrived when the socket is readable, so that an idle
// connection holds no goroutine; elsewhere readLoop reads in a goroutine of
// the connection's own. Each data message becomes a command of the
// connection's protocol (session.go).

// readLoop is the portable reader: one goroutine per connection.
func (c *Conn) readLoop() {
	for c.readMessage() {
	}
	c.readDone()
}

// readDone ends reading. A connection closed on purpose (a refused login,
// a kick) is torn down once its queue, with the error frame and close
// frame, is flushed; any other end of reading tears it down now.
func (c *Conn) readDone() {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if !closing {
		c.teardown()
	}
}

// readReady runs when the poller saw the socket readable: it reads every
// frame that is already there, then hands the connection back to the
// poller. Control frames between messages are consumed here, because
// gorilla's NextReader would wait past them for a data frame.
func (c *Conn) readReady() {
	s := c.settings()
	for {
		// A frame that has begun must arrive whole within pong_timeout:
		// a peer that stalls halfway is closed rather than holding a
		// goroutine.
		if c.ws.NetConn().SetReadDeadline(time.Now().Add(s.PongTimeout)) != nil {
			c.teardown()
			return
		}
		ok, err := c.readControl()
		if err != nil {
			c.readDone()
			return
		}
		if !ok && !c.readMessage() {
			c.readDone()
			return
		}
		if !c.buffered() {
			break
		}
	}
	if c.ws.NetConn().SetReadDeadline(time.Time{}) != nil || !c.hub.poller.rearm(c) {
		c.teardown()
	}
}

// readControl consumes a whole ping or pong frame at the head of the
// buffer; ok is false when the next frame is anything else, which gorilla
// then reads. Frames that break the rules (unmasked, fragmented, too long)
// are left to gorilla, which closes the connection for them.
func (c *Conn) readControl() (ok bool, err error) {
	br := c.br
	h, err := br.Peek(2)
	if err != nil {
		return false, err
	}
	op := h[0] & opMask
	n := int(h[1] &^ maskBit)
	if h[0]&(finBit|rsvBits) != finBit || h[1]&maskBit == 0 || n > maxCtlLen || (op != opPing && op != opPong) {
		return false, nil
	}
	frame, err := br.Peek(2 + 4 + n)
	if err != nil {
		return false, err
	}
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	if op == opPing {
		c.hub.framesIn.Add(1)
		if !c.bucket.take(c.settings(), now) {
			c.abort(CloseRateLimited, "rate limit exceeded")
			return false, errClosed
		}
		payload := make([]byte, n)
		key := frame[2:6]
		for i := range payload {
			payload[i] = frame[6+i] ^ key[i&3]
		}
		c.enqueue(outFrame{wire: wireFrame(opPong, payload)})
	}
	_, err = br.Discard(len(frame))
	return true, err
}

// errClosed ends a read after the connection was closed on purpose.
var errClosed = &Error{Code: "closed", Message: "connection closed"}

// buffered reports whether more of the peer's bytes are already in user
// space: in the reader's buffer or, over TLS, decrypted or received by the
// TLS layer. The socket may not be readable for those, so they must be read
// before the connection goes back to the poller. A read deadline in the
// past makes the probe return at once when nothing is there.
func (c *Conn) buffered() bool {
	br := c.br
	if br.Buffered() > 0 {
		return true
	}
	if !c.tls {
		return false // the socket's readiness covers the rest
	}
	if c.ws.NetConn().SetReadDeadline(time.Unix(1, 0)) != nil {
		return false
	}
	_, err := br.Peek(1)
	return err == nil
}

// readMessage reads one data message with gorilla and handles it; false
// means the connection is finished.
func (c *Conn) readMessage() bool {
	s := c.settings()
	mt, r, err := c.ws.NextReader()
	if err != nil {
		// A close frame was answered through the queue; gorilla has
		// answered a protocol error with 1002.
		return false
	}
	data, err := io.ReadAll(io.LimitReader(r, s.MaxMessageSize+1))
	if err != nil {
		return false
	}
	if int64(len(data)) > s.MaxMessageSize {
		c.abort(CloseMessageTooBig, "message too big")
		return false
	}
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	c.hub.framesIn.Add(1)
	if !c.bucket.take(s, now) {
		c.abort(CloseRateLimited, "rate limit exceeded")
		return false
	}
	if mt != websocket.TextMessage {
		c.abort(CloseUnsupportedData, "binary frames are not accepted")
		return false
	}
	if !utf8.Valid(data) {
		c.abort(CloseInvalidPayload, "text frame is not valid UTF-8")
		return false
	}
	return c.handle(c.proto.Decode(data, c.loggedIn.Load()))
}
