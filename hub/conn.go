package hub

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Conn is one WebSocket connection on a hub. Publishers never block on it
// (writer.go): a frame offered to an idle connection on the poller is
// written straight to its non-blocking socket; what the socket cannot take
// at once is queued for a writer goroutine that exists only while frames
// are queued. A full queue cuts the connection off as a slow consumer.
type Conn struct {
	hub      *Hub
	nc       net.Conn
	br       *bufio.Reader // the hub's reader of nc (reader.go)
	proto    *protocol
	cell     *settingsCell // its endpoint's settings
	pre      *preLogin     // how to log in; nil once logged in
	openedAt int64         // unix nanoseconds
	tls      bool          // read through a TLS layer, which buffers on its own
	// raw is the socket of a connection the poller may read without
	// blocking (on Linux; over TLS through tlsOut), nil otherwise; noWait
	// makes its reader do that. Only the reader uses them.
	raw        syscall.RawConn
	noWait     bool
	drained    bool // the last read without waiting took all the socket had
	quickLogin bool // ConnOptions.QuickLogin; set once
	// catchingUp holds pushes in catchup until the login is done; guarded
	// by the uid entry's mutex.
	catchingUp bool
	// boundAt orders the connection's login among the hub's (Hub.binds),
	// so that a push reaches only connections that had logged in when it
	// began; set once, at login, under the uid entry's mutex.
	boundAt uint64
	oneWay  bool // an event stream: nothing is read, silence is no sign of death
	pollID  uint64
	pollFD  int  // the socket, once polled (valid until the socket is closed), or -1
	polled  bool // registered with the poller; guarded by mu
	// busy: a worker reads the connection (readReady) and re-arms it when
	// done, or reading has ended (readDone); the poller ignores its events.
	busy     atomic.Bool
	inlineFD int // the socket publishers may write to directly, or -1; guarded by mu
	// tlsOut is the socket under a TLS connection, which lets frames be
	// encrypted and written inline too (tls_socket.go); nil without TLS.
	tlsOut *tlsSocket

	uid string // set once, at login, before the connection is registered

	lastRead atomic.Int64 // unix nanoseconds of the last frame or pong read
	loggedIn atomic.Bool
	acked    atomic.Uint64 // highest sequence number the client acknowledged

	bucket  tokenBucket     // rate_limit; only the reader uses it
	partial *partialMessage // a fragmented message being read; only the reader uses it
	account *StoreAccount   // what this client's publishes store for offline uids; made by its first publish

	catchup *catchup // what was held; guarded by the uid entry's mutex

	mu      sync.Mutex
	queue   []outFrame
	exempt  int        // frames in queue outside send_queue's bound: a login's welcome and replay
	spare   []outFrame // the writer's previous batch, reused
	writing bool
	closing bool // a close is queued or done: nothing more is accepted
	// partialHead: the queue's first frame is the rest of one the socket
	// took only part of.
	partialHead bool

	// The connection's place in the hub's timer wheel; guarded by the
	// wheel's mutex.
	wnext, wprev *Conn
	wdue         int64 // unix nanoseconds
	wslot        int32 // -1: not in the wheel

	closed *closeInfo  // why the connection closed; guarded by mu
	torn   atomic.Bool // resources released
}

// closeInfo is how a connection ended, for its close event.
type closeInfo struct {
	code   int
	reason string
}

// closingWith records the first reason the connection closes for; c.mu is
// held.
func (c *Conn) closingWith(code int, reason string) {
	if c.closed == nil {
		c.closed = &closeInfo{code, reason}
	}
}

// preLogin is what a connection needs until it logs in.
type preLogin struct {
	login   LoginFunc
	since   *Position
	headers map[string]string
}

// LoginFunc verifies the credential a client logs in with (a uid, or a
// token whose subject is the uid) and returns who it is.
type LoginFunc func(credential string) (Identity, error)

// ConnOptions say how a new connection logs in and what it speaks.
type ConnOptions struct {
	// Protocol is the wire protocol's name (ProtocolNames); "" means
	// DefaultProtocol.
	Protocol string
	// UID is set when the connection was authenticated at the upgrade (a
	// placeholder, or a token in a header or query parameter); the connection
	// is then logged in at once. Claims are the token's.
	UID    string
	Claims map[string]any
	// Login verifies the first frame's credential when UID is empty.
	Login LoginFunc
	// QuickLogin says Login never waits (no I/O: it only checks the
	// credential): then, without a login hook, the poller may read and run
	// the login frame itself rather than hand it to a worker.
	QuickLogin bool
	// Since is the last position a resuming client has seen (the since and
	// epoch query parameters); a login frame's since overrides it.
	Since *Position
	// Endpoint holds the settings of the endpoint the connection came
	// through; nil means the hub's default endpoint.
	Endpoint *Endpoint
	// Headers are the upgrade request's headers a login hook is told of.
	Headers map[string]string
}

