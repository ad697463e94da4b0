//go:build linux

package hub

import (
	"crypto/tls"
	"net"
	"sync"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// poller watches the sockets of idle connections with one epoll instance,
// so that a connection with nothing to read has no goroutine: when its
// socket becomes readable, a goroutine reads what is there (readReady) and
// then re-arms it. EPOLLONESHOT guarantees one reader at a time. An eventfd
// in the same set wakes the loop when the hub closes.
type poller struct {
	epfd   int
	wake   int // eventfd: written by close
	shards [shardCount]pollShard
	hub    *Hub
}

type pollShard struct {
	mu sync.Mutex
	m  map[uint64]*Conn
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

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
		ev := pollEvent(wakeID)
		ev.Events = unix.EPOLLIN
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
	fd, ok := socketFD(c.nc)
	if !ok {
		return false
	}
	s := p.shard(c.pollID)
	s.mu.Lock()
	s.m[c.pollID] = c
	s.mu.Unlock()
	ev := pollEvent(c.pollID)
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
	if !c.tls { // TLS must encrypt: its frames go through the writer
		c.inlineFD = fd
	}
	return true
}

// writeNonblocking writes to a non-blocking socket without waiting.
func writeNonblocking(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

func errWouldBlock(err error) bool { return err == unix.EAGAIN }

// unreadBytes is how many received bytes wait in the socket (FIONREAD), or
// -1 if unknown.
func unreadBytes(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	if err != nil {
		return -1
	}
	return n
}

// rearm hands c back to the poller after a read. It holds c.mu, as
// teardown does before closing the socket, so it never touches a socket
// number that a new connection may have been given.
func (p *poller) rearm(c *Conn) bool {
	ev := pollEvent(c.pollID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.torn.Load() {
		return false
	}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.pollFD, &ev) == nil
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

// pollEvent carries the connection's id, not its socket number: socket
// numbers are reused, ids are not.
func pollEvent(id uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: pollEvents, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

func (p *poller) run() {
	defer unix.Close(p.wake)
	defer unix.Close(p.epfd)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
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
			if c != nil {
				p.hub.run(job{c: c})
			}
		}
	}
}

// socketFD finds the socket under a connection (through TLS and wrappers).
func socketFD(conn net.Conn) (int, bool) {
	for range 8 {
		switch v := conn.(type) {
		case *tls.Conn:
			conn = v.NetConn()
		case syscall.Conn:
			rc, err := v.SyscallConn()
			if err != nil {
				return 0, false
			}
			fd := -1
			if rc.Control(func(f uintptr) { fd = int(f) }) != nil || fd < 0 {
				return 0, false
			}
			return fd, true
		case interface{ NetConn() net.Conn }:
			conn = v.NetConn()
		default:
			return 0, false
		}
	}
	return 0, false
}
