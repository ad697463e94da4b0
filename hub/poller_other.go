//go:build !linux

package hub

import "syscall"

// poller is Linux-only (epoll); elsewhere every connection has a reader
// goroutine.
type poller struct{}

func newPoller(*Hub) *poller       { return nil }
func (p *poller) add(*Conn) bool   { return false }
func (p *poller) rearm(*Conn) bool { return false }
func (p *poller) handOver(*Conn)   {}
func (p *poller) remove(*Conn)     {}
func (p *poller) close()           {}

// writesNoWait: no socket is written without waiting here.
const writesNoWait = false

// Never called: no connection has an inline socket without the poller.
func writeNonblocking(int, []byte) (int, error)                   { return 0, errNoInline }
func errWouldBlock(error) bool                                    { return false }
func (p *poller) readNoWait(syscall.RawConn, []byte) (int, error) { return 0, errNoInline }

var errNoInline = &Error{Code: "no_inline", Message: "inline writes are Linux-only"}

func unreadBytes(int) int { return -1 }

func socketReadable(syscall.RawConn) bool { return true }
