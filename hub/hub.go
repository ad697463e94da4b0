// Package hub is caddy-pushhub's engine: connections bound to uids, groups of
// uids, and fan-out of pushes to one uid, many, a group or everyone. It knows
// nothing of Caddy; the Caddy modules feed it upgraded WebSockets and calls
// from the push API.
package hub

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

// shardCount spreads uids and groups over independently locked maps so that
// fan-out and logins on both cores do not contend on one lock.
const shardCount = 64

// Hub holds the connections of one named hub.
type Hub struct {
	name     string
	log      atomic.Pointer[zap.Logger]
	settings atomic.Pointer[Settings]
	seed     maphash.Seed

	uids   [shardCount]uidShard
	groups [shardCount]groupShard

	endpointsMu sync.Mutex
	endpoints   map[string]*Endpoint

	pendingMu sync.Mutex
	pending   map[*Conn]struct{} // connections that have not logged in

	closed     atomic.Bool
	done       chan struct{} // closed by Close: stops the reaper
	nextConnID atomic.Uint64
	live       atomic.Int64 // connections not yet torn down, pending or not
	poller     *poller

	histBytes    atomic.Int64
	histMessages atomic.Int64
	kept         atomic.Int64 // offline uids kept for history

	connections   atomic.Int64 // logged-in connections
	framesIn      atomic.Uint64
	framesOut     atomic.Uint64
	pushes        atomic.Uint64
	slowConsumers atomic.Uint64
}

type uidShard struct {
	mu sync.RWMutex
	m  map[string]*uidEntry
}

// uidEntry is one uid that is online, or offline with history kept. Its
// mutex orders sequence numbers, history and queueing, so every connection
// of the uid receives messages in sequence order.
type uidEntry struct {
	mu        sync.Mutex
	seq       uint64
	conns     []*Conn
	hist      history
	offlineAt int64               // unix nanoseconds the last connection left
	groups    map[string]struct{} // guarded by the uid's shard lock
}

// newEntry starts a uid's numbering. With history on it starts at the
// current time in microseconds, so numbers never go back when an expired
// uid comes back: a client resuming from an older numbering is told so
// instead of being given the wrong messages.
func newEntry(s *Settings) *uidEntry {
	e := &uidEntry{}
	if s.HistorySize > 0 {
		e.seq = uint64(time.Now().UnixMicro())
	}
	return e
}

type groupShard struct {
	mu sync.RWMutex
	m  map[string]map[string]struct{} // group -> member uids
}

// New makes an empty hub. Zero fields of s take DefaultSettings.
func New(name string, s Settings, log *zap.Logger) *Hub {
	if log == nil {
		log = zap.NewNop()
	}
	h := &Hub{name: name, seed: maphash.MakeSeed(), pending: make(map[*Conn]struct{}), done: make(chan struct{})}
	h.log.Store(log)
	for i := range h.uids {
		h.uids[i].m = make(map[string]*uidEntry)
		h.groups[i].m = make(map[string]map[string]struct{})
	}
	h.Configure(s)
	h.poller = newPoller(h)
	go h.reap()
	return h
}

// Name is the hub's name.
func (h *Hub) Name() string { return h.name }

// Configure replaces the hub's settings; zero fields take DefaultSettings.
func (h *Hub) Configure(s Settings) {
	s = s.withDefaults()
	h.settings.Store(&s)
}

// Settings returns the hub's current settings.
func (h *Hub) Settings() Settings { return *h.settings.Load() }

// SetLogger replaces the hub's logger (a reload brings a new one).
func (h *Hub) SetLogger(log *zap.Logger) {
	if log != nil {
		h.log.Store(log)
	}
}

func (h *Hub) logger() *zap.Logger { return h.log.Load() }

func (h *Hub) uidShard(uid string) *uidShard {
	return &h.uids[maphash.String(h.seed, uid)%shardCount]
}

func (h *Hub) groupShard(g string) *groupShard {
	return &h.groups[maphash.String(h.seed, g)%shardCount]
}

