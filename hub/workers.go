package hub

import "time"

// workers run the hot work of connections (a writer draining a queue, a
// reader of a socket that turned readable) on goroutines that are kept
// for a while and reused, instead of a new goroutine each time: a broadcast
// over TLS starts a writer per connection, and a busy client wakes its
// reader for every frame. A job goes to an idle worker, or to a new one
// when none is idle, so a job that blocks (a login asking the application
// or Redis) never holds up another; a worker idle for workerIdle exits.
type workers struct {
	jobs chan job // unbuffered: a send succeeds only when a worker waits
}

// workerIdle is how long an idle worker waits for the next job.
const workerIdle = 10 * time.Second

// job is one piece of a connection's work.
type job struct {
	c     *Conn
	write bool // drain its queue; else read its socket
}

// run hands j to an idle worker, or to a new one.
func (h *Hub) run(j job) {
	select {
	case h.workers.jobs <- j:
	default:
		h.routines.add()
		go h.worker(j)
	}
}

// worker runs jobs until it has been idle for workerIdle or the hub
// closes. It is one of the hub's goroutines.
func (h *Hub) worker(j job) {
	defer h.routines.done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		j.c.do(j)
		idle.Reset(workerIdle)
		select {
		case j = <-h.workers.jobs:
		case <-idle.C:
			return
		case <-h.done:
			return
		}
	}
}

// do runs one job of c's, recovering a panic in it: it is logged and c
// closes; the worker goes on.
func (c *Conn) do(j job) {
	if j.write {
		defer c.recoverPanic("writer")
		c.writeLoop()
		return
	}
	defer c.recoverPanic("reader")
	c.readReady()
}
