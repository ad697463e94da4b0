package hub

import (
	"crypto/tls"
	"net"
	"reflect"
	"sync"
	"syscall"
	"unsafe"
)

// The socket under a TLS connection, read and written without waiting.
//
// Writes. A frame for an idle plain connection goes straight to its
// non-blocking socket from the goroutine that delivers it (writer.go); over
// TLS it would have to be encrypted by crypto/tls, whose Write waits for
// the socket, so every wss delivery used to wake a writer goroutine: a
// hand-over per message, which is what a wss message cost most beyond the
// recipe's.
//
// Reads. A worker that reads a TLS connection, waiting under a deadline,
// costs a hand-over per message too. While the poller reads the
// connection, the socket answers crypto/tls without waiting, and an empty
// socket answers a temporary error, after which crypto/tls keeps what it
// has of a record and goes on at the next read: the poller decrypts
// whatever whole records came, and leaves a record begun, like a frame
// begun, to a worker (reader.go).
//
// tlsSocket is the socket as crypto/tls sees it once the connection is on
// the poller: its Write never waits. It writes what the socket takes at
// once and keeps the rest, in order, for the connection's writer goroutine
// to flush, waiting as a write may. crypto/tls then encrypts a frame and
// returns at once on any goroutine, also under the locks a publisher holds,
// and also for what crypto/tls writes on its own from inside a Read (an
// alert, a KeyUpdate's answer): the reader never waits on the socket
// either. What it keeps is bounded: the delivering goroutine writes inline
// only while nothing is kept or queued, and the writer encrypts one batch
// of the send queue before it flushes.
//
// crypto/tls has no way to change the connection it writes to; the hub
// sets its unexported conn field once, in newConn, before anything else
// uses the tls.Conn. The field's name and type are checked once, at start;
// on a Go whose tls.Conn differs, nothing is replaced, wss frames go
// through the writer goroutine and a worker reads them, as before, and
// TestTLSSocketInline fails so that the project notices.
type tlsSocket struct {
	net.Conn // the connection under TLS: reads that wait, deadlines, close, the writer's flush

	rc syscall.RawConn // the socket's raw access

	mu sync.Mutex
	// fd is the socket to write to without waiting, or -1 once the
	// connection closes (the number could be reused): set when the socket
	// is wrapped, cleared under Conn.mu too.
	fd      int
	pending []byte // encrypted bytes the socket has not taken yet, in order
	holding bool   // the writer gathers a batch, or flushes: every write joins pending
	// added counts what crypto/tls added to pending on its own (not
	// while a frame is written: framing) since pending was last empty;
	// past maxUnflushed the socket fails. A client that reads nothing but
	// sends KeyUpdates cannot grow the answers it is owed without bound,
	// also while the writer waits to flush.
	added   int
	framing bool
	cut     bool  // closed with bytes pending: the stream ends in a record cut short
	err     error // the socket failed: every write after fails too

	// Reads. While the poller reads the connection inline (noWait), the
	// socket is read without waiting through the poller, and an empty
	// socket answers errNothingToRead, which crypto/tls takes as
	// temporary: it keeps what it has of a record and reads on at the
	// next call. drained says the last of those reads emptied the socket.
	// Only the connection's reader uses these.
	poller  *poller
	noWait  bool
	drained bool
}

// maxUnflushed bounds what crypto/tls may add to a socket's pending bytes
// on its own (alerts, KeyUpdate answers) while nobody flushes them.
const maxUnflushed = 256 << 10

// tlsFlushAt is how much of a batch the writer encrypts before it writes.
const tlsFlushAt = 64 << 10

var (
	errTLSClosed    = &Error{Code: "tls_closed", Message: "the connection is closing: nothing more is written"}
	errTLSUnflushed = &Error{Code: "tls_unflushed", Message: "the peer reads nothing and is owed too much"}
)

// tlsConnField is the offset of tls.Conn's conn field; tlsConnKnown is
// false when this Go's tls.Conn has no such field.
var tlsConnField, tlsConnKnown = func() (uintptr, bool) {
	f, found := reflect.TypeFor[tls.Conn]().FieldByName("conn")
	if !found || f.Type != reflect.TypeFor[net.Conn]() || len(f.Index) != 1 {
		return 0, false
	}
	return f.Offset, true
}()

// wrapTLS puts a tlsSocket under tc; nil where writes without waiting are
// not built (not Linux), when this Go's tls.Conn is not the one expected,
// or when the socket cannot be found. Only a tls.Conn nobody else uses
// yet may be given.
func wrapTLS(tc *tls.Conn) *tlsSocket {
	if !writesNoWait || !tlsConnKnown {
		return nil
	}
	field := (*net.Conn)(unsafe.Add(unsafe.Pointer(tc), tlsConnField))
	rc, fd, ok := socketOf(*field)
	if !ok {
		return nil
	}
	s := &tlsSocket{Conn: *field, rc: rc, fd: fd}
	*field = s
	return s
}

