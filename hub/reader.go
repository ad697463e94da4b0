package hub

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"time"
	"unicode/utf8"
)

// The read path of a connection: the hub parses client frames itself (RFC
// 6455, section 5), so that every frame, whatever it is and wherever it
// sits in a message, counts against rate_limit, and a frame that announces
// more than max_message_size is refused as soon as its header is read.
// Where the poller runs (Linux), readReady reads whatever has arrived when
// the socket is readable, and a message that arrives in fragments is kept
// on the connection between them, so an idle or slow connection holds no
// goroutine; elsewhere readLoop reads in a goroutine of the connection's
// own. Each text message becomes a command of the connection's protocol
// (session.go).

// partialMessage is a fragmented message whose final frame has not come.
type partialMessage struct {
	data []byte
}

// readLoop is the portable reader: one goroutine per connection.
func (c *Conn) readLoop() {
	for c.readFrame() {
		c.writePending() // what crypto/tls wrote on its own, over TLS
	}
	c.readDone()
}

// readDone ends reading. A connection closed on purpose (a refused login,
// a kick, a protocol error) is torn down once its queue, with the error
// frame and close frame, is flushed; any other end of reading tears it
// down now.
func (c *Conn) readDone() {
	c.busy.Store(true) // reading is over: the poller leaves it alone
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if !closing {
		c.teardown()
	}
}

// readReady runs when the poller saw the socket readable: it reads every
// frame that is already there, then hands the connection back to the
// poller.
func (c *Conn) readReady() {
	if !c.stillPolled() {
		return
	}
	if c.raw != nil && c.br.Buffered() == 0 && !c.tlsBuffered() && !socketReadable(c.raw) {
		// An edge-triggered socket can raise an event for bytes a worker
		// before this one already read: nothing to wait for.
		if !c.hub.poller.rearm(c) {
			c.teardown()
		}
		return
	}
	s := c.settings()
	// armed: pong_timeout's deadline is set; set: some deadline is, to be
	// cleared before the connection goes back to the poller (whose reads
	// a deadline would fail).
	armed, set := false, false
	for {
		// A frame that has begun must arrive whole within pong_timeout:
		// a peer that stalls halfway is closed rather than holding a
		// goroutine. A frame already in the buffer needs no deadline
		// (arming one costs a runtime timer update).
		if !armed && !c.frameBuffered() {
			if c.nc.SetReadDeadline(time.Now().Add(s.PongTimeout)) != nil {
				c.teardown()
				return
			}
			armed, set = true, true
		}
		if !c.readFrame() {
			c.readDone()
			return
		}
		more, probed := c.buffered()
		if probed { // under a read deadline in the past
			armed, set = false, true
		}
		if !more {
			break
		}
	}
	c.releaseTLS()
	c.writePending()
	if (set && c.nc.SetReadDeadline(time.Time{}) != nil) || !c.hub.poller.rearm(c) {
		c.teardown()
	}
}

// stillPolled begins a read of a socket the poller saw readable, and
// reports whether c is still on the poller (not torn down meanwhile). A
// worker that read it before handed it back under c.mu (rearm), and the
// kernel, not Go, told the poller it was readable again: taking c.mu
// orders this reader after that one for Go's memory model.
func (c *Conn) stillPolled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.polled
}

// releaseTLS drops the TLS layer's empty buffers before the connection
// idles on the poller (tls_buffers.go).
func (c *Conn) releaseTLS() {
	if c.tls {
		releaseTLSBuffers(c.nc.(*tls.Conn))
	}
}

// tlsBuffered reports whether the TLS layer holds bytes of the peer's
// that no read has taken yet (tls_buffers.go); false without TLS.
func (c *Conn) tlsBuffered() bool {
	return c.tls && tlsBuffered(c.nc.(*tls.Conn))
}

// readsInline reports whether the poller may read c on its own goroutine:
// a client on plain TCP whose commands never wait on the reader (the
// in-process broker's calls never wait; a cluster broker's go to the
// hub's lanes, lanes.go), and which is logged in or logs in without
// waiting (QuickLogin, no login hook, a broker that never waits). A login
// hook asks the application, and a cluster broker's login waits on Redis:
// those go to a worker. Over TLS, crypto/tls decrypts on the poller too,
// reading the socket without waiting (tls_socket.go).
func (c *Conn) readsInline() bool {
	if c.raw == nil {
		return false
	}
	if c.loggedIn.Load() {
		return true
	}
	return c.hub.broker.Load().inline && c.quickLogin && c.hooks().Login == nil
}

