package hub

import (
	"sync"
	"time"
)

// The hub's timer wheel: every connection's one timer (timers.go) sits in
// a slot of a wheel that one goroutine turns every wheelTick, instead of a
// runtime timer and a goroutine per firing for each connection. A
// connection in the wheel costs three fields; the ones due are handled in
// a batch, a ping or a close each, neither of which blocks.

const (
	wheelTick  = 100 * time.Millisecond
	wheelSlots = 1024 // about 100 s; a connection due later waits in the last slot it can reach
)

type wheel struct {
	mu    sync.Mutex
	slots [wheelSlots]*Conn // each slot a list through Conn.wnext
	at    int               // the slot of the current tick
}

// schedule (re)places c to be ticked after d; c.mu is held, or c is not
// yet shared.
func (h *Hub) schedule(c *Conn, d time.Duration) {
	w := &h.wheel
	n := max(int((d+wheelTick-1)/wheelTick), 1)
	w.mu.Lock()
	w.unlink(c)
	c.wdue = time.Now().Add(d).UnixNano()
	slot := (w.at + min(n, wheelSlots-1)) % wheelSlots
	c.wslot, c.wnext = int32(slot), w.slots[slot]
	if c.wnext != nil {
		c.wnext.wprev = c
	}
	c.wprev = nil
	w.slots[slot] = c
	w.mu.Unlock()
}

// unschedule takes c out of the wheel.
func (h *Hub) unschedule(c *Conn) {
	h.wheel.mu.Lock()
	h.wheel.unlink(c)
	h.wheel.mu.Unlock()
}

// unlink takes c out of its slot, if it is in one; w.mu is held.
func (w *wheel) unlink(c *Conn) {
	if c.wslot < 0 {
		return
	}
	if c.wprev != nil {
		c.wprev.wnext = c.wnext
	} else {
		w.slots[c.wslot] = c.wnext
	}
	if c.wnext != nil {
		c.wnext.wprev = c.wprev
	}
	c.wnext, c.wprev, c.wslot = nil, nil, -1
}

// tickSlot runs every wheelTick until the hub closes: it advances the
// wheel one slot and ticks the connections due in it; one due later than
// the wheel reaches goes round again.
func (h *Hub) tickSlot(at time.Time) {
	now := at.UnixNano()
	w := &h.wheel
	w.mu.Lock()
	w.at = (w.at + 1) % wheelSlots
	list := w.slots[w.at]
	w.slots[w.at] = nil
	var due []*Conn
	for c := list; c != nil; {
		next := c.wnext
		c.wnext, c.wprev, c.wslot = nil, nil, -1
		due = append(due, c)
		c = next
	}
	w.mu.Unlock()
	for _, c := range due {
		if left := time.Duration(c.wdue - now); left > wheelTick {
			c.mu.Lock()
			if !c.closing {
				h.schedule(c, left)
			}
			c.mu.Unlock()
			continue
		}
		c.tickSafely()
	}
}

// tickSafely ticks c, recovering a panic in it: logged, c closes, the
// wheel turns on.
func (c *Conn) tickSafely() {
	defer c.recoverPanic("timer")
	c.tick()
}
