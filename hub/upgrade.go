package hub

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The upgrade, owned here and nowhere else: the handshake, and the reader
// contract it rests on.
//
// gorilla performs the handshake and reads frames. The hub must see every
// byte gorilla has buffered (the poller may only hand a connection back
// once nothing is left in user space, and it reads ping and pong frames
// itself), so gorilla must read through a reader the hub holds. gorilla
// reuses the reader of the hijacked connection as its own exactly when its
// Upgrader has no ReadBufferSize and that reader is larger than 256 bytes
// (TestUpgradeReadsThroughTheHubsReader fails if that ever changes). The
// hijack therefore hands gorilla a reader of the hub's own, of
// readBufferSize bytes, instead of net/http's 4 KiB one, which every idle
// connection would otherwise keep.

// readBufferSize is each connection's read buffer: larger than gorilla's
// reuse threshold (256) and than a whole ping or pong frame (131), small
// because it lives as long as the connection.
const readBufferSize = 320

// writeBufferPool shares the handshake's write buffers: the hub writes
// frames itself.
var writeBufferPool sync.Pool

var upgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   0, // read through the hijacker's reader: see above
	WriteBufferSize:  4096,
	WriteBufferPool:  &writeBufferPool,
	// The caller has checked the origin before calling Upgrade.
	CheckOrigin: func(*http.Request) bool { return true },
}

// ErrHandshake is returned by Upgrade when the request was not a valid
// WebSocket handshake; the response has been written.
var ErrHandshake = errors.New("hub: WebSocket handshake failed")

// Upgrade performs the WebSocket handshake of r and serves the connection
// on the hub. The caller has authenticated what it can and checked the
// origin; after Upgrade returns it must not touch w again.
func (h *Hub) Upgrade(w http.ResponseWriter, r *http.Request, o ConnOptions) error {
	return h.upgrade(w, r, o, true)
}

// upgrade is Upgrade; poll false reads the connection with a goroutine of
// its own even where the poller could.
func (h *Hub) upgrade(w http.ResponseWriter, r *http.Request, o ConnOptions, poll bool) error {
	p := lookupProtocol(o.Protocol)
	if p == nil {
		return errors.New("hub: unknown protocol " + o.Protocol)
	}
	ws, br, err := handshake(w, r)
	if err != nil {
		return err
	}
	if !poll {
		br = nil
	}
	h.serve(ws, br, p, o)
	return nil
}

// handshake upgrades r; br is the reader ws reads from, or nil when the
// client sent data before the handshake ended (gorilla then refuses it).
func handshake(w http.ResponseWriter, r *http.Request) (ws *websocket.Conn, br *bufio.Reader, err error) {
	hj := &hijacker{ResponseWriter: w}
	ws, err = upgrader.Upgrade(hj, r, nil)
	if err != nil {
		// gorilla has answered the request (400 for a bad handshake).
		return nil, nil, errors.Join(ErrHandshake, err)
	}
	return ws, hj.br, nil
}

// hijacker lets gorilla hijack the connection from under the response
// writer's wrappers (a server's compression, headers and logging
// middleware) and hands gorilla the hub's reader.
type hijacker struct {
	http.ResponseWriter
	br *bufio.Reader
}

// innermost unwraps w to net/http's own writer. Hijacking through a
// wrapper such as an access-log recorder would wrap the socket in a byte
// counter that the logger reads when the handler returns, while this
// connection lives on: a data race, and a wrapper that hides the socket
// from the poller.
func innermost(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(innermost(h.ResponseWriter)).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return conn, brw, err // gorilla refuses data sent before the handshake ended
	}
	h.br = bufio.NewReaderSize(conn, readBufferSize)
	return conn, bufio.NewReadWriter(h.br, bufio.NewWriterSize(conn, 256)), nil
}

// serve takes over an upgraded WebSocket. It returns at once. With br (the
// reader ws reads from) and the poller, the connection is read only when
// readable and holds no goroutine while idle; otherwise a goroutine reads
// it.
func (h *Hub) serve(ws *websocket.Conn, br *bufio.Reader, p *protocol, o ConnOptions) *Conn {
	h.live.add()
	c := newConn(h, ws, br, p, o)
	if h.closed.Load() {
		c.abort(CloseGoingAway, "hub is shutting down")
		return c
	}
	h.pendingMu.Lock()
	h.pending[c] = struct{}{}
	h.pendingMu.Unlock()
	// The hub writes every frame itself (frame.go), so gorilla must not
	// write on its own: its close and ping answers go through the queue, and
	// the size limit is checked by the reader rather than by gorilla's read
	// limit. (gorilla still answers a protocol violation with a 1002 close
	// itself; that connection is finished anyway.)
	ws.SetPongHandler(func(string) error {
		c.lastRead.Store(time.Now().UnixNano())
		return nil
	})
	ws.SetPingHandler(func(data string) error {
		c.enqueue(outFrame{wire: wireFrame(opPong, []byte(data))})
		return nil
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		c.closeAfterFlush(code, "", time.Second)
		return nil
	})
	c.startTimer()
	if o.UID != "" && !c.login(o.UID, o.Since) {
		return c
	}
	if br == nil || !h.poller.add(c) {
		c.goConn("reader", c.readLoop)
	}
	return c
}
