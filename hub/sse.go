package hub

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Server-Sent Events: a transport for clients that only listen, over
// HTTP/1.1, HTTP/2 or HTTP/3. The connection is a hub Conn like any other
// (same uid, groups, fan-out, history and resume), whose frames are events
// written to the response and flushed; it holds the request's goroutine
// until it ends, as every streamed response does.

// IsEventStream reports whether r asks for an event stream.
func IsEventStream(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// ServeSSE streams events to r's client until the client goes away or the
// hub closes the connection. The caller has authenticated the client:
// o.UID is set. A resuming EventSource's Last-Event-ID is its since.
func (h *Hub) ServeSSE(w http.ResponseWriter, r *http.Request, o ConnOptions) error {
	if o.UID == "" {
		return errors.New("hub: an event stream needs a uid from the request")
	}
	if o.Since == nil {
		if id, err := parseUint(r.Header.Get("Last-Event-ID")); err == nil {
			o.Since = &Position{Offset: id}
		}
	}
	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // a proxy in front must not buffer the stream
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return err
	}
	sc := &sseConn{w: w, rc: rc, remote: remoteAddr(r.RemoteAddr), done: make(chan struct{})}
	c := h.serveStream(sc, o)
	select {
	case <-sc.done: // the hub closed it
	case <-r.Context().Done(): // the client went away
		c.teardown()
		<-sc.done
	}
	return nil
}

// serveStream takes over a one-way connection: nothing is read from it,
// and it is logged in at once.
func (h *Hub) serveStream(sc *sseConn, o ConnOptions) *Conn {
	c := newConn(h, sc, sseProtocol, o)
	c.oneWay = true
	if c, ok := h.accept(c); ok {
		c.login(Identity{UID: o.UID, Claims: o.Claims}, o.Since)
	}
	return c
}

// sseConn is a response stream as the net.Conn a hub Conn writes to: a
// write is written to the response and flushed; closing it ends the
// handler's wait. It is never read.
type sseConn struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	rc     *http.ResponseController
	remote net.Addr
	done   chan struct{}
	once   sync.Once
	closed bool
}

func (s *sseConn) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	n, err := s.w.Write(b)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, err
}

func (s *sseConn) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
	})
	return nil
}

func (s *sseConn) Read([]byte) (int, error) { return 0, io.EOF }
func (s *sseConn) LocalAddr() net.Addr      { return s.remote }
func (s *sseConn) RemoteAddr() net.Addr     { return s.remote }
func (s *sseConn) SetDeadline(t time.Time) error {
	return s.SetWriteDeadline(t)
}
func (s *sseConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline bounds the writes where the server can (HTTP/1.1 and
// HTTP/2); elsewhere a dead peer is found when the request ends.
func (s *sseConn) SetWriteDeadline(t time.Time) error {
	if err := s.rc.SetWriteDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// addr is a remote address as a request gives it.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

func remoteAddr(s string) net.Addr { return addr(s) }

func parseUint(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty")
	}
	var n uint64
	for _, r := range s {
		if r < '0' || r > '9' || n > (1<<63)/10 {
			return 0, errors.New("not a sequence number")
		}
		n = n*10 + uint64(r-'0')
	}
	return n, nil
}