// register binds a connection to its uid. Under the uid's lock it queues
// the welcome frame and, for a resuming client, the messages it missed, so
// nothing sent to the uid meanwhile comes before them, twice, or not at all.
func (h *Hub) register(c *Conn, uid string, since *uint64, welcome func(seq uint64, r *Resume) outFrame) error {
	if h.closed.Load() {
		return ErrHubClosed
	}
	st := h.settings.Load()
	s := h.uidShard(uid)
	s.mu.Lock()
	if h.closed.Load() { // again under the lock: Close collects connections under it
		s.mu.Unlock()
		return ErrHubClosed
	}
	e := s.m[uid]
	if e == nil {
		e = newEntry(st)
		s.m[uid] = e
	} else if len(e.conns) == 0 {
		h.kept.Add(-1) // an offline uid kept for history is back
	}
	e.mu.Lock()
	if len(e.conns) >= c.settings().MaxConnectionsPerUID {
		e.mu.Unlock()
		s.mu.Unlock()
		return errTooManyConn
	}
	c.uid = uid
	c.loggedIn.Store(true)
	var replay [][]byte
	var resume *Resume
	if since != nil && c.protocol == ProtocolJSON {
		var r Resume
		replay, r = e.replay(*since, st, time.Now())
		resume = &r
	}
	c.enqueueAll(welcome(e.seq, resume), replay)
	e.conns = append(e.conns, c)
	e.mu.Unlock()
	s.mu.Unlock()

	h.pendingMu.Lock()
	delete(h.pending, c)
	h.pendingMu.Unlock()
	h.connections.Add(1)
	return nil
}

// remove takes a connection off the hub. With its last connection the uid
// leaves its groups, and goes away unless history keeps it for resume.
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
}

// forget releases an entry's history from the hub's budget; e.mu is held.
func (h *Hub) forget(e *uidEntry) {
	freed, n := e.hist.clear()
	h.histBytes.Add(-freed)
	h.histMessages.Add(-int64(n))
}

// reap expires history and drops offline uids whose history is empty and
// older than the ttl. It runs until Close.
func (h *Hub) reap() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return
		case now := <-t.C:
			h.reapOnce(now)
		}
	}
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
			if len(e.conns) == 0 && e.hist.len() == 0 && (st.HistorySize == 0 || e.offlineAt < cutoff) {
				delete(s.m, uid)
				h.kept.Add(-1)
			}
			e.mu.Unlock()
		}
		s.mu.Unlock()
	}
}

func (e *uidEntry) online() bool { return len(e.conns) > 0 }

// Receipt tells what a push reached.
type Receipt struct {
	// Delivered is the number of connections the message was queued to.
	Delivered int
	// Dropped is the number of connections cut off as slow consumers because
	// their queue was full when the message came.
	Dropped int
	// Stored tells whether the message was kept in history for at least
	// one uid, to be replayed to a client that resumes.
	Stored bool
	// Acked is the number of json connections that acknowledged the
	// message within SendOptions.WaitAck (0 without a wait).
	Acked int
}

func (r *Receipt) add(o Receipt) {
	r.Delivered += o.Delivered
	r.Dropped += o.Dropped
	r.Stored = r.Stored || o.Stored
}

// deliver numbers d for e, stores it in e's history, and queues it to every
// connection of e, all under e's lock so numbers, history and queue order
// agree.
func (h *Hub) deliver(e *uidEntry, d *delivery, st *Settings) Receipt {
	var r Receipt
	e.mu.Lock()
	e.seq++
	var jsonFrame []byte // encoded once per uid, if needed
	if st.HistorySize > 0 {
		jsonFrame = d.jsonWire(e.seq)
		r.Stored = h.store(e, storedMsg{seq: e.seq, at: time.Now().UnixNano(), frame: jsonFrame, size: int64(len(jsonFrame)) + storedOverhead}, st)
	}
	for _, c := range e.conns {
		var res queueResult
		if c.protocol == ProtocolText {
			res = c.enqueue(d.textFrame())
		} else {
			if jsonFrame == nil {
				jsonFrame = d.jsonWire(e.seq)
			}
			res = c.enqueue(outFrame{wire: jsonFrame})
			if res == queued && d.acks != nil {
				*d.acks = append(*d.acks, ackTarget{c, e.seq})
			}
		}
		switch res {
		case queued:
			r.Delivered++
		case cut:
			r.Dropped++
		}
	}
	e.mu.Unlock()
	return r
}

