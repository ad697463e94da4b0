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
	charged   int64               // what the entry itself costs the history budget while offline
	offSeq    uint64              // seq when the uid last went offline: its mailbox is what came after
	mailbox   bool                // messages stored while offline wait for the next login without since
	groups    map[string]struct{} // guarded by the uid's shard lock
}

// newEntry starts a uid's numbering: a new epoch, offsets from 1.
func newEntry() *uidEntry { return &uidEntry{epoch: rand.Uint64()} }

func (e *uidEntry) online() bool { return len(e.conns) > 0 }

// position is the entry's current position; e.mu is held.
func (e *uidEntry) position() Position {
	return Position{Epoch: strconv.FormatUint(e.epoch, 36), Offset: e.seq}
}

// catchup holds what is pushed to a connection while its login is not
// done (the broker is told of the uid and asked for its position and what
// the client missed), so that replayed and live messages reach it in order,
// each once. Guarded by the uid entry's mutex, like Conn.catchingUp.
type catchup struct {
	frames []caughtFrame
}

type caughtFrame struct {
	seq  uint64
	wire []byte
}

// loginTimeout bounds a login's wait for the broker.
const loginTimeout = 5 * time.Second

// register binds a connection to its uid and queues its welcome. The
// connection first holds what is pushed to it (catchup) while the broker is
// told of the uid (Attached, for its first connection on this node) and,
// for a protocol that resumes with history on, asked for the uid's position
// and what the client missed; then the welcome, the replay and what was held
// are queued in order, without duplicates.
func (h *Hub) register(c *Conn, uid string, since *Position, groups []string) error {
	first, err := h.bind(c, uid)
	if err != nil {
		return err
	}
	b := h.Broker()
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	if first {
		if err := b.Attached(ctx, uid); err != nil {
			// The connection is served here all the same; the broker
			// announces it again once it can.
			h.logger().Debug("the broker could not announce a uid", zap.String("uid", uid), zap.Error(err))
		}
	} else {
		b.Changed(uid)
	}
	// Groups the login hook named, joined before the welcome: what is sent
	// to them from now on reaches the connection.
	for _, g := range groups {
		if err := h.Join(ctx, uid, g); err != nil {
			h.logger().Warn("could not join a group the login hook named", zap.String("uid", uid),
				zap.String("group", g), zap.Error(err))
		}
	}
	history := h.settings.Load().HistorySize > 0
	switch {
	case !c.proto.Resumes():
		h.caughtUp(c, uid, nil, nil, false)
	case !history:
		var r *Resume
		if since != nil {
			r = &Resume{Since: since.Offset, Reason: ReasonHistoryOff}
		}
		h.caughtUp(c, uid, nil, &Recovery{Resume: r}, false)
	default:
		rec, err := b.Recover(ctx, uid, since)
		if err != nil {
			h.logger().Warn("the broker could not tell a logging-in uid's position",
				zap.String("uid", uid), zap.Error(err))
			rec = Recovery{}
			if since != nil {
				rec.Resume = &Resume{Since: since.Offset, Reason: ReasonStoreUnavailable}
			}
			h.caughtUp(c, uid, nil, &rec, true)
			return nil
		}
		h.caughtUp(c, uid, &rec.Position, &rec, true)
	}
	return nil
}

// bind adds c to uid's entry, holding what is pushed to it until caughtUp.
// first tells whether c is the uid's first connection on this node.
func (h *Hub) bind(c *Conn, uid string) (first bool, err error) {
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
	h.uncharge(e)
	c.uid = uid
	c.loggedIn.Store(true)
	c.catchingUp = true
	c.boundAt = h.binds.Add(1)
	e.conns = append(e.conns, c)
	e.mu.Unlock()
	s.mu.Unlock()

	h.pendingMu.Lock()
	delete(h.pending, c)
	h.pendingMu.Unlock()
	h.connections.Add(1)
	return first, nil
}

// caughtUp queues the welcome at pos (nil: this node's own numbering), the
// replay of rec and what was held meanwhile, and makes c a live connection
// of uid.
func (h *Hub) caughtUp(c *Conn, uid string, pos *Position, rec *Recovery, history bool) {
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
	c.catchingUp, c.catchup = false, nil
	at := e.position()
	if pos != nil {
		at = *pos
	}
	var frames [][]byte
	var resume *Resume
	if rec != nil {
		resume = rec.Resume
		replayed := make(map[uint64]struct{}, len(rec.Messages))
		for _, m := range rec.Messages {
			replayed[m.Seq] = struct{}{}
			frames = append(frames, c.proto.Message(m.Message).Frame(m.Seq))
		}
		h.framesOut.Add(uint64(len(rec.Messages)))
		if held != nil {
			for _, f := range held.frames {
				if _, dup := replayed[f.seq]; !dup {
					frames = append(frames, f.wire)
				}
			}
		}
	} else if held != nil {
		for _, f := range held.frames {
			frames = append(frames, f.wire)
		}
	}
	c.enqueueAll(c.welcome(at, resume, history), frames)
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
	keep := h.localHistory.Load() && h.settings.Load().HistorySize > 0
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
	c.catchingUp, c.catchup = false, nil
	last := len(e.conns) == 0
	if last {
		e.offlineAt = time.Now().UnixNano()
		if keep {
			h.charge(e, c.uid)
			e.offSeq, e.mailbox = e.seq, true
		} else {
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
	h.Broker().Changed(c.uid)
}

// Online returns how many connections uid holds on this node.
func (l Local) Online(uid string) (n int) {
	l.h.withEntry(uid, func(e *uidEntry) { n = len(e.conns) })
	return n
}

// withEntry runs fn with uid's entry locked, if there is one.
func (h *Hub) withEntry(uid string, fn func(e *uidEntry)) {
	s := h.uidShard(uid)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.m[uid]; e != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		fn(e)
	}
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
	if c.catchup == nil {
		c.catchup = &catchup{}
	}
	if len(c.catchup.frames) >= c.settings().SendQueue {
		c.cutOff()
		return false
	}
	c.catchup.frames = append(c.catchup.frames, caughtFrame{seq, wire})
	return true
}

// Seq returns the sequence number of the last message this node queued to
// uid, 0 when it holds no entry for it.
func (l Local) Seq(uid string) (seq uint64) {
	l.h.withEntry(uid, func(e *uidEntry) { seq = e.seq })
	return seq
}