// readInline reads, on the poller's goroutine and without ever waiting,
// the frames that are already whole: the common case of a message that
// arrives in one piece costs no hand-over to another goroutine. A frame
// that has not arrived whole, or does not fit the reader's buffer, is left
// to a worker (readReady), which waits for the rest under pong_timeout.
// The socket is read until the kernel has nothing more for it: a read that
// takes less than it asked for has emptied it, unless the peer's end of
// input (hangup) had come with the bytes, which raises no new event: that
// one is read to the end.
func (c *Conn) readInline(hangup bool) {
	if !c.stillPolled() {
		return
	}
	c.noWait, c.drained = true, false
	if c.tls {
		c.tlsOut.drained = false
	}
	for {
		if c.frameBuffered() {
			if c.hub.laneBusy(c) {
				c.noWait = false // a worker waits for room in the lane, not the poller
				c.hub.poller.handOver(c)
				return
			}
			if !c.readFrame() {
				c.noWait = false
				c.readDone()
				return
			}
			continue
		}
		n := c.br.Buffered()
		if n == 0 && c.drained && !hangup {
			break // all the socket had is read
		}
		if n == readBufferSize {
			c.noWait = false // a frame larger than the buffer
			c.hub.poller.handOver(c)
			return
		}
		_, err := c.br.Peek(n + 1)
		switch {
		case err == nil:
			continue
		case err != errNothingToRead:
			c.noWait = false
			c.readDone() // the peer went away
			return
		case n > 0 || c.tlsBuffered():
			c.noWait = false // a frame or a TLS record that has begun: wait for its rest
			c.hub.poller.handOver(c)
			return
		}
		break
	}
	// All the socket had is read: its next bytes raise a new event (it is
	// watched edge-triggered), with no re-arming.
	c.noWait = false
	c.releaseTLS()
	c.writePending()
}

// sockReader is a connection seen as the source of its reader's bytes: its
// socket, read the usual way (waiting, under the read deadline) or, while
// the poller reads it inline, without waiting.
type sockReader Conn

// errNothingToRead: a read without waiting found nothing. It is a
// temporary net.Error, which crypto/tls does not keep as the connection's
// end: a record begun stays buffered there, and the next read goes on.
var errNothingToRead error = nothingToRead{}

type nothingToRead struct{}

func (nothingToRead) Error() string   { return "hub: nothing to read without waiting" }
func (nothingToRead) Timeout() bool   { return true }
func (nothingToRead) Temporary() bool { return true }

func (r *sockReader) Read(p []byte) (int, error) {
	c := (*Conn)(r)
	if !c.noWait {
		return c.nc.Read(p)
	}
	if c.tls { // crypto/tls reads the socket without waiting (tls_socket.go)
		s := c.tlsOut
		s.noWait = true
		n, err := c.nc.Read(p)
		s.noWait = false
		c.drained = s.drained && !c.tlsBuffered()
		return n, err
	}
	n, err := c.hub.poller.readNoWait(c.raw, p)
	c.drained = err == nil && n < len(p)
	return n, err
}

// frameBuffered reports whether a whole frame is in the reader's buffer,
// so that reading it cannot block.
func (c *Conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < 2 {
		return false
	}
	h, _ := c.br.Peek(min(n, 14))
	size, headerLen := int(h[1]&^maskBit), 2+4
	switch size {
	case 126:
		if len(h) < 4 {
			return false
		}
		size, headerLen = int(binary.BigEndian.Uint16(h[2:])), headerLen+2
	case 127:
		return false // 64 KiB or more never fits the buffer
	}
	return headerLen+size <= n
}

// buffered reports whether more of the peer's bytes are already in user
// space: in the reader's buffer or, over TLS, decrypted or received by the
// TLS layer. The socket may not be readable for those, so they must be read
// before the connection goes back to the poller. Over TLS the hub looks
// into crypto/tls's buffers (tls_buffers.go); on a Go whose tls.Conn it
// does not know, it probes with a read under a deadline in the past, and
// probed says the deadline was left so.
func (c *Conn) buffered() (more, probed bool) {
	if c.br.Buffered() > 0 {
		return true, false
	}
	if !c.tls {
		return false, false // the socket's readiness covers the rest
	}
	if tlsLayout.ok {
		return c.tlsBuffered(), false
	}
	if c.nc.SetReadDeadline(time.Unix(1, 0)) != nil {
		return false, false
	}
	_, err := c.br.Peek(1)
	return err == nil, true
}

// opContinuation continues a fragmented message.
const opContinuation = 0x0