// store keeps m in e's history unless the hub's budget is spent; e.mu is held.
func (h *Hub) store(e *uidEntry, m storedMsg, st *Settings) bool {
	if h.histBytes.Load()+m.size > st.HistoryMaxBytes {
		return false
	}
	freed, evicted := e.hist.push(m, st.HistorySize)
	h.histBytes.Add(m.size - freed)
	h.histMessages.Add(1 - int64(evicted))
	return true
}

// Target names where a push goes: exactly one field is set.
type Target struct {
	UID   string
	UIDs  []string
	Group string
	All   bool
}

// SendOptions tune one push.
type SendOptions struct {
	// WaitAck, when positive, makes Send wait up to this long for the json
	// connections it reached to acknowledge the message (Receipt.Acked).
	WaitAck time.Duration
}

// ackTarget is one json connection a tracked message was queued to.
type ackTarget struct {
	c   *Conn
	seq uint64
}

// Send pushes m to t. It never blocks on a connection; with o.WaitAck it
// waits for acknowledgements, at most that long or until ctx ends.
func (h *Hub) Send(ctx context.Context, t Target, m Message, o SendOptions) Receipt {
	h.pushes.Add(1)
	if t.Group != "" {
		m.Group = t.Group
	}
	d := newDelivery(m)
	var acks []ackTarget
	if o.WaitAck > 0 {
		d.acks = &acks
	}
	var r Receipt
	switch {
	case t.All:
		r = h.broadcast(d)
	case t.Group != "":
		for _, uid := range h.members(t.Group) {
			r.add(h.sendToUID(uid, d, false))
		}
	case t.UIDs != nil:
		seen := make(map[string]struct{}, len(t.UIDs))
		for _, uid := range t.UIDs {
			if _, dup := seen[uid]; !dup {
				seen[uid] = struct{}{}
				r.add(h.sendToUID(uid, d, true))
			}
		}
	default:
		r = h.sendToUID(t.UID, d, true)
	}
	// Counted once per push: one shared counter bumped per copy would
	// bounce between the cores a broadcast runs on.
	h.framesOut.Add(uint64(r.Delivered))
	if len(acks) > 0 {
		r.Acked = waitAcks(ctx, acks, o.WaitAck)
	}
	return r
}

// parallelFrom is the number of connections from which a broadcast is
// spread over every core: each copy is a socket write, and one goroutine
// would do them all on one core.
const parallelFrom = 2048

// broadcast delivers d to every uid, the shards split among one goroutine
// per core when there are many connections (and no acks to collect).
func (h *Hub) broadcast(d *delivery) Receipt {
	workers := runtime.GOMAXPROCS(0)
	if d.acks != nil || h.connections.Load() < parallelFrom || workers < 2 {
		return h.broadcastShards(d, 0, shardCount)
	}
	receipts := make([]Receipt, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			receipts[w] = h.broadcastShards(d, w*shardCount/workers, (w+1)*shardCount/workers)
		}()
	}
	wg.Wait()
	var r Receipt
	for _, o := range receipts {
		r.add(o)
	}
	return r
}

func (h *Hub) broadcastShards(d *delivery, from, to int) Receipt {
	var r Receipt
	st := h.settings.Load()
	for i := from; i < to; i++ {
		s := &h.uids[i]
		s.mu.RLock()
		for _, e := range s.m {
			r.add(h.deliver(e, d, st))
		}
		s.mu.RUnlock()
	}
	return r
}

