package main

import (
	"errors"
	"sync/atomic"
	"time"
)

// tracker accounts for the messages of one measured run: how many arrived,
// how long each took, and for fan-outs when the last copy of each push came.
type tracker struct {
	received atomic.Int64
	latency  histogram
	pushes   []pushSlot // fan-out runs only; indexed by the payload's id
}

// pushSlot follows one fan-out push: its copies received and the arrival of
// the latest, in unix nanoseconds.
type pushSlot struct {
	count atomic.Int64
	last  atomic.Int64
}

// trackerTags are the characters of payload tags: ASCII letters and digits,
// which travel unescaped in JSON and in the text protocol.
const trackerTags = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// runTag names a measured run in its payloads: two of trackerTags.
type runTag [2]byte

// maxRuns is how many runs one invocation can tell apart.
const maxRuns = len(trackerTags) * len(trackerTags)

// tagIndex maps a character of trackerTags to its position, others to -1.
var tagIndex = func() (ix [256]int16) {
	for i := range ix {
		ix[i] = -1
	}
	for i := range len(trackerTags) {
		ix[trackerTags[i]] = int16(i)
	}
	return ix
}()

// slot is the tracker index of a tag, or -1.
func (t runTag) slot() int {
	a, b := tagIndex[t[0]], tagIndex[t[1]]
	if a < 0 || b < 0 {
		return -1
	}
	return int(a)*len(trackerTags) + int(b)
}

// trackers hands out a tag per run and routes received frames to the run's
// tracker.
type trackers struct {
	next  atomic.Int32
	byTag [maxRuns]atomic.Pointer[tracker]
	// stray counts payloads whose tag names no run; other counts frames
	// without a payload (pongs to nothing, welcome frames, errors).
	stray atomic.Int64
	other atomic.Int64
}

var errNoTags = errors.New("out of payload tags: too many measured runs in one invocation")

// start opens a run with pushes fan-out slots (0 for a unicast run).
func (ts *trackers) start(pushes int) (runTag, *tracker, error) {
	i := int(ts.next.Add(1) - 1)
	if i >= maxRuns {
		return runTag{}, nil, errNoTags
	}
	tag := runTag{trackerTags[i/len(trackerTags)], trackerTags[i%len(trackerTags)]}
	t := &tracker{pushes: make([]pushSlot, pushes)}
	ts.byTag[i].Store(t)
	return tag, t, nil
}

// deliver accounts for one received frame; now is its arrival time. It does
// not allocate.
func (ts *trackers) deliver(frame []byte, now int64) {
	tag, id, sent, ok := parsePayload(frame)
	if !ok {
		ts.other.Add(1)
		return
	}
	i := tag.slot()
	if i < 0 {
		ts.stray.Add(1)
		return
	}
	t := ts.byTag[i].Load()
	if t == nil {
		ts.stray.Add(1)
		return
	}
	t.received.Add(1)
	t.latency.record(time.Duration(now - sent))
	if id < uint64(len(t.pushes)) {
		p := &t.pushes[id]
		p.count.Add(1)
		for {
			last := p.last.Load()
			if now <= last || p.last.CompareAndSwap(last, now) {
				break
			}
		}
	}
}

// waitReceived waits until t has received want messages, or nothing has
// arrived for quiet, or max has passed, and returns what it received.
func waitReceived(t *tracker, want int64, quiet, max time.Duration) int64 {
	deadline := time.Now().Add(max)
	last, lastChange := t.received.Load(), time.Now()
	for {
		got := t.received.Load()
		if got >= want {
			return got
		}
		now := time.Now()
		if got != last {
			last, lastChange = got, now
		}
		if now.Sub(lastChange) >= quiet || now.After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}
