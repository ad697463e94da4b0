//go:build linux

package hub

import (
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// poller watches the sockets of idle connections with one epoll instance,
// so that a connection with nothing to read has no goroutine: when its
// socket becomes readable, the poller's goroutine reads it (readInline) or
// hands it to a worker (readReady). A socket is watched edge-triggered: the
// poller reads it until the kernel has nothing more, and the next bytes to
// arrive raise a new event, so a message costs no re-arming system call.
// Over TLS, crypto/tls reads the socket without waiting too, and keeps a
// record begun for the next read (tls_socket.go). While a worker reads it
// (Conn.busy) the poller ignores its events, and the worker re-arms it
// when done, which raises an event for anything that came meanwhile. A
// socket the poller cannot read without waiting (TLS on a Go whose
// tls.Conn the hub does not know) is watched one-shot (EPOLLONESHOT), a
// worker reads it and re-arms it. Either way, one reader at a time. An
// eventfd in the same set wakes the loop when the hub closes.
//
// The loop does not block in epoll_wait: the epoll instance is itself
// registered with Go's network poller (an epoll instance is readable while
// it has events), and the loop parks there like any goroutine waiting on a
// socket. A thread blocked in a system call would have the runtime's
// monitor take its processor back and hand it over on every wake-up,
// costing a few context switches per message under a steady trickle.
type poller struct {
	epfd   int
	wake   int // eventfd: written by close
	shards [shardCount]pollShard
	hub    *Hub
	nw     noWaitRead // the poller goroutine's
}

type pollShard struct {
	mu sync.Mutex
	m  map[uint64]*Conn
}

// The events a socket is watched for: edge-triggered (read by the poller
// itself), or one-shot (always read by a worker).
const (
	edgeEvents    = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET
	oneShotEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT
)

// wakeID is the event id of the eventfd; connection ids start at 1.
const wakeID = 0

// newPoller starts a hub's poller; nil (every connection then gets a
// reader goroutine) if epoll is unavailable.
func newPoller(h *Hub) *poller {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		h.logger().Warn("epoll unavailable: one reader goroutine per connection", zap.Error(err))
		return nil
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		ev := idEvent(wakeID, unix.EPOLLIN)
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev)
	}
	if err != nil {
		h.logger().Warn("eventfd unavailable: one reader goroutine per connection", zap.Error(err))
		unix.Close(epfd)
		if wake >= 0 {
			unix.Close(wake)
		}
		return nil
	}
	p := &poller{epfd: epfd, wake: wake, hub: h}
	for i := range p.shards {
		p.shards[i].m = make(map[uint64]*Conn)
	}
	h.routines.goFn("poller", p.run)
	return p
}

func (p *poller) shard(id uint64) *pollShard { return &p.shards[id%shardCount] }

// add registers c; false means c must be read by a goroutine of its own
// (its socket could not be found, or epoll refused it).
func (p *poller) add(c *Conn) bool {
	if p == nil {
		return false
	}
	rc, fd, ok := socketOf(c.nc)
	if !ok {
		return false
	}
	if !c.tls || (c.tlsOut != nil && tlsLayout.ok) {
		c.raw = rc // before the poller can see c (the shard's lock orders it)
		c.tlsOut.usePoller(p)
	}
	s := p.shard(c.pollID)
	s.mu.Lock()
	s.m[c.pollID] = c
	s.mu.Unlock()
	ev := pollEvent(c)
	c.releaseTLS() // what the handshake and the request left: no reader yet
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pollFD = fd
	if c.torn.Load() { // closed meanwhile: nothing to read
		s.mu.Lock()
		delete(s.m, c.pollID)
		s.mu.Unlock()
		return true
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		s.mu.Lock()
		delete(s.m, c.pollID)
		s.mu.Unlock()
		return false
	}
	c.polled = true
	if !c.tls { // over TLS, tlsOut writes without waiting
		c.inlineFD = fd
	}
	return true
}

// writesNoWait: sockets can be written without waiting (writeNonblocking).
const writesNoWait = true

// writeNonblocking writes to a non-blocking socket without waiting.
func writeNonblocking(fd int, b []byte) (int, error) {
	n, err := rawWrite(fd, b)
	return max(n, 0), err
}