// sendToUID delivers d to uid; an offline uid gets it stored when history
// is on and storeOffline is set.
func (h *Hub) sendToUID(uid string, d *delivery, storeOffline bool) Receipt {
	s := h.uidShard(uid)
	s.mu.RLock()
	st := h.settings.Load()
	if e := s.m[uid]; e != nil {
		defer s.mu.RUnlock()
		return h.deliver(e, d, st)
	}
	s.mu.RUnlock()
	if !storeOffline || st.HistorySize == 0 || h.histBytes.Load() >= st.HistoryMaxBytes || h.closed.Load() {
		return Receipt{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[uid]
	if e == nil {
		e = newEntry(st)
		e.offlineAt = time.Now().UnixNano()
		s.m[uid] = e
		h.kept.Add(1)
	}
	return h.deliver(e, d, st)
}

// waitAcks polls the connections' acknowledged positions until all have
// acknowledged, the wait is over or ctx ends; it returns how many did.
func waitAcks(ctx context.Context, targets []ackTarget, wait time.Duration) int {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	count := func() int {
		n := 0
		for _, t := range targets {
			if t.c.acked.Load() >= t.seq {
				n++
			}
		}
		return n
	}
	for {
		if n := count(); n == len(targets) {
			return n
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return count()
		case <-ctx.Done():
			return count()
		}
	}
}

// SendToUID pushes m to every connection of uid.
func (h *Hub) SendToUID(uid string, m Message) Receipt {
	return h.Send(context.Background(), Target{UID: uid}, m, SendOptions{})
}

// SendToUIDs pushes m to every connection of each uid (duplicates are sent once).
func (h *Hub) SendToUIDs(uids []string, m Message) Receipt {
	return h.Send(context.Background(), Target{UIDs: uids}, m, SendOptions{})
}

// SendToGroup pushes m to every connection of every member of group.
func (h *Hub) SendToGroup(group string, m Message) Receipt {
	return h.Send(context.Background(), Target{Group: group}, m, SendOptions{})
}

// Broadcast pushes m to every logged-in connection (and, with history on,
// stores it for uids that are offline but kept).
func (h *Hub) Broadcast(m Message) Receipt {
	return h.Send(context.Background(), Target{All: true}, m, SendOptions{})
}

// Join adds an online uid to a group. Membership lasts until Leave or until
// the uid's last connection closes.
func (h *Hub) Join(uid, group string) error {
	max := h.Settings().MaxUIDLength
	if err := ValidName("group", group, max); err != nil {
		return err
	}
	s := h.uidShard(uid)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[uid]
	if e == nil || !e.online() {
		return ErrOffline
	}
	if e.groups == nil {
		e.groups = make(map[string]struct{})
	}
	e.groups[group] = struct{}{}
	// Adding under the uid's lock orders Join against the uid going offline.
	gs := h.groupShard(group)
	gs.mu.Lock()
	members := gs.m[group]
	if members == nil {
		members = make(map[string]struct{})
		gs.m[group] = members
	}
	members[uid] = struct{}{}
	gs.mu.Unlock()
	return nil
}

// Leave removes uid from group; the group disappears with its last member.
// It reports whether uid was a member.
func (h *Hub) Leave(uid, group string) bool {
	s := h.uidShard(uid)
	s.mu.Lock()
	e := s.m[uid]
	member := false
	if e != nil {
		_, member = e.groups[group]
		delete(e.groups, group)
	}
	if member {
		h.dropMember(group, uid)
	}
	s.mu.Unlock()
	return member
}

func (h *Hub) dropMember(group, uid string) {
	gs := h.groupShard(group)
	gs.mu.Lock()
	if members := gs.m[group]; members != nil {
		delete(members, uid)
		if len(members) == 0 {
			delete(gs.m, group)
		}
	}
	gs.mu.Unlock()
}

// members is a snapshot of a group's uids.
func (h *Hub) members(group string) []string {
	gs := h.groupShard(group)
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	members := gs.m[group]
	out := make([]string, 0, len(members))
	for uid := range members {
		out = append(out, uid)
	}
	return out
}

// Online returns how many connections uid holds.
func (h *Hub) Online(uid string) int {
	s := h.uidShard(uid)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.m[uid]; e != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.conns)
	}
	return 0
}

// Kick closes every connection of uid, after what is already queued to it
// has been written, with close code 4005 and reason. It returns how many
// connections it closed.
func (h *Hub) Kick(uid, reason string) int {
	s := h.uidShard(uid)
	s.mu.RLock()
	var conns []*Conn
	if e := s.m[uid]; e != nil {
		e.mu.Lock()
		conns = slices.Clone(e.conns)
		e.mu.Unlock()
	}
	s.mu.RUnlock()
	for _, c := range conns {
		if c.protocol == ProtocolJSON {
			c.enqueue(jsonFrame(errorFrame{Type: "error", Code: "kicked", Message: reason}))
		}
		c.closeAfterFlush(CloseKicked, closeReason(reason), c.settings().WriteTimeout)
	}
	return len(conns)
}