// readFrame reads one frame and acts on it; false means the connection is
// finished: the peer went away, or the frame closed it.
func (c *Conn) readFrame() bool {
	br := c.br
	h, err := br.Peek(2)
	if err != nil {
		return false
	}
	b0, b1 := h[0], h[1]
	fin, op, masked := b0&finBit != 0, b0&opMask, b1&maskBit != 0
	size := int64(b1 &^ maskBit)
	headerLen := 2
	switch size {
	case 126:
		headerLen += 2
	case 127:
		headerLen += 8
	}
	if masked {
		headerLen += 4
	}
	if h, err = br.Peek(headerLen); err != nil {
		return false
	}
	switch size {
	case 126:
		size = int64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		n := binary.BigEndian.Uint64(h[2:])
		if n>>63 != 0 {
			return c.refuse(CloseProtocolError, "invalid frame length")
		}
		size = int64(n)
	}
	var key [4]byte
	if masked {
		copy(key[:], h[headerLen-4:])
	}

	// Every frame counts, whatever it is and wherever it sits in a message.
	s := c.settings()
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	c.hub.framesIn.Add(1)
	if !c.bucket.take(s, now) {
		return c.refuse(CloseRateLimited, "rate limit exceeded")
	}
	switch {
	case b0&rsvBits != 0:
		return c.refuse(CloseProtocolError, "reserved bits set")
	case !masked:
		return c.refuse(CloseProtocolError, "a client frame must be masked")
	case op >= opClose:
		if op != opClose && op != opPing && op != opPong {
			return c.refuse(CloseProtocolError, "unknown opcode")
		}
		if !fin || size > maxCtlLen {
			return c.refuse(CloseProtocolError, "a control frame must be whole and at most 125 bytes")
		}
	case op == opContinuation:
		if c.partial == nil {
			return c.refuse(CloseProtocolError, "a continuation frame outside a message")
		}
	case op == opText || op == opBinary:
		if c.partial != nil {
			return c.refuse(CloseProtocolError, "a new message inside a fragmented one")
		}
		if op == opBinary {
			return c.refuse(CloseUnsupportedData, "binary frames are not accepted")
		}
	default:
		return c.refuse(CloseProtocolError, "unknown opcode")
	}
	held := 0
	if c.partial != nil {
		held = len(c.partial.data)
	}
	if op < opClose && int64(held)+size > s.MaxMessageSize {
		return c.refuse(CloseMessageTooBig, "message too big")
	}
	if _, err := br.Discard(headerLen); err != nil {
		return false
	}
	// A whole message already in the reader's buffer, as most are, is
	// decoded where it lies, without a copy (Decode keeps nothing of it);
	// the reader moves past it once it is decoded.
	inPlace := op == opText && fin && int64(br.Buffered()) >= size
	var payload []byte
	switch {
	case inPlace:
		payload, _ = br.Peek(int(size)) // buffered: it cannot fail
	case op >= opClose:
		var buf [maxCtlLen]byte
		payload = buf[:size]
	case c.partial != nil:
		payload = grow(c.partial.data, int(size))
	case fin:
		payload = make([]byte, size)
	default:
		payload = make([]byte, size, min(int64(2*size)+64, s.MaxMessageSize))
	}
	body := payload[len(payload)-int(size):]
	if !inPlace {
		if _, err := io.ReadFull(br, body); err != nil {
			return false
		}
	}
	unmask(body, key)

	switch op {
	case opPing:
		c.enqueue(outFrame{wire: wireFrame(opPong, body)})
		return true
	case opPong:
		return true
	case opClose:
		return c.peerClosed(body)
	}
	if !fin {
		if c.partial == nil {
			c.partial = &partialMessage{}
		}
		c.partial.data = payload
		return true
	}
	c.partial = nil
	if !utf8.Valid(payload) {
		return c.refuse(CloseInvalidPayload, "text frame is not valid UTF-8")
	}
	cmd := c.proto.Decode(payload, DecodeOptions{LoggedIn: c.loggedIn.Load(), ToApp: c.hooks().TextToApp})
	if inPlace {
		_, _ = br.Discard(int(size))
	}
	return c.handle(cmd)
}

// grow extends b by n bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// unmask applies a client frame's masking key.
func unmask(b []byte, key [4]byte) {
	k := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k) | uint64(k)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// refuse closes the connection for what its peer sent.
func (c *Conn) refuse(code int, reason string) bool {
	c.abort(code, reason)
	return false
}

// peerClosed answers the peer's close frame with the same code, once what
// is queued is written.
func (c *Conn) peerClosed(p []byte) bool {
	code := 1005 // no status
	switch {
	case len(p) == 1:
		return c.refuse(CloseProtocolError, "a close frame of one byte")
	case len(p) >= 2:
		code = int(binary.BigEndian.Uint16(p))
		if !validCloseCode(code) {
			return c.refuse(CloseProtocolError, "invalid close code")
		}
		if !utf8.Valid(p[2:]) {
			return c.refuse(CloseInvalidPayload, "close reason is not valid UTF-8")
		}
	}
	// The peer's reason is echoed, and told to the application.
	c.closeAfterFlush(code, string(p[min(len(p), 2):]), time.Second)
	return false
}

// validCloseCode reports whether a peer may send code (RFC 6455, 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code >= 3000 && code <= 4999:
		return true
	}
	return false
}
