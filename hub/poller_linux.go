//go:build linux

package hub

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"go.uber.org/zap"
)

// poller watches the sockets of idle connections with one epoll instance,
// so that a connection with nothing to read has no goroutine: when its
// socket becomes readable, a goroutine reads what is there (readReady) and
// then re-arms it. EPOLLONESHOT guarantees one reader at a time.
type poller struct {
	epfd   int
	done   chan struct{}
	shards [shardCount]pollShard
	hub    *Hub
}

type pollShard struct {
	mu sync.Mutex
	m  map[uint64]*Conn
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// newPoller starts a hub's poller; nil (every connection then gets a
// reader goroutine) if epoll is unavailable.
func newPoller(h *Hub) *poller {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		h.logger().Warn("epoll unavailable: one reader goroutine per connection", zap.Error(err))
		return nil
	}
	p := &poller{epfd: epfd, done: make(chan struct{}), hub: h}
	for i := range p.shards {
		p.shards[i].m = make(map[uint64]*Conn)
	}
	go p.run()
	return p
}

func (p *poller) shard(id uint64) *pollShard { return &p.shards[id%shardCount] }

// add registers c; false means c must be read by a goroutine of its own
// (its socket could not be found, or epoll refused it).
func (p *poller) add(c *Conn) bool {
	if p == nil {
		return false
	}
	fd, ok := socketFD(c.ws.NetConn())
	if !ok {
		return false
	}
	s := p.shard(c.pollID)
	s.mu.Lock()
	s.m[c.pollID] = c
	s.mu.Unlock()
	ev := pollEvent(c.pollID)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pollFD = fd
	if c.torn.Load() { // closed meanwhile: nothing to read
		s.mu.Lock()
		delete(s.m, c.pollID)
		s.mu.Unlock()
		return true
	}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
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
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

func errWouldBlock(err error) bool { return err == syscall.EAGAIN }

// unreadBytes is how many received bytes wait in the socket (FIONREAD), or
// -1 if unknown.
func unreadBytes(fd int) int {
	var n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 {
		return -1
	}
	return int(n)
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
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, c.pollFD, &ev) == nil
}

// remove forgets c; teardown calls it under c.mu before closing the socket.
func (p *poller) remove(c *Conn) {
	if p == nil || !c.polled {
		return
	}
	c.polled = false
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.pollFD, nil)
	s := p.shard(c.pollID)
	s.mu.Lock()
	delete(s.m, c.pollID)
	s.mu.Unlock()
}

func (p *poller) close() {
	if p != nil {
		close(p.done)
	}
}

// pollEvent carries the connection's id, not its socket number: socket
// numbers are reused, ids are not.
func pollEvent(id uint64) syscall.EpollEvent {
	return syscall.EpollEvent{Events: pollEvents, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

func (p *poller) run() {
	defer syscall.Close(p.epfd)
	events := make([]syscall.EpollEvent, 256)
	for {
		// A timeout lets close() stop the loop: closing an epoll instance
		// does not wake a waiter.
		n, err := syscall.EpollWait(p.epfd, events, 500)
		select {
		case <-p.done:
			return
		default:
		}
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			p.hub.logger().Error("epoll_wait failed; the poller stops", zap.Error(err))
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			s := p.shard(id)
			s.mu.Lock()
			c := s.m[id]
			s.mu.Unlock()
			if c != nil {
				go c.readReady()
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
