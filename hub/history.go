package hub

import "time"

// History: the in-process store of each uid's last messages, for clients
// that resume and for uids that are offline. A cluster broker keeps history
// in its own store instead.

// storedMsg is one message kept for resume.
type storedMsg struct {
	StoredMessage
	at   int64 // unix nanoseconds
	size int64
	acct *StoreAccount // the client whose publish stored it for an offline uid, or nil
}

// storedOverhead is what one stored message costs beyond its data (the
// slot, the message and its strings' headers), for the history budget.
const storedOverhead = 160

// entryOverhead is what an offline uid kept for its history costs beyond
// its name (the map slot, the entry, its mutex and slices), for the budget.
const entryOverhead = 256

// entryCost is what keeping uid's entry costs the history budget.
func entryCost(uid string) int64 { return entryOverhead + int64(len(uid)) }

// charge counts an offline uid's entry in the history budget; e.mu is held.
func (h *Hub) charge(e *uidEntry, uid string) {
	if e.charged == 0 {
		e.charged = entryCost(uid)
		h.histBytes.Add(e.charged)
	}
}

// uncharge takes an entry out of the history budget: its uid is online
// again, or the entry goes away; e.mu is held.
func (h *Hub) uncharge(e *uidEntry) {
	h.histBytes.Add(-e.charged)
	e.charged = 0
}

// history is a uid's replay buffer, oldest first, guarded by the uid
// entry's mutex. Evicted slots are zeroed so their messages can be freed.
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
// their slots so their messages can be freed.
func (hs *history) dropOldest(drop func(*storedMsg) bool) (freed int64, dropped int) {
	for hs.len() > 0 && drop(&hs.msgs[hs.start]) {
		m := &hs.msgs[hs.start]
		freed += m.size
		if m.acct != nil {
			m.acct.bytes.Add(-m.size)
		}
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

// storedSize is what storing m costs the history budget.
func storedSize(m *Message) int64 {
	return int64(len(m.Data)+len(m.From)+len(m.Group)) + storedOverhead
}

// store keeps m in e's history unless the hub's budget is spent or, for an
// offline uid, the publishing client's (acct); e.mu is held.
func (h *Hub) store(e *uidEntry, m StoredMessage, st *Settings, acct *StoreAccount) bool {
	size := storedSize(m.Message)
	if h.histBytes.Load()+size > st.HistoryMaxBytes {
		return false
	}
	if e.online() {
		acct = nil // history for resume, bounded per uid
	}
	if acct != nil {
		if acct.bytes.Add(size) > acct.max.Load() {
			acct.bytes.Add(-size)
			return false
		}
	}
	freed, evicted := e.hist.push(storedMsg{StoredMessage: m, at: time.Now().UnixNano(), size: size, acct: acct}, st.HistorySize)
	h.histBytes.Add(size - freed)
	h.histMessages.Add(1 - int64(evicted))
	return true
}

// forget releases an entry's history from the hub's budget; e.mu is held.
func (h *Hub) forget(e *uidEntry) {
	freed, n := e.hist.clear()
	h.histBytes.Add(-freed)
	h.histMessages.Add(-int64(n))
}

// Recover returns uid's position on this node and what a client that has
// seen since missed, from this node's history. Without since, it is the
// uid's mailbox: what was stored while the uid had no connection, unless a
// login without since has taken it already.
func (l Local) Recover(uid string, since *Position) Recovery {
	h := l.h
	st := h.settings.Load()
	s := h.uidShard(uid)
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.m[uid]
	if e == nil {
		e = &uidEntry{} // gone meanwhile: nothing to replay
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec := Recovery{Position: e.position()}
	if since == nil && e.mailbox {
		e.mailbox = false
		if e.seq > e.offSeq {
			since = &Position{Epoch: rec.Position.Epoch, Offset: e.offSeq}
		}
	}
	if since != nil {
		var r Resume
		rec.Messages, r = e.replay(*since, rec.Position, st, time.Now())
		rec.Resume = &r
	}
	return rec
}

// replay collects what a client that has seen since missed. Messages are
// numbered without gaps within an epoch, so the gap is filled exactly when
// the stored messages after since run up to the current position. A client
// from another epoch gets what the current one holds, and is told its gap
// could not be filled.
func (e *uidEntry) replay(since, now Position, s *Settings, t time.Time) ([]StoredMessage, Resume) {
	if s.HistorySize == 0 {
		return nil, Resume{Since: since.Offset, Reason: ReasonHistoryOff}
	}
	from := since.Offset
	if since.Epoch != "" && since.Epoch != now.Epoch {
		from = 0
	} else if from >= now.Offset {
		return nil, *NewResume(since, now, 0)
	}
	cutoff := t.Add(-s.HistoryTTL).UnixNano()
	var msgs []StoredMessage
	for _, m := range e.hist.msgs[e.hist.start:] {
		if m.Seq > from && m.at >= cutoff {
			msgs = append(msgs, m.StoredMessage)
		}
	}
	return msgs, *NewResume(since, now, len(msgs))
}

// NewResume tells a client that has seen since, at a uid's position now,
// how its gap was filled by the replayed messages that follow since (all
// of the current epoch's, when since is of another).
func NewResume(since, now Position, replayed int) *Resume {
	r := &Resume{Since: since.Offset, Replayed: replayed}
	switch {
	case since.Epoch != "" && since.Epoch != now.Epoch:
		r.Reason = ReasonEpochChanged
	case since.Offset == now.Offset:
		r.Recovered = true
	case since.Offset > now.Offset:
		r.Reason, r.Replayed = ReasonUnknownPosition, 0
	case uint64(replayed) == now.Offset-since.Offset:
		r.Recovered = true
	default:
		r.Reason = ReasonTooOld
	}
	return r
}
