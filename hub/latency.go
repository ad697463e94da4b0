package hub

import (
	"sync/atomic"
	"time"
)

// Push-to-write latency: from the moment this node took a push (from the
// API, a publishing client, or another node of its cluster) to the moment a
// connection's socket took its frame, once per copy. A frame that waits in
// a slow reader's queue shows here; one held during a login's catch-up
// does not count.

// LatencyBounds are the histogram's upper bounds; a last bucket takes the
// rest.
var LatencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram is a snapshot of latencies: Counts[i] were at most
// LatencyBounds[i] and over the bound before it; the last count is over
// every bound.
type Histogram struct {
	Counts []uint64
	Sum    time.Duration
}

// Count is how many latencies the histogram holds.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

type latencyHistogram struct {
	counts [len(LatencyBounds) + 1]atomic.Uint64
	sum    atomic.Int64
}

// observeSince records the latency of a frame whose push was taken at
// unix nanoseconds at; 0 means the frame was no push.
func (l *latencyHistogram) observeSince(at int64) {
	if at == 0 {
		return
	}
	d := time.Duration(time.Now().UnixNano() - at)
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sum.Add(int64(d))
}

func (l *latencyHistogram) snapshot() Histogram {
	h := Histogram{Counts: make([]uint64, len(l.counts)), Sum: time.Duration(l.sum.Load())}
	for i := range l.counts {
		h.Counts[i] = l.counts[i].Load()
	}
	return h
}
