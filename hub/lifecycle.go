package hub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

// reapEvery is how often the reaper runs.
const reapEvery = time.Second

// reap expires history and drops offline uids whose history is empty and
// older than the ttl, and forgets expired idempotency keys. It runs every
// reapEvery until Close.
func (h *Hub) reap(now time.Time) {
	h.reapOnce(now)
	h.idempotency.expire(now.UnixNano())
}

func (h *Hub) reapOnce(now time.Time) {
	st := h.settings.Load()
	if h.histMessages.Load() == 0 && h.kept.Load() == 0 {
		return // nothing stored and no offline uid kept
	}
	cutoff := now.Add(-st.HistoryTTL).UnixNano()
	for i := range h.uids {
		s := &h.uids[i]
		s.mu.Lock()
		for uid, e := range s.m {
			e.mu.Lock()
			if st.HistorySize == 0 {
				h.forget(e)
			} else {
				freed, n := e.hist.expire(cutoff)
				h.histBytes.Add(-freed)
				h.histMessages.Add(-int64(n))
			}
			if !e.online() && e.hist.len() == 0 && (st.HistorySize == 0 || e.offlineAt < cutoff) {
				h.uncharge(e)
				delete(s.m, uid)
				h.kept.Add(-1)
			}
			e.mu.Unlock()
		}
		s.mu.Unlock()
	}
}

// closeFlushTime bounds how long Close lets connections flush their queues.
const closeFlushTime = 2 * time.Second

// laneCloseTime bounds Close's wait for the lanes to carry out what they
// hold (lanes.go) before the broker stops: a command waits on a broker's
// timeouts at most.
const laneCloseTime = 5 * time.Second

// Close ends the hub: every connection gets what is queued to it, then a
// 1001 close with reason and a retry hint spread over ReconnectJitter, so
// that clients do not all reconnect in the same moment; new logins are
// refused. It returns once every connection is closed and every goroutine
// of the hub has ended, or after a short deadline; then it closes the
// broker.
func (h *Hub) Close(reason string) {
	if !h.closed.CompareAndSwap(false, true) {
		return
	}
	close(h.done)
	var conns []*Conn
	h.pendingMu.Lock()
	for c := range h.pending {
		conns = append(conns, c)
	}
	h.pendingMu.Unlock()
	for i := range h.uids {
		s := &h.uids[i]
		s.mu.RLock()
		for _, e := range s.m {
			e.mu.Lock()
			conns = append(conns, e.conns...)
			e.mu.Unlock()
		}
		s.mu.RUnlock()
	}
	for _, c := range conns {
		retry := 500*time.Millisecond + rand.N(c.settings().ReconnectJitter)
		if c.loggedIn.Load() {
			if f, ok := c.proto.GoingAway(reason, retry); ok {
				c.enqueueAll(f, nil)
			}
		}
		c.closeAfterFlush(CloseGoingAway, closeReason(fmt.Sprintf("%s; retry in %dms", reason, retry.Milliseconds())), closeFlushTime)
	}
	// Wait for the flushes, so that a stopping server does not exit first.
	ctx, cancel := context.WithTimeout(context.Background(), closeFlushTime+250*time.Millisecond)
	defer cancel()
	h.live.wait(ctx)
	h.closeLanes(laneCloseTime)
	h.poller.close()
	allEnded := h.routines.wait(ctx)
	if err := h.Broker().Close(); err != nil {
		h.logger().Warn("closing the broker", zap.String("hub", h.name), zap.Error(err))
	}
	h.logger().Info("hub closed", zap.String("hub", h.name), zap.Int("connections", len(conns)),
		zap.Int64("not_flushed", h.live.count()), zap.Bool("goroutines_ended", allEnded))
}

// closeReason trims a close reason to what fits a close frame (123 bytes).
func closeReason(s string) string {
	if len(s) <= 123 {
		return s
	}
	s = s[:123]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