// noWaitRead is the state of the poller's reads without waiting: the
// function handed to RawConn.Read is made once, not a closure per read.
type noWaitRead struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// readNoWait reads what the socket under rc holds, without waiting:
// errNothingToRead if nothing. Through rc, the socket cannot be closed and
// its number reused while it is read. Only the poller's goroutine calls it
// (inline reads).
func (pl *poller) readNoWait(rc syscall.RawConn, p []byte) (int, error) {
	r := &pl.nw
	if r.fn == nil {
		r.fn = func(fd uintptr) bool {
			r.n, r.err = rawRead(int(fd), r.p)
			return true
		}
	}
	r.p = p
	cerr := rc.Read(r.fn)
	n, err := r.n, r.err
	r.p, r.err = nil, nil
	if cerr != nil {
		return 0, cerr
	}
	switch {
	case err == unix.EAGAIN:
		return 0, errNothingToRead
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func errWouldBlock(err error) bool { return err == unix.EAGAIN }

// socketReadable reports whether a read of the socket under rc would not
// wait: bytes, the peer's end of input or an error are there. It peeks,
// taking nothing.
func socketReadable(rc syscall.RawConn) bool {
	readable := true
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		readable = err != unix.EAGAIN
	})
	return readable
}

// unreadBytes is how many received bytes wait in the socket (FIONREAD), or
// -1 if unknown.
func unreadBytes(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	if err != nil {
		return -1
	}
	return n
}

// rearm hands c back to the poller after a worker's read. It holds c.mu,
// as teardown does before closing the socket, so it never touches a socket
// number that a new connection may have been given. Re-arming raises an
// event if bytes came while the worker read, which an edge-triggered
// socket's events, ignored meanwhile, may have announced.
func (p *poller) rearm(c *Conn) bool {
	ev := pollEvent(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.torn.Load() {
		return false
	}
	c.busy.Store(false)
	return rawEpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.pollFD, &ev) == nil
}

// handOver gives c to a worker (readReady), which waits for what the
// poller cannot read without waiting; the poller ignores c's events until
// the worker re-arms it.
func (p *poller) handOver(c *Conn) {
	c.busy.Store(true)
	p.hub.run(job{c: c})
}

// remove forgets c; teardown calls it under c.mu before closing the socket.
func (p *poller) remove(c *Conn) {
	if p == nil || !c.polled {
		return
	}
	c.polled = false
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.pollFD, nil)
	s := p.shard(c.pollID)
	s.mu.Lock()
	delete(s.m, c.pollID)
	s.mu.Unlock()
}

// close wakes the loop, which then stops and closes the epoll instance.
func (p *poller) close() {
	if p == nil {
		return
	}
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}

// pollEvent is what c's socket is watched for. It carries the
// connection's id, not its socket number: socket numbers are reused, ids
// are not.
func pollEvent(c *Conn) unix.EpollEvent {
	events := uint32(oneShotEvents)
	if c.raw != nil {
		events = edgeEvents
	}
	return idEvent(c.pollID, events)
}

func idEvent(id uint64, events uint32) unix.EpollEvent {
	return unix.EpollEvent{Events: events, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

func (p *poller) run() {
	defer unix.Close(p.wake)
	events := make([]unix.EpollEvent, 256)
	wait, closeEpoll := p.parkedWait(events)
	defer closeEpoll()
	if wait == nil { // blocking in epoll_wait, then
		wait = func() (int, error) { return unix.EpollWait(p.epfd, events, -1) }
	}
	for {
		n, err := wait()
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			p.hub.logger().Error("epoll_wait failed; the poller stops", zap.Error(err))
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == wakeID {
				return
			}
			s := p.shard(id)
			s.mu.Lock()
			c := s.m[id]
			s.mu.Unlock()
			switch {
			case c == nil:
			case c.busy.Load(): // a worker reads it, or reading has ended
			case c.readsInline():
				c.readHere(ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
			default:
				p.handOver(c)
			}
		}
	}
}

// readHere reads c inline on the poller's goroutine; a panic closes c
// and is logged, and the poller goes on. hangup: the event said the peer
// has closed or reset its side.
func (c *Conn) readHere(hangup bool) {
	defer c.recoverPanic("reader")
	c.readInline(hangup)
}

// parkedWait makes a wait for events that parks in Go's network poller
// until the epoll instance has some, and then takes them without blocking;
// wait is nil if the instance cannot be registered there, and the loop
// blocks in epoll_wait instead. closeEpoll closes the instance, through the
// file that owns it from now on.
func (p *poller) parkedWait(events []unix.EpollEvent) (wait func() (int, error), closeEpoll func()) {
	if unix.SetNonblock(p.epfd, true) != nil {
		return nil, func() { unix.Close(p.epfd) }
	}
	f := os.NewFile(uintptr(p.epfd), "epoll")
	closeEpoll = func() { f.Close() }
	rc, err := f.SyscallConn()
	// A file the network poller does not watch has no deadlines.
	if err != nil || f.SetReadDeadline(time.Time{}) != nil {
		_ = unix.SetNonblock(p.epfd, false)
		return nil, closeEpoll
	}
	return func() (int, error) {
		var n int
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			n, werr = rawEpollPoll(int(fd), events)
			return n > 0 || (werr != nil && werr != unix.EINTR)
		})
		if err != nil {
			return 0, err
		}
		return n, werr
	}, closeEpoll
}
