package hub

import (
	"math/rand/v2"
	"time"
)

// Each connection has one timer, in the hub's wheel (wheel.go): it
// enforces the auth timeout, detects dead peers and queues pings.

// startTimer arms the connection's timer for the first time. The first
// ping comes up to a tenth of ping_interval early, so that connections that
// came together do not all ping together.
func (c *Conn) startTimer() {
	s := c.settings()
	first := s.PingInterval - time.Duration(rand.Int64N(int64(s.PingInterval/10)+1))
	c.mu.Lock()
	c.hub.schedule(c, min(s.AuthTimeout, first))
	c.mu.Unlock()
}

// tick runs when the connection's timer is due, on the wheel's goroutine:
// nothing in it blocks.
func (c *Conn) tick() {
	if c.torn.Load() {
		return
	}
	s := c.settings()
	now := time.Now()
	next := s.PingInterval + s.PongTimeout
	if !c.loggedIn.Load() {
		left := s.AuthTimeout - now.Sub(time.Unix(0, c.openedAt))
		if left <= 0 {
			c.hub.outcomes.refused("auth_timeout")
			c.abort(CloseAuthTimeout, "no login within auth_timeout")
			return
		}
		next = min(next, left)
	}
	if c.oneWay {
		// Nothing comes back on an event stream: ping to keep proxies from
		// closing it; a dead peer shows in a failed write.
		c.enqueue(c.proto.Ping())
		c.mu.Lock()
		if !c.closing {
			c.hub.schedule(c, s.PingInterval)
		}
		c.mu.Unlock()
		return
	}
	silent := now.Sub(time.Unix(0, c.lastRead.Load()))
	deadline := s.PingInterval + s.PongTimeout
	switch {
	case silent >= deadline:
		c.abort(ClosePingTimeout, "no pong within pong_timeout")
		return
	case silent >= s.PingInterval-s.PingInterval/10:
		// Due: ping, and look again when the pong is overdue.
		c.enqueue(c.proto.Ping())
		next = min(next, deadline-silent)
	default:
		next = min(next, s.PingInterval-silent)
	}
	next = max(next, 10*time.Millisecond)
	c.mu.Lock()
	if !c.closing {
		c.hub.schedule(c, next)
	}
	c.mu.Unlock()
}