// NetConn is the connection under the socket, for those who look through
// wrappers (socketOf, tcpConnOf).
func (s *tlsSocket) NetConn() net.Conn { return s.Conn }

// Read is what crypto/tls reads the socket with: waiting, under the read
// deadline, or, while the poller reads the connection, without waiting.
func (s *tlsSocket) Read(p []byte) (int, error) {
	if !s.noWait {
		return s.Conn.Read(p)
	}
	n, err := s.poller.readNoWait(s.rc, p)
	s.drained = err == errNothingToRead || (err == nil && n < len(p))
	return n, err
}

// Write is what crypto/tls writes an encrypted record with. It never
// waits: b is written now as far as the socket takes it, the rest kept;
// it reports b written whole unless the socket has failed. Once the
// connection closes (detach), it makes one attempt without waiting, for
// crypto/tls's close_notify, unless a record was cut or the writer is
// still writing.
func (s *tlsSocket) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return 0, s.err
	case s.fd < 0:
		if s.cut || s.holding {
			return 0, errTLSClosed
		}
		return s.writeOnce(b)
	}
	rest := b
	if !s.holding && len(s.pending) == 0 {
		n, err := writeNonblocking(s.fd, b)
		if err != nil && !errWouldBlock(err) {
			s.err = err
			return 0, err
		}
		rest = b[n:]
	}
	if !s.framing && len(rest) > 0 {
		if s.added += len(rest); s.added > maxUnflushed {
			s.err = errTLSUnflushed
			return 0, s.err
		}
	}
	s.pending = append(s.pending, rest...)
	return len(b), nil
}

// writeOnce writes b without waiting through the socket's raw access,
// which holds the socket open meanwhile; s.mu is held.
func (s *tlsSocket) writeOnce(b []byte) (int, error) {
	var n int
	var werr error
	if err := s.rc.Write(func(fd uintptr) bool {
		n, werr = writeNonblocking(int(fd), b)
		return true
	}); err != nil {
		return 0, err
	}
	if werr == nil && n < len(b) {
		werr = errTLSClosed
	}
	return n, werr
}

// usePoller lets the poller read the socket without waiting.
func (s *tlsSocket) usePoller(p *poller) {
	if s != nil {
		s.poller = p // before the poller can see the connection
	}
}

// detach ends writes to the socket's number before the socket closes:
// what is kept is dropped.
func (s *tlsSocket) detach() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.fd, s.cut, s.pending = -1, len(s.pending) > 0, nil
	s.mu.Unlock()
}

// inline reports whether a frame may be encrypted and written by the
// goroutine that delivers it.
func (s *tlsSocket) inline() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fd >= 0 && s.err == nil
}

// hasPending reports whether encrypted bytes wait for the writer.
func (s *tlsSocket) hasPending() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) > 0
}

// writeFrame has crypto/tls (tc, over s) encrypt and write a frame; its
// writes are marked as a frame's, not crypto/tls's own. pending is how
// many bytes then wait for the writer. Without s (no TLS), tc writes b.
func (s *tlsSocket) writeFrame(tc net.Conn, b []byte) (pending int, err error) {
	if s == nil {
		_, err = tc.Write(b)
		return 0, err
	}
	s.mu.Lock()
	s.framing = true
	s.mu.Unlock()
	_, err = tc.Write(b)
	s.mu.Lock()
	s.framing = false
	pending = len(s.pending)
	s.mu.Unlock()
	return pending, err
}

// hold makes the writes that follow gather in pending, for flush to write
// them at once.
func (s *tlsSocket) hold() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.holding = s.fd >= 0
	s.mu.Unlock()
}

// flush writes what is pending, waiting as long as the connection's write
// deadline lets it; writes that come meanwhile join pending and go out
// after. Only the connection's writer calls it.
func (s *tlsSocket) flush() error {
	if s == nil {
		return nil
	}
	for {
		s.mu.Lock()
		b, err := s.pending, s.err
		if err == nil && s.fd < 0 {
			err = errTLSClosed
		}
		if len(b) == 0 || err != nil {
			s.pending, s.holding, s.added = nil, false, 0 // an idle connection keeps no buffer
			s.mu.Unlock()
			return err
		}
		s.pending, s.holding = nil, true
		s.mu.Unlock()
		if _, err := s.Conn.Write(b); err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return err
		}
	}
}