func newConn(h *Hub, nc net.Conn, p *protocol, o ConnOptions) *Conn {
	ep := o.Endpoint
	if ep == nil {
		ep = h.defaultEP
	}
	_, isTLS := nc.(*tls.Conn)
	now := time.Now().UnixNano()
	c := &Conn{
		hub:      h,
		nc:       nc,
		proto:    p,
		cell:     ep.cell,
		openedAt: now,
		tls:      isTLS,
		pollID:   h.nextConnID.Add(1),
		pollFD:   -1,
		inlineFD: -1,
		wslot:    -1,
	}
	if p != sseProtocol {
		c.br = bufio.NewReaderSize((*sockReader)(c), readBufferSize)
	}
	if isTLS {
		c.tlsOut = wrapTLS(nc.(*tls.Conn)) // before anything else uses it
	}
	c.pre = &preLogin{login: o.Login, since: o.Since, headers: o.Headers}
	c.quickLogin = o.QuickLogin
	c.lastRead.Store(now)
	return c
}

// settings are the connection's endpoint's.
func (c *Conn) settings() *Settings { return c.cell.load() }

// ID is the connection's id, unique within its hub. It is made when asked
// for rather than kept: every byte an idle connection holds counts.
func (c *Conn) ID() string { return "c" + strconv.FormatUint(c.pollID, 36) }

// UID is the uid the connection logged in as, or "" before login.
func (c *Conn) UID() string { return c.uid }

// goConn runs fn as one of the hub's goroutines working for c: a panic in
// it closes c.
func (c *Conn) goConn(name string, fn func()) {
	c.hub.routines.goWith(name, c.teardown, fn)
}

// recoverPanic, deferred, recovers a panic of one of c's goroutines: it is
// logged, the connection closes, the hub goes on.
func (c *Conn) recoverPanic(name string) {
	if v := recover(); v != nil {
		c.hub.routines.logPanic(name, v)
		c.teardown()
	}
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
	c.tlsOut.detach()
	c.hub.unschedule(c)
	c.hub.poller.remove(c)
	fd := c.pollFD
	why := c.closed
	c.mu.Unlock()
	if why == nil {
		why = &closeInfo{1006, "connection lost"}
	}
	open := time.Since(time.Unix(0, c.openedAt))
	c.hub.outcomes.closed(why.code)
	c.logClose(why, open)
	if c.loggedIn.Load() {
		c.emit(EventClose, func(e *Event) {
			e.Code, e.Reason, e.Duration = why.code, why.reason, open
		})
	}
	c.hub.remove(c)
	c.closeSocket(fd)
	c.hub.live.done()
}

// logClose logs a connection's end: at info when the hub cut it off for a
// reason an operator wants to see (a slow consumer, a client over its rate
// limit, a peer gone silent), at debug otherwise, as its opening is.
func (c *Conn) logClose(why *closeInfo, open time.Duration) {
	level, msg := zap.DebugLevel, "connection closed"
	switch why.code {
	case CloseSlowConsumer, CloseRateLimited, ClosePingTimeout:
		level, msg = zap.InfoLevel, "connection closed by the hub"
	}
	if ce := c.hub.logger().Check(level, msg); ce != nil {
		ce.Write(zap.String("conn", c.ID()), zap.String("uid", c.uid), zap.Int("code", why.code),
			zap.String("reason", why.reason), zap.Duration("duration", open), zap.Stringer("remote", c.nc.RemoteAddr()))
	}
}

// closeSocket closes the socket. If the peer's bytes are still unread, a
// plain close would answer them with a reset, which can destroy the close
// frame just sent before the peer reads it; so the socket is half-closed and
// drained for a moment first (a lingering close), off the caller's goroutine.
func (c *Conn) closeSocket(fd int) {
	conn := c.nc
	if fd >= 0 && unreadBytes(fd) == 0 {
		_ = conn.Close()
		return
	}
	c.hub.routines.goFn("lingering close", func() {
		defer conn.Close()
		// A reader not done yet may clear the read deadline: the close
		// comes at the second anyway.
		stop := time.AfterFunc(time.Second, func() { conn.Close() })
		defer stop.Stop()
		var r io.Reader = conn
		if tcp, ok := tcpConnOf(conn); ok {
			_ = tcp.CloseWrite()
			r = tcp // discarded unread: no TLS layer to decrypt it, or to share with a reader not done yet
		}
		if conn.SetReadDeadline(time.Now().Add(time.Second)) == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
		}
	})
}

// connOf finds the first connection of type T under conn, through TLS
// and other wrappers that say what they wrap (NetConn).
func connOf[T any](conn net.Conn) (T, bool) {
	for range 8 {
		if v, ok := conn.(T); ok {
			return v, true
		}
		w, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = w.NetConn()
	}
	var none T
	return none, false
}

// tcpConnOf finds the TCP connection under TLS and wrappers.
func tcpConnOf(conn net.Conn) (*net.TCPConn, bool) { return connOf[*net.TCPConn](conn) }

// socketOf finds the socket under a connection (through TLS and
// wrappers): its raw access and its number.
func socketOf(conn net.Conn) (syscall.RawConn, int, bool) {
	sc, ok := connOf[syscall.Conn](conn)
	if !ok {
		return nil, 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, 0, false
	}
	fd := -1
	if rc.Control(func(f uintptr) { fd = int(f) }) != nil || fd < 0 {
		return nil, 0, false
	}
	return rc, fd, true
}
