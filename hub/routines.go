package hub

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// tally counts things that must all end before the hub has closed (its
// goroutines, its connections) and lets Close wait for the count to reach
// zero without polling.
type tally struct {
	n    atomic.Int64
	mu   sync.Mutex
	zero chan struct{} // made by the first waiter, closed when n reaches 0
}

func (t *tally) add()         { t.n.Add(1) }
func (t *tally) count() int64 { return t.n.Load() }

func (t *tally) done() {
	if t.n.Add(-1) != 0 {
		return
	}
	t.mu.Lock()
	if t.zero != nil && t.n.Load() == 0 {
		close(t.zero)
		t.zero = nil
	}
	t.mu.Unlock()
}

// wait returns once the count is zero, or when ctx ends (false).
func (t *tally) wait(ctx context.Context) bool {
	t.mu.Lock()
	if t.n.Load() == 0 {
		t.mu.Unlock()
		return true
	}
	if t.zero == nil {
		t.zero = make(chan struct{})
	}
	zero := t.zero
	t.mu.Unlock()
	select {
	case <-zero:
		return true
	case <-ctx.Done():
		return t.n.Load() == 0
	}
}

// routines owns every goroutine the hub starts: each is counted, so that
// Close can wait for all of them, and a panic in one is logged and ends
// only that goroutine's work (and its connection), never the server.
type routines struct {
	tally
	log func() *zap.Logger
}

// goWith runs fn in a goroutine of the hub; onPanic, if set, runs after a
// recovered panic (a connection's goroutine tears its connection down).
func (r *routines) goWith(name string, onPanic func(), fn func()) {
	r.add()
	go func() {
		defer r.done()
		defer r.recoverAs(name, onPanic)
		fn()
	}()
}

// goFn runs fn in a goroutine of the hub.
func (r *routines) goFn(name string, fn func()) { r.goWith(name, nil, fn) }

// goEvery runs tick every d in a goroutine of the hub until done is closed.
func (r *routines) goEvery(name string, d time.Duration, done <-chan struct{}, tick func(now time.Time)) {
	r.goFn(name, func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				tick(now)
			}
		}
	})
}

// The hot work of a connection (its writer, its reader on the poller) runs
// on reused workers (workers.go), counted like any goroutine of the hub.

// afterFunc is time.AfterFunc for the hub: the callback runs as one of its
// goroutines.
func (r *routines) afterFunc(d time.Duration, name string, onPanic func(), fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		r.add()
		defer r.done()
		defer r.recoverAs(name, onPanic)
		fn()
	})
}

// recoverAs, deferred, recovers a panic of the goroutine: it is logged and
// onPanic runs.
func (r *routines) recoverAs(name string, onPanic func()) {
	v := recover()
	if v == nil {
		return
	}
	r.logPanic(name, v)
	if onPanic != nil {
		onPanic()
	}
}

func (r *routines) logPanic(name string, v any) {
	r.log().Error("panic in the hub's "+name+" goroutine; the hub keeps serving",
		zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
}
