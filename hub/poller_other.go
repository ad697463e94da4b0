//go:build !linux

package hub

// poller is Linux-only (epoll); elsewhere every connection has a reader
// goroutine.
type poller struct{}

func newPoller(*Hub) *poller       { return nil }
func (p *poller) add(*Conn) bool   { return false }
func (p *poller) rearm(*Conn) bool { return false }
func (p *poller) remove(*Conn)     {}
func (p *poller) close()           {}
