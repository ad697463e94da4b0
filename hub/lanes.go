package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Lanes: clients' commands that wait on the broker (a cluster's, on
// Redis: publishes, joins, leaves) are not carried out on the goroutine
// that read them, the poller's, which reads every client of the hub. They
// go to one of a few lanes, each a goroutine of the hub that carries its
// commands out one after another. All of a connection's commands go to one
// lane, so they take effect in the client's order, also across a reload
// that swaps the broker (a lane asks for the hub's broker as it goes);
// publishes that follow one another in a lane go to the broker in one
// batch where it takes batches (BatchPublisher). With a broker that never
// waits (the in-process one), commands run at once, without a lane.

const (
	// laneCount: a command that holds up its lane (a join's round trip)
	// holds up a quarter of the clients' commands, not all of them.
	laneCount = 4
	// laneSize is how many commands wait in a lane; a reader that finds
	// its lane full waits its turn. Redis answering nothing makes the
	// broker say so within its timeouts, and then commands go fast again.
	laneSize = 1024
	// laneBatch bounds the publishes handed to the broker at once.
	laneBatch = 512
)

type lanes struct {
	once    sync.Once
	started atomic.Bool
	mu      sync.RWMutex // held (read) while queuing; closing takes it
	closed  bool
	chs     [laneCount]chan laneCmd
	ended   [laneCount]chan struct{} // closed as each lane's goroutine ends
	stop    chan struct{}            // nil until the lanes start
}

// laneCmd is one client's command: a push or anything else (fn).
type laneCmd struct {
	push QueuedPush
	fn   func()
}

// direct reports whether clients' commands run at once, on the goroutine
// that read them: the broker never waits, and no lane is in use (lanes
// once started stay in use, so that a reload away from a cluster keeps
// each client's order too).
func (h *Hub) direct() bool { return h.broker.Load().inline && !h.lanes.started.Load() }

// sendFrom queues a client's push in c's lane; done gets the receipt once
// the lane has carried it out.
func (h *Hub) sendFrom(c *Conn, p *Publication, done func(Receipt, error)) {
	h.inLane(c, laneCmd{push: QueuedPush{Publication: p, Done: func(r Receipt, err error) {
		h.countPush(r, err)
		done(r, err)
	}}})
}

// laterFrom queues a client's other command fn in c's lane.
func (h *Hub) laterFrom(c *Conn, fn func()) { h.inLane(c, laneCmd{fn: fn}) }

// inLane queues cmd in c's lane, starting the lanes with the first
// command. Once the hub is closing, cmd runs here, after what the lane
// held.
func (h *Hub) inLane(c *Conn, cmd laneCmd) {
	l := &h.lanes
	l.once.Do(h.startLanes)
	i := c.pollID % laneCount
	l.mu.RLock()
	if !l.closed {
		l.chs[i] <- cmd
		l.mu.RUnlock()
		return
	}
	l.mu.RUnlock()
	if l.ended[i] != nil {
		<-l.ended[i]
	}
	h.carryOut([]laneCmd{cmd})
}

// queued is how many commands wait in the lanes, for stats.
func (l *lanes) queued() int {
	if !l.started.Load() {
		return 0
	}
	n := 0
	for _, ch := range l.chs {
		n += len(ch)
	}
	return n
}

// laneBusy reports whether c's lane is more than half full: the poller
// then leaves c to a worker, which may wait for room, rather than wait
// itself and stop reading every other client.
func (h *Hub) laneBusy(c *Conn) bool {
	l := &h.lanes
	return l.started.Load() && len(l.chs[c.pollID%laneCount]) > laneSize/2
}

func (h *Hub) startLanes() {
	l := &h.lanes
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.stop = make(chan struct{})
	for i := range l.chs {
		ch, ended := make(chan laneCmd, laneSize), make(chan struct{})
		l.chs[i], l.ended[i] = ch, ended
		h.routines.goFn("lane", func() {
			defer close(ended)
			h.runLane(ch, l.stop)
		})
	}
	l.started.Store(true) // after chs: laneBusy reads them without the lock
}

// closeLanes lets the lanes carry out what they hold and end, waiting for
// them up to within; commands from then on run at once. Hub.Close calls it
// before it closes the broker.
func (h *Hub) closeLanes(within time.Duration) {
	l := &h.lanes
	l.mu.Lock()
	l.closed = true
	if l.stop != nil {
		close(l.stop)
	}
	l.mu.Unlock()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for _, ended := range l.ended {
		if ended == nil {
			continue
		}
		select {
		case <-ended:
		case <-deadline.C:
			return
		}
	}
}

// runLane carries out a lane's commands in order until the lanes close,
// then what is left; publishes that follow one another in one batch.
func (h *Hub) runLane(ch <-chan laneCmd, stop <-chan struct{}) {
	DrainBatches(ch, stop, laneBatch, func(cmds []laneCmd) {
		for len(cmds) > 0 {
			n := 1
			for cmds[0].fn == nil && n < len(cmds) && cmds[n].fn == nil {
				n++
			}
			h.carryOut(cmds[:n])
			cmds = cmds[n:]
		}
	})
}

// carryOut runs one command, or a run of publishes, through the hub's
// broker; a panic in it is logged and the lane goes on.
func (h *Hub) carryOut(cmds []laneCmd) {
	defer func() {
		if v := recover(); v != nil {
			h.routines.logPanic("lane", v)
		}
	}()
	if cmds[0].fn != nil {
		cmds[0].fn()
		return
	}
	batch := make([]QueuedPush, len(cmds))
	for i, cmd := range cmds {
		batch[i] = cmd.push
	}
	_, err := withBroker(h, func(b Broker) (struct{}, error) {
		if bp, ok := b.(BatchPublisher); ok {
			return struct{}{}, bp.PublishBatch(batch)
		}
		for _, q := range batch { // a broker that never stops: the in-process one
			r, err := b.Publish(context.Background(), q.Publication)
			q.Done(r, err)
		}
		return struct{}{}, nil
	})
	if err != nil { // stopped, and nothing in its place: the hub is closing
		for _, q := range batch {
			q.Done(Receipt{}, err)
		}
	}
}

// DrainBatches hands handle what comes on ch, as many items at once as are
// queued (at most max), until stop is closed; then what is still queued.
// The lanes and the cluster broker's senders run on it.
func DrainBatches[T any](ch <-chan T, stop <-chan struct{}, max int, handle func([]T)) {
	for {
		batch, ok := takeBatch(ch, stop, max)
		if len(batch) > 0 {
			handle(batch)
		}
		if !ok {
			return
		}
	}
}

// takeBatch waits for the first item on ch and takes those queued behind
// it, at most max. Once stop is closed, it takes all that is still queued,
// without waiting, and reports false.
func takeBatch[T any](ch <-chan T, stop <-chan struct{}, max int) ([]T, bool) {
	var batch []T
	select {
	case v := <-ch:
		batch = append(batch, v)
	case <-stop:
		for {
			select {
			case v := <-ch:
				batch = append(batch, v)
			default:
				return batch, false
			}
		}
	}
	for len(batch) < max {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch, true
		}
	}
	return batch, true
}
