package hub

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The upgrade, owned here and nowhere else: the hub performs the WebSocket
// handshake itself (RFC 6455, section 4.2) and reads frames through a small
// buffered reader of its own (reader.go), so that it sees every byte the
// peer sent: the poller may only hand a connection back once nothing is
// left in user space. An idle connection keeps only that reader, of
// readBufferSize bytes, and its socket: no net/http buffers, no WebSocket
// library state.

// readBufferSize is each connection's read buffer: larger than a whole
// control frame (131 bytes), small because it lives as long as the
// connection. Larger frames are read straight into their message.
const readBufferSize = 320

// handshakeTimeout bounds writing the handshake's answer.
const handshakeTimeout = 10 * time.Second

// ErrHandshake wraps why a request is not a WebSocket handshake the hub
// accepts; nothing has been written to the response yet, so the caller
// answers it (400).
var ErrHandshake = errors.New("not a valid WebSocket handshake")

// IsUpgrade reports whether r asks for a WebSocket.
func IsUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// Upgrade performs the WebSocket handshake of r and serves the connection
// on the hub. The caller has authenticated what it can and checked the
// origin. A request that is not a valid handshake is refused with an error
// wrapping ErrHandshake before anything is written; otherwise the caller
// must not touch w again.
func (h *Hub) Upgrade(w http.ResponseWriter, r *http.Request, o ConnOptions) error {
	return h.upgrade(w, r, o, true)
}

// upgrade is Upgrade; poll false reads the connection with a goroutine of
// its own even where the poller could.
func (h *Hub) upgrade(w http.ResponseWriter, r *http.Request, o ConnOptions, poll bool) error {
	p := lookupProtocol(o.Protocol)
	if p == nil {
		return fmt.Errorf("hub: unknown protocol %q", o.Protocol)
	}
	key, err := checkHandshake(r)
	if err != nil {
		return err
	}
	nc, err := hijack(w)
	if err != nil {
		return err
	}
	if err := answerHandshake(nc, key); err != nil {
		_ = nc.Close()
		return err
	}
	h.serve(nc, p, o, poll)
	return nil
}

// checkHandshake validates a client's opening handshake and returns its
// key.
func checkHandshake(r *http.Request) (string, error) {
	switch {
	case r.Method != http.MethodGet:
		return "", fmt.Errorf("%w: method %s, want GET", ErrHandshake, r.Method)
	case r.ProtoMajor != 1 || r.ProtoMinor < 1:
		return "", fmt.Errorf("%w: %s, want HTTP/1.1", ErrHandshake, r.Proto)
	case !IsUpgrade(r):
		return "", fmt.Errorf("%w: no Connection: Upgrade and Upgrade: websocket headers", ErrHandshake)
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "", fmt.Errorf("%w: Sec-WebSocket-Version %q, want 13", ErrHandshake, r.Header.Get("Sec-WebSocket-Version"))
	}
	key := strings.TrimSpace(r.Header.Get("Sec-WebSocket-Key"))
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", fmt.Errorf("%w: Sec-WebSocket-Key %q is not 16 bytes in base64", ErrHandshake, key)
	}
	return key, nil
}

// hijack takes the connection from under the response writer's wrappers
// (a server's compression, headers and logging middleware); the hub reads
// it with a reader of its own (newConn).
func hijack(w http.ResponseWriter) (net.Conn, error) {
	nc, brw, err := http.NewResponseController(innermost(w)).Hijack()
	if err != nil {
		return nil, fmt.Errorf("hub: taking over the connection: %w", err)
	}
	if brw.Reader.Buffered() > 0 {
		// A client must wait for the handshake's answer before it sends
		// frames; bytes already here belong to no valid exchange.
		// The request is answered here: the response writer is gone.
		_, _ = nc.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
		_ = nc.Close()
		return nil, errors.New("hub: the client sent data before the handshake ended; answered 400")
	}
	return nc, nil
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

// acceptGUID is the RFC's magic string for Sec-WebSocket-Accept.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// answerHandshake writes the 101 answer, and leaves the connection without
// deadlines: net/http may have set some, and the hub sets its own.
func answerHandshake(nc net.Conn, key string) error {
	sum := sha1.Sum([]byte(key + acceptGUID))
	resp := make([]byte, 0, 160)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = base64.StdEncoding.AppendEncode(resp, sum[:])
	resp = append(resp, "\r\n\r\n"...)
	if err := nc.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return err
	}
	if _, err := nc.Write(resp); err != nil {
		return err
	}
	return nc.SetDeadline(time.Time{})
}

// headerHasToken reports whether a comma-separated header has token, in
// any case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// accept counts a new connection in, as one that has yet to log in; ok is
// false when the hub is closing, and the connection is closed.
func (h *Hub) accept(c *Conn) (_ *Conn, ok bool) {
	h.live.add()
	if h.closed.Load() {
		c.abort(CloseGoingAway, "hub is shutting down")
		return c, false
	}
	h.pendingMu.Lock()
	h.pending[c] = struct{}{}
	h.pendingMu.Unlock()
	c.startTimer()
	if ce := h.logger().Check(zap.DebugLevel, "connection opened"); ce != nil {
		ce.Write(zap.String("conn", c.ID()), zap.Stringer("remote", c.nc.RemoteAddr()), zap.String("protocol", c.proto.Name()))
	}
	return c, true
}

// serve takes over an upgraded connection. It returns at once. With poll
// and the poller, the connection is read only when readable and holds no
// goroutine while idle; otherwise a goroutine reads it.
func (h *Hub) serve(nc net.Conn, p *protocol, o ConnOptions, poll bool) *Conn {
	c, ok := h.accept(newConn(h, nc, p, o))
	if !ok || (o.UID != "" && !c.login(Identity{UID: o.UID, Claims: o.Claims}, o.Since)) {
		return c
	}
	if !poll || !h.poller.add(c) {
		c.goConn("reader", c.readLoop)
	}
	return c
}
