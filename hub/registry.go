package hub

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The registry: this node's uids and their connections.

type uidShard struct {
	mu sync.RWMutex
	m  map[string]*uidEntry
}

// uidEntry is one uid that is online on this node, or offline with history
// kept. Its mutex orders numbering, history and queueing, so every
// connection of the uid receives messages in sequence order.
type uidEntry struct {
	mu        sync.Mutex
	seq       uint64 // the last message's sequence number
	epoch     uint64 // the numbering's identity (in-process numbering)
	conns     []*Conn
	hist      history
	offlineAt int64               // unix nanoseconds the last connection left
	groups    map[string]struct{} // guarded by the uid's shard lock
}

// newEntry starts a uid's numbering: a new epoch, offsets from 1.
func newEntry() *uidEntry { return &uidEntry{epoch: rand.Uint64()} }

func (e *uidEntry) online() bool { return len(e.conns) > 0 }

// position is the entry's current position; e.mu is held.
func (e *uidEntry) position() Position {
	return Position{Epoch: strconv.FormatUint(e.epoch, 36), Offset: e.seq}
}

// catchup holds what is pushed to a connection while its login waits for
// the broker's recovery, so that replayed and live messages reach it in
// order, each once. Guarded by the uid entry's mutex.
type catchup struct {
	frames []caughtFrame
}

type caughtFrame struct {
	seq  uint64
	wire []byte
}

// register binds a connection to its uid and queues its welcome. A client
// of a resuming protocol, with history on, first gets the uid's position
// and what it missed from the broker (the broker may have to ask a store
// elsewhere): meanwhile pushes to the uid are held for it, and then queued
// after the replay, without duplicates.
func (h *Hub) register(c *Conn, uid string, since *Position) error {
	st := h.settings.Load()
	recover := c.proto.Resumes() && st.HistorySize > 0
	var noHistory *Resume
	if since != nil && c.proto.Resumes() && !recover {
		noHistory = &Resume{Since: since.Offset, Reason: ReasonHistoryOff}
	}
	first, err := h.bind(c, uid, recover, noHistory)
	if err != nil {
		return err
	}
	if first {
		h.Broker().Attached(uid)
	}
	if !recover {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	rec, rerr := h.Broker().Recover(ctx, uid, since)
	cancel()
	if rerr != nil {
		h.logger().Warn("the broker could not tell a logging-in uid's position",
			zap.String("uid", uid), zap.Error(rerr))
		rec = Recovery{}
		if since != nil {
			rec.Resume = &Resume{Since: since.Offset, Reason: ReasonStoreUnavailable}
		}
	}
	h.caughtUp(c, uid, rec, rerr == nil)
	return nil
}

// recoverTimeout bounds a login's wait for the broker's recovery.
const recoverTimeout = 5 * time.Second

// bind adds c to uid's entry. Without recovery it queues the welcome (with
// resume, if set) under the entry's lock; with it, c holds what comes
// meanwhile (catchup). first tells whether c is the uid's first connection
// on this node.
func (h *Hub) bind(c *Conn, uid string, recover bool, resume *Resume) (first bool, err error) {
	if h.closed.Load() {
		return false, ErrHubClosed
	}
	s := h.uidShard(uid)
	s.mu.Lock()
	if h.closed.Load() { // again under the lock: Close collects connections under it
		s.mu.Unlock()
		return false, ErrHubClosed
	}
	e := s.m[uid]
	// Every change to e.conns holds the shard's lock: its length is stable here.
	if e != nil && len(e.conns) >= c.settings().MaxConnectionsPerUID {
		s.mu.Unlock()
		return false, errTooManyConn
	}
	if e == nil {
		e = newEntry()
		s.m[uid] = e
	} else if !e.online() {
		h.kept.Add(-1) // an offline uid kept for history is back
	}
	e.mu.Lock()
	first = !e.online()
	c.uid = uid
	c.loggedIn.Store(true)
	if recover {
		c.catchup = &catchup{}
	} else {
		c.enqueueAll(c.welcome(e.position(), resume, false), nil)
	}
	e.conns = append(e.conns, c)
	e.mu.Unlock()
	s.mu.Unlock()

	h.pendingMu.Lock()
	delete(h.pending, c)
	h.pendingMu.Unlock()
	h.connections.Add(1)
	return first, nil
}

// caughtUp queues the welcome, the replay and what was held meanwhile, and
// makes c a live connection of uid. Without a recovery (ok false) the
// welcome carries the position this node last saw.
func (h *Hub) caughtUp(c *Conn, uid string, rec Recovery, ok bool) {
	s := h.uidShard(uid)
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.m[uid]
	if e == nil {
		return // torn down meanwhile
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.Contains(e.conns, c) {
		return // torn down meanwhile
	}
	held := c.catchup
	c.catchup = nil
	pos := rec.Position
	if !ok {
		pos = Position{Offset: e.seq}
	}
	replayed := make(map[uint64]struct{}, len(rec.Messages))
	frames := make([][]byte, 0, len(rec.Messages)+len(held.frames))
	for _, m := range rec.Messages {
		replayed[m.Seq] = struct{}{}
		frames = append(frames, c.proto.Message(m.Message).Frame(m.Seq))
	}
	for _, f := range held.frames {
		if _, dup := replayed[f.seq]; !dup {
			frames = append(frames, f.wire)
		}
	}
	h.framesOut.Add(uint64(len(rec.Messages)))
	c.enqueueAll(c.welcome(pos, rec.Resume, true), frames)
}

// remove takes a connection off the hub. With its last connection the uid
// leaves its groups on this node, and goes away unless history keeps it for
// resume.
func (h *Hub) remove(c *Conn) {
	if !c.loggedIn.Load() {
		h.pendingMu.Lock()
		delete(h.pending, c)
		h.pendingMu.Unlock()
		return
	}
	keep := h.settings.Load().HistorySize > 0
	s := h.uidShard(c.uid)
	s.mu.Lock()
	e := s.m[c.uid]
	if e == nil {
		s.mu.Unlock()
		return
	}
	e.mu.Lock()
	i := slices.Index(e.conns, c)
	if i < 0 {
		e.mu.Unlock()
		s.mu.Unlock()
		return
	}
	e.conns = slices.Delete(e.conns, i, i+1)
	c.catchup = nil
	last := len(e.conns) == 0
	if last {
		e.offlineAt = time.Now().UnixNano()
		if !keep {
			h.forget(e)
		}
	}
	e.mu.Unlock()
	if last {
		if keep {
			h.kept.Add(1)
		} else {
			delete(s.m, c.uid)
		}
		// Under the uid's lock, as Join adds, so the two never disagree.
		for g := range e.groups {
			h.dropMember(g, c.uid)
		}
		e.groups = nil
	}
	s.mu.Unlock()
	h.connections.Add(-1)
	if last {
		h.Broker().Detached(c.uid)
	}
}

// Online returns how many connections uid holds on this node.
func (l Local) Online(uid string) int {
	s := l.h.uidShard(uid)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.m[uid]; e != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.conns)
	}
	return 0
}