// UIDs lists online uids in byte order, after the uid `after`, at most limit
// of them; with group set, only that group's members. more tells whether
// uids remain past the page.
func (h *Hub) UIDs(group, after string, limit int) (uids []string, more bool) {
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

// Stats is a snapshot of a hub's counters.
type Stats struct {
	Hub            string `json:"hub"`
	Connections    int64  `json:"connections"`
	Pending        int    `json:"pending"`
	UIDs           int    `json:"uids"`
	OfflineKept    int    `json:"offline_uids_kept"`
	Groups         int    `json:"groups"`
	MessagesIn     uint64 `json:"messages_in"`
	MessagesOut    uint64 `json:"messages_out"`
	Pushes         uint64 `json:"pushes"`
	SlowConsumers  uint64 `json:"slow_consumers"`
	HistoryStored  int64  `json:"history_messages"`
	HistoryBytes   int64  `json:"history_bytes"`
	HistoryMaxSize int64  `json:"history_max_bytes"`
	Goroutines     int    `json:"goroutines"`
}

// Stats counts the hub's connections, uids, groups, history and traffic.
func (h *Hub) Stats() Stats {
	st := Stats{
		Hub:            h.name,
		Connections:    h.connections.Load(),
		MessagesIn:     h.framesIn.Load(),
		MessagesOut:    h.framesOut.Load(),
		Pushes:         h.pushes.Load(),
		SlowConsumers:  h.slowConsumers.Load(),
		HistoryStored:  h.histMessages.Load(),
		HistoryBytes:   h.histBytes.Load(),
		HistoryMaxSize: h.settings.Load().HistoryMaxBytes,
		Goroutines:     runtime.NumGoroutine(),
	}
	for i := range h.uids {
		s := &h.uids[i]
		s.mu.RLock()
		for _, e := range s.m {
			if e.online() {
				st.UIDs++
			} else {
				st.OfflineKept++
			}
		}
		s.mu.RUnlock()
		gs := &h.groups[i]
		gs.mu.RLock()
		st.Groups += len(gs.m)
		gs.mu.RUnlock()
	}
	h.pendingMu.Lock()
	st.Pending = len(h.pending)
	h.pendingMu.Unlock()
	return st
}

// Close ends the hub: every connection gets what is queued to it, then a
// 1001 close with reason and a retry hint spread over ReconnectJitter, so
// that clients do not all reconnect in the same moment; new logins are
// refused. It returns once every connection is closed, or after a short
// deadline.
func (h *Hub) Close(reason string) {
	if !h.closed.CompareAndSwap(false, true) {
		return
	}
	close(h.done)
	within := 2 * time.Second
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
		if c.protocol == ProtocolJSON && c.loggedIn.Load() {
			c.enqueueAll(jsonFrame(goingAwayFrame{Type: "going_away", Reason: reason, RetryMS: retry.Milliseconds()}), nil)
		}
		c.closeAfterFlush(CloseGoingAway, closeReason(fmt.Sprintf("%s; retry in %dms", reason, retry.Milliseconds())), within)
	}
	// Wait for the flushes, so that a stopping server does not exit first.
	deadline := time.Now().Add(within + 250*time.Millisecond)
	for h.live.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.poller.close()
	h.logger().Info("hub closed", zap.String("hub", h.name), zap.Int("connections", len(conns)),
		zap.Int64("not_flushed", h.live.Load()))
}

type goingAwayFrame struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	RetryMS int64  `json:"retry_ms"`
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

// recoverLog keeps a panic in one connection's goroutine from taking the
// server down; the connection is closed.
func (h *Hub) recoverLog(where string, c *Conn) {
	if r := recover(); r != nil {
		h.logger().Error("panic in connection "+where,
			zap.Any("panic", r), zap.String("conn", c.ID()), zap.ByteString("stack", debug.Stack()))
		c.teardown()
	}
}
