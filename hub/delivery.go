package hub

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Delivery: a push fanned out to this node's connections.

// delivery is a message on its way to one or many connections: each
// protocol encodes it once (prepared), and a uid's connections of one
// protocol share one frame.
type delivery struct {
	msg  *Message
	acct *StoreAccount // who pays for what is stored for offline uids
	at   int64         // unix nanoseconds this node took the push
	// binds is Hub.binds when the push began: a connection of a protocol
	// without sequence numbers that logged in later does not get it. A
	// broadcast visits the uids one after another, and one that logs in
	// meanwhile must not get a message that others got before its login
	// began. (A protocol with sequence numbers places the push in the
	// uid's numbered stream instead: after its welcome, it is delivered.)
	binds    uint64
	prepared [maxProtocols]struct {
		once sync.Once
		p    PreparedMessage
	}
	// wantAcks: acks collects the resuming connections reached, for
	// waiting on their acknowledgements (a push with WaitAck, which is
	// never split over cores).
	wantAcks bool
	acks     []ackTarget
}

// prepare is the message encoded for p, made once per push even when a
// broadcast runs on several cores.
func (d *delivery) prepare(p *protocol) PreparedMessage {
	slot := &d.prepared[p.id]
	slot.once.Do(func() { slot.p = p.Message(d.msg) })
	return slot.p
}

// Numbering gives the sequence number of a push for uid, when a store
// outside this node (a cluster broker's) numbered it; ok false means the
// push does not reach uid.
type Numbering func(uid string) (seq uint64, ok bool)

// DeliverOptions say how a push is numbered and kept on this node.
type DeliverOptions struct {
	// Numbering, when set, gives each uid's sequence number; otherwise this
	// node numbers pushes per uid itself.
	Numbering Numbering
	// Store keeps each push in this node's history (the in-process broker),
	// also for uids that are offline, when the hub's history is on.
	Store bool
}

// Deliver queues p to this node's connections of its target and, with
// p.WaitAck, waits for their acknowledgements. It never blocks on a
// connection.
func (l Local) Deliver(ctx context.Context, p *Publication, o DeliverOptions) Receipt {
	r, acks := l.queue(p, o)
	if len(acks) > 0 {
		r.Acked = l.h.waitAcks(ctx, acks, p.WaitAck)
	}
	return r
}

// DeliverAndReport is Deliver for a broker's subscriber, which must not
// wait: p is queued at once, in the order of the calls, and report gets the
// receipt once the acknowledgements p.WaitAck asks for are in or the wait
// is over, on a goroutine of the hub's when there are any to wait for.
func (l Local) DeliverAndReport(p *Publication, o DeliverOptions, report func(Receipt)) {
	r, acks := l.queue(p, o)
	if len(acks) == 0 {
		report(r)
		return
	}
	l.h.routines.goFn("acknowledgements", func() {
		r.Acked = l.h.waitAcks(context.Background(), acks, p.WaitAck)
		report(r)
	})
}

// queue queues p to this node's connections of its target; acks are the
// connections to wait for when p.WaitAck is set.
func (l Local) queue(p *Publication, o DeliverOptions) (Receipt, []ackTarget) {
	h := l.h
	d := &delivery{msg: &p.Message, acct: p.Account, at: time.Now().UnixNano(), binds: h.binds.Load(), wantAcks: p.WaitAck > 0}
	var r Receipt
	t := p.Target
	switch {
	case t.All:
		r = h.broadcast(d, o)
	case t.Group != "":
		for _, uid := range h.members(t.Group) {
			r.Add(h.sendToUID(uid, d, o, false))
		}
	case t.UIDs != nil: // each once (publication)
		for _, uid := range t.UIDs {
			r.Add(h.sendToUID(uid, d, o, true))
		}
	default:
		r = h.sendToUID(t.UID, d, o, true)
	}
	// Counted once per push: one shared counter bumped per copy would
	// bounce between the cores a broadcast runs on.
	h.framesOut.Add(uint64(r.Delivered))
	return r, d.acks
}

