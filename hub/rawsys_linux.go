//go:build linux

package hub

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls of the hot path (a socket's inline write, the poller's
// read of a socket, re-arming it, taking events) never block: the sockets
// are non-blocking and epoll_wait is asked not to wait. They are made raw,
// without telling the scheduler: a call announced as possibly blocking
// wakes the runtime's monitor thread when it sleeps, and under a steady
// trickle of messages that wake-up, its sleeps and the context switches
// they bring cost more than the call.

func rawErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawWrite writes b to a non-blocking socket.
func rawWrite(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, b) }

// rawRead reads from a non-blocking socket.
func rawRead(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, b) }

// rawIO is read or write (trap) on a non-blocking socket, again after an
// interrupt.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == syscall.EINTR {
			continue
		}
		return int(n), rawErr(e)
	}
}

// rawEpollCtl is epoll_ctl.
func rawEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return rawErr(e)
}

// rawEpollPoll takes the events that are ready, without waiting.
func rawEpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(n), rawErr(e)
}
