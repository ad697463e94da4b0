package hub

import "time"

// storedMsg is one message kept for resume: its json frame, ready to write.
type storedMsg struct {
	seq   uint64
	at    int64 // unix nanoseconds
	frame []byte
	size  int64
}

// storedOverhead is what one stored message costs beyond its frame bytes
// (the slot, the prepared message and its frame cache), used for the
// hub's history budget.
const storedOverhead = 160

// history is a uid's replay buffer, oldest first, guarded by the uid
// entry's mutex. Evicted slots are zeroed so their frames can be freed.
type history struct {
	msgs  []storedMsg
	start int
}

func (hs *history) len() int { return len(hs.msgs) - hs.start }

// push appends m and evicts the oldest beyond capacity; it returns the
// bytes freed by eviction.
func (hs *history) push(m storedMsg, capacity int) (freed int64, evicted int) {
	hs.msgs = append(hs.msgs, m)
	return hs.dropOldest(func(*storedMsg) bool { return hs.len() > capacity })
}

// expire drops messages stored before cutoff.
func (hs *history) expire(cutoff int64) (freed int64, expired int) {
	return hs.dropOldest(func(m *storedMsg) bool { return m.at < cutoff })
}

// dropOldest drops messages from the oldest on while drop says so, zeroing
// their slots so their frames can be freed.
func (hs *history) dropOldest(drop func(*storedMsg) bool) (freed int64, dropped int) {
	for hs.len() > 0 && drop(&hs.msgs[hs.start]) {
		freed += hs.msgs[hs.start].size
		dropped++
		hs.msgs[hs.start] = storedMsg{}
		hs.start++
	}
	hs.compact()
	return freed, dropped
}

// clear drops everything.
func (hs *history) clear() (freed int64, count int) { return hs.expire(1<<63 - 1) }

// compact reclaims the evicted prefix once it is the larger part.
func (hs *history) compact() {
	if hs.start == 0 {
		return
	}
	if hs.len() == 0 {
		hs.msgs, hs.start = nil, 0
		return
	}
	if hs.start >= 16 && hs.start*2 >= len(hs.msgs) {
		n := copy(hs.msgs, hs.msgs[hs.start:])
		clear(hs.msgs[n:])
		hs.msgs, hs.start = hs.msgs[:n], 0
	}
}

// Resume describes, in the welcome frame, how a reconnecting client's gap
// was filled.
type Resume struct {
	// Since is the last sequence number the client said it had.
	Since uint64 `json:"since"`
	// Recovered is true when every message after Since was replayed: the
	// client missed nothing.
	Recovered bool `json:"recovered"`
	// Replayed counts the messages queued after the welcome frame.
	Replayed int `json:"replayed"`
	// Reason says why the gap could not be filled: "history_off",
	// "too_old" (expired or evicted), or "unknown_position" (Since is
	// ahead of the uid's sequence: it belongs to an earlier, expired
	// numbering).
	Reason string `json:"reason,omitempty"`
}

// replay collects what a client that has seen since missed. Messages are
// numbered without gaps, so the gap is filled exactly when the stored
// messages after since run up to the current sequence.
func (e *uidEntry) replay(since uint64, s *Settings, now time.Time) ([][]byte, Resume) {
	r := Resume{Since: since}
	switch {
	case since == e.seq:
		r.Recovered = true
		return nil, r
	case s.HistorySize == 0:
		r.Reason = "history_off"
		return nil, r
	case since > e.seq:
		r.Reason = "unknown_position"
		return nil, r
	}
	cutoff := now.Add(-s.HistoryTTL).UnixNano()
	var frames [][]byte
	for _, m := range e.hist.msgs[e.hist.start:] {
		if m.seq > since && m.at >= cutoff {
			frames = append(frames, m.frame)
		}
	}
	r.Replayed = len(frames)
	r.Recovered = uint64(len(frames)) == e.seq-since
	if !r.Recovered {
		r.Reason = "too_old"
	}
	return frames, r
}