// deliver numbers d for e (or takes the number the store gave), stores it
// in e's history when this node keeps history, and queues it to every
// connection of e, all under e's lock so numbers, history and queue order
// agree.
func (h *Hub) deliver(e *uidEntry, uid string, d *delivery, o DeliverOptions, st *Settings) Receipt {
	var r Receipt
	e.mu.Lock()
	var seq uint64
	if o.Numbering == nil {
		e.seq++
		seq = e.seq
		if o.Store && st.HistorySize > 0 {
			r.Stored = h.store(e, StoredMessage{Seq: seq, Message: d.msg}, st, d.acct)
		}
	} else {
		var ok bool
		if seq, ok = o.Numbering(uid); !ok {
			e.mu.Unlock()
			return r
		}
		e.seq = max(e.seq, seq)
	}
	var frames [maxProtocols][]byte // one frame per protocol for this uid
	for _, c := range e.conns {
		if c.boundAt > d.binds && !c.proto.Resumes() {
			continue // logged in after the push began
		}
		f := frames[c.proto.id]
		if f == nil {
			f = d.prepare(c.proto).Frame(seq)
			frames[c.proto.id] = f
		}
		if c.catchingUp {
			if c.hold(seq, f) {
				r.Delivered++
			} else {
				r.Dropped++
			}
			continue
		}
		switch c.enqueue(outFrame{wire: f, at: d.at}) {
		case queued:
			r.Delivered++
			if d.wantAcks && c.proto.Resumes() {
				d.acks = append(d.acks, ackTarget{c, seq})
			}
		case cut:
			r.Dropped++
		}
	}
	e.mu.Unlock()
	return r
}

// parallelFrom is the number of connections from which a broadcast is
// spread over every core: each copy is a socket write, and one goroutine
// would do them all on one core.
const parallelFrom = 2048

// broadcast delivers d to every uid of this node, the shards split among
// one goroutine per core when there are many connections (and no acks to
// collect).
func (h *Hub) broadcast(d *delivery, o DeliverOptions) Receipt {
	workers := runtime.GOMAXPROCS(0)
	if d.wantAcks || h.connections.Load() < parallelFrom || workers < 2 {
		return h.broadcastShards(d, o, 0, shardCount)
	}
	receipts := make([]Receipt, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		h.routines.goFn("broadcast", func() {
			defer wg.Done()
			receipts[w] = h.broadcastShards(d, o, w*shardCount/workers, (w+1)*shardCount/workers)
		})
	}
	wg.Wait()
	var r Receipt
	for _, o := range receipts {
		r.Add(o)
	}
	return r
}

func (h *Hub) broadcastShards(d *delivery, o DeliverOptions, from, to int) Receipt {
	var r Receipt
	st := h.settings.Load()
	for i := from; i < to; i++ {
		s := &h.uids[i]
		s.mu.RLock()
		for uid, e := range s.m {
			r.Add(h.deliver(e, uid, d, o, st))
		}
		s.mu.RUnlock()
	}
	return r
}

// sendToUID delivers d to uid; an offline uid gets it stored when this node
// keeps history (o.Store) and storeOffline is set.
func (h *Hub) sendToUID(uid string, d *delivery, o DeliverOptions, storeOffline bool) Receipt {
	s := h.uidShard(uid)
	s.mu.RLock()
	st := h.settings.Load()
	if e := s.m[uid]; e != nil {
		defer s.mu.RUnlock()
		return h.deliver(e, uid, d, o, st)
	}
	s.mu.RUnlock()
	// A new offline uid costs the budget its entry and the message.
	cost := entryCost(uid) + storedSize(d.msg)
	if !o.Store || !storeOffline || st.HistorySize == 0 || h.histBytes.Load()+cost > st.HistoryMaxBytes || h.closed.Load() ||
		(d.acct != nil && d.acct.bytes.Load()+storedSize(d.msg) > d.acct.max.Load()) {
		return Receipt{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[uid]
	if e == nil {
		e = newEntry()
		e.offlineAt = time.Now().UnixNano()
		e.mailbox = true
		h.charge(e, uid)
		s.m[uid] = e
		h.kept.Add(1)
	}
	return h.deliver(e, uid, d, o, st)
}

// ackTarget is one connection a tracked message was queued to.
type ackTarget struct {
	c   *Conn
	seq uint64
}

// waitAcks waits until every target has acknowledged its message, the wait
// is over or ctx ends; it returns how many did. Readers notify the hub of
// every acknowledgement that moves a connection forward.
func (h *Hub) waitAcks(ctx context.Context, targets []ackTarget, wait time.Duration) int {
	h.acks.waiters.Add(1)
	defer h.acks.waiters.Add(-1)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
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
		woken := h.acks.wait()
		if n := count(); n == len(targets) {
			return n
		}
		select {
		case <-woken:
		case <-deadline.C:
			return count()
		case <-ctx.Done():
			return count()
		}
	}
}