// UIDs lists this node's online uids in byte order, after the uid `after`,
// at most limit of them; with group set, only that group's members. more
// tells whether uids remain past the page.
func (l Local) UIDs(group, after string, limit int) (uids []string, more bool) {
	h := l.h
	var all []string
	if group != "" {
		all = h.members(group)
	} else {
		for i := range h.uids {
			s := &h.uids[i]
			s.mu.RLock()
			for uid, e := range s.m {
				if uid > after && e.online() {
					all = append(all, uid)
				}
			}
			s.mu.RUnlock()
		}
	}
	all = slices.DeleteFunc(all, func(u string) bool { return u <= after })
	slices.Sort(all)
	if limit > 0 && len(all) > limit {
		return all[:limit], true
	}
	return all, false
}

// EachUID calls fn for every uid online on this node (a broker that lost
// its store announces them again).
func (l Local) EachUID(fn func(uid string)) {
	for i := range l.h.uids {
		s := &l.h.uids[i]
		s.mu.RLock()
		uids := make([]string, 0, len(s.m))
		for uid, e := range s.m {
			if e.online() {
				uids = append(uids, uid)
			}
		}
		s.mu.RUnlock()
		for _, uid := range uids {
			fn(uid)
		}
	}
}

// Kick closes every connection of uid on this node, after what is already
// queued to it has been written, with close code 4005 and reason. It
// returns how many connections it closed.
func (l Local) Kick(uid, reason string) int {
	s := l.h.uidShard(uid)
	s.mu.RLock()
	var conns []*Conn
	if e := s.m[uid]; e != nil {
		e.mu.Lock()
		conns = slices.Clone(e.conns)
		e.mu.Unlock()
	}
	s.mu.RUnlock()
	for _, c := range conns {
		if f, ok := c.proto.Error(nil, &Error{Code: "kicked", Message: reason}); ok {
			c.enqueue(f)
		}
		c.closeAfterFlush(CloseKicked, closeReason(reason), c.settings().WriteTimeout)
	}
	return len(conns)
}

// hold keeps a frame pushed to c while it catches up; the uid entry's lock
// is held. A connection that would hold more than send_queue frames is cut
// off as a slow consumer.
func (c *Conn) hold(seq uint64, wire []byte) bool {
	if len(c.catchup.frames) >= c.settings().SendQueue {
		c.cutOff()
		return false
	}
	c.catchup.frames = append(c.catchup.frames, caughtFrame{seq, wire})
	return true
}
