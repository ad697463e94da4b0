// Package hub is caddy-pushhub's engine: connections bound to uids, groups of
// uids, and fan-out of pushes to one uid, many, a group or everyone. It knows
// nothing of Caddy; the Caddy modules feed it upgraded WebSockets and calls
// from the push API.
package hub

import (
	"hash/maphash"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
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

	pendingMu sync.Mutex
	pending   map[*Conn]struct{} // connections that have not logged in

	closed     atomic.Bool
	nextConnID atomic.Uint64

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

// uidEntry is one online uid. Its mutex orders sequence numbers and queueing,
// so every connection of the uid receives messages in sequence order.
type uidEntry struct {
	mu     sync.Mutex
	seq    uint64
	conns  []*Conn
	groups map[string]struct{} // guarded by the uid's shard lock
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
	h := &Hub{name: name, seed: maphash.MakeSeed(), pending: make(map[*Conn]struct{})}
	h.log.Store(log)
	for i := range h.uids {
		h.uids[i].m = make(map[string]*uidEntry)
		h.groups[i].m = make(map[string]map[string]struct{})
	}
	h.Configure(s)
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

// register binds a connection to its uid and queues welcome before anything
// that can be sent to the uid afterwards.
func (h *Hub) register(c *Conn, uid string, welcome func(seq uint64) outFrame) error {
	if h.closed.Load() {
		return ErrHubClosed
	}
	s := h.uidShard(uid)
	s.mu.Lock()
	e := s.m[uid]
	if e == nil {
		e = &uidEntry{}
		s.m[uid] = e
	}
	e.mu.Lock()
	if len(e.conns) >= h.Settings().MaxConnectionsPerUID {
		e.mu.Unlock()
		if len(e.conns) == 0 {
			delete(s.m, uid)
		}
		s.mu.Unlock()
		return errTooManyConn
	}
	c.uid = uid
	c.loggedIn.Store(true)
	c.enqueue(welcome(e.seq))
	e.conns = append(e.conns, c)
	e.mu.Unlock()
	s.mu.Unlock()

	h.pendingMu.Lock()
	delete(h.pending, c)
	h.pendingMu.Unlock()
	h.connections.Add(1)
	return nil
}

// remove takes a connection off the hub; the uid goes offline and leaves its
// groups with its last connection.
func (h *Hub) remove(c *Conn) {
	if !c.loggedIn.Load() {
		h.pendingMu.Lock()
		delete(h.pending, c)
		h.pendingMu.Unlock()
		return
	}
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
	e.mu.Unlock()
	var groups map[string]struct{}
	if last {
		delete(s.m, c.uid)
		groups = e.groups
	}
	s.mu.Unlock()
	h.connections.Add(-1)
	for g := range groups {
		h.dropMember(g, c.uid)
	}
}

// Receipt tells what a push reached.
type Receipt struct {
	// Delivered is the number of connections the message was queued to.
	Delivered int
	// Dropped is the number of connections cut off as slow consumers because
	// their queue was full when the message came.
	Dropped int
}

func (r *Receipt) add(o Receipt) {
	r.Delivered += o.Delivered
	r.Dropped += o.Dropped
}

// deliver queues d to every connection of e, under e's lock so sequence
// numbers and queue order agree.
func (e *uidEntry) deliver(d *delivery) Receipt {
	var r Receipt
	e.mu.Lock()
	e.seq++
	var jsonFrame *websocket.PreparedMessage // encoded once per uid, if a json connection needs it
	for _, c := range e.conns {
		var ok bool
		if c.protocol == ProtocolText {
			ok = c.send(d.textFrame())
		} else {
			if jsonFrame == nil {
				jsonFrame = d.jsonFrame(e.seq)
			}
			ok = c.send(jsonFrame)
		}
		if ok {
			r.Delivered++
		} else {
			r.Dropped++
		}
	}
	e.mu.Unlock()
	return r
}

// SendToUID pushes m to every connection of uid.
func (h *Hub) SendToUID(uid string, m Message) Receipt {
	h.pushes.Add(1)
	return h.sendToUID(uid, newDelivery(m))
}

func (h *Hub) sendToUID(uid string, d *delivery) Receipt {
	s := h.uidShard(uid)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.m[uid]; e != nil {
		return e.deliver(d)
	}
	return Receipt{}
}

// SendToUIDs pushes m to every connection of each uid (duplicates are sent once).
func (h *Hub) SendToUIDs(uids []string, m Message) Receipt {
	h.pushes.Add(1)
	d := newDelivery(m)
	var r Receipt
	seen := make(map[string]struct{}, len(uids))
	for _, uid := range uids {
		if _, dup := seen[uid]; dup {
			continue
		}
		seen[uid] = struct{}{}
		r.add(h.sendToUID(uid, d))
	}
	return r
}

// SendToGroup pushes m to every connection of every member of group.
func (h *Hub) SendToGroup(group string, m Message) Receipt {
	h.pushes.Add(1)
	m.Group = group
	d := newDelivery(m)
	var r Receipt
	for _, uid := range h.members(group) {
		r.add(h.sendToUID(uid, d))
	}
	return r
}

// Broadcast pushes m to every logged-in connection.
func (h *Hub) Broadcast(m Message) Receipt {
	h.pushes.Add(1)
	d := newDelivery(m)
	var r Receipt
	for i := range h.uids {
		s := &h.uids[i]
		s.mu.RLock()
		for _, e := range s.m {
			r.add(e.deliver(d))
		}
		s.mu.RUnlock()
	}
	return r
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
	if e == nil {
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
	s.mu.Unlock()
	if member {
		h.dropMember(group, uid)
	}
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
			c.enqueue(outFrame{kind: frameData, pm: controlFrame(errorFrame{Type: "error", Code: "kicked", Message: reason})})
		}
		c.closeAfterFlush(CloseKicked, closeReason(reason), h.Settings().WriteTimeout)
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
			for uid := range s.m {
				if uid > after {
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
	Hub           string `json:"hub"`
	Connections   int64  `json:"connections"`
	Pending       int    `json:"pending"`
	UIDs          int    `json:"uids"`
	Groups        int    `json:"groups"`
	MessagesIn    uint64 `json:"messages_in"`
	MessagesOut   uint64 `json:"messages_out"`
	Pushes        uint64 `json:"pushes"`
	SlowConsumers uint64 `json:"slow_consumers"`
	Goroutines    int    `json:"goroutines"`
}

// Stats counts the hub's connections, uids, groups and traffic.
func (h *Hub) Stats() Stats {
	st := Stats{
		Hub:           h.name,
		Connections:   h.connections.Load(),
		MessagesIn:    h.framesIn.Load(),
		MessagesOut:   h.framesOut.Load(),
		Pushes:        h.pushes.Load(),
		SlowConsumers: h.slowConsumers.Load(),
		Goroutines:    runtime.NumGoroutine(),
	}
	for i := range h.uids {
		s := &h.uids[i]
		s.mu.RLock()
		st.UIDs += len(s.m)
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

// Close ends the hub: every connection gets what is queued to it, within a
// short deadline, then a 1001 close with reason; new logins are refused.
func (h *Hub) Close(reason string) {
	if !h.closed.CompareAndSwap(false, true) {
		return
	}
	within := min(h.Settings().WriteTimeout, 2*time.Second)
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
		c.closeAfterFlush(CloseGoingAway, closeReason(reason), within)
	}
	h.logger().Info("hub closed", zap.String("hub", h.name), zap.Int("connections", len(conns)))
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
			zap.Any("panic", r), zap.String("conn", c.id), zap.ByteString("stack", debug.Stack()))
		c.teardown()
	}
}
