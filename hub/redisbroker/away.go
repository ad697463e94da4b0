package redisbroker

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Joins and leaves while Redis is away apply on this node only (Join,
// Leave). Each is remembered, the last one per uid and group, and carried
// out in Redis once it answers again, so that the cluster learns of them:
// a uid joined meanwhile gets the group's pushes from every node, one that
// left no longer does.
//
// A join or leave and the replay of the same uid and group hold one of
// memberLocks across their script, so that Redis sees them in the order
// they were decided: a join or leave that reaches Redis forgets what was
// remembered of it, and a replay carries out only what is still
// remembered when it holds the lock. A uid that goes offline on this node
// loses its memberships here (groups.go), so its remembered joins go too.

// away is what the broker remembers while Redis is away.
type away struct {
	mu   sync.Mutex
	uids map[string]map[string]bool // uid → group → joined (true) or left
	n    int                        // entries in uids
	full bool                       // maxAway reached, and said
}

// maxAway bounds what an outage remembers: past it, a join or leave
// holds on its node only, and the log says so once.
const maxAway = 1 << 16

// replayBudget bounds the replay of one heartbeat; the rest waits for the
// next.
const (
	replayMax     = 2048
	replayTimeout = 5 * time.Second
)

// memberLocks serialize a membership's join, leave and replay.
type memberLocks struct {
	seed  maphash.Seed
	locks [64]sync.Mutex
}

func (m *memberLocks) of(uid, group string) *sync.Mutex {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteString(uid)
	h.WriteByte(0)
	h.WriteString(group)
	return &m.locks[h.Sum64()%uint64(len(m.locks))]
}

// remember notes a join (joined) or leave of uid in group that Redis did
// not get.
func (b *Broker) remember(uid, group string, joined bool) {
	a := &b.away
	a.mu.Lock()
	defer a.mu.Unlock()
	gs := a.uids[uid]
	if _, known := gs[group]; !known {
		if a.n >= maxAway {
			if !a.full {
				a.full = true
				b.log.Warn("too many joins and leaves while the cluster's Redis is away: the next ones hold on this node only",
					zap.Int("remembered", a.n))
			}
			return
		}
		if gs == nil {
			gs = make(map[string]bool)
			a.uids[uid] = gs
		}
		a.n++
	}
	gs[group] = joined
}

// forgetAway drops what was remembered of uid in group: Redis has a newer
// join or leave, or the replay carried it out.
func (b *Broker) forgetAway(uid, group string) {
	a := &b.away
	a.mu.Lock()
	defer a.mu.Unlock()
	if gs := a.uids[uid]; gs != nil {
		if _, ok := gs[group]; ok {
			delete(gs, group)
			a.n--
			if len(gs) == 0 {
				delete(a.uids, uid)
			}
		}
	}
}

// wentOffline forgets the joins remembered of a uid this node no longer
// holds: its memberships here ended with its last connection.
func (b *Broker) wentOffline(uid string) {
	a := &b.away
	a.mu.Lock()
	defer a.mu.Unlock()
	for g, joined := range a.uids[uid] {
		if joined {
			delete(a.uids[uid], g)
			a.n--
		}
	}
	if len(a.uids[uid]) == 0 {
		delete(a.uids, uid)
	}
}

// remembered is what is remembered of uid in group now.
func (b *Broker) remembered(uid, group string) (joined, ok bool) {
	a := &b.away
	a.mu.Lock()
	defer a.mu.Unlock()
	joined, ok = a.uids[uid][group]
	return joined, ok
}

// replayAway carries out in Redis up to replayMax of the joins and leaves
// made while it was away, within replayTimeout. It stops at the first
// failure of Redis: what is left waits for the next heartbeat.
func (b *Broker) replayAway() {
	type entry struct{ uid, group string }
	var todo []entry
	a := &b.away
	a.mu.Lock()
	if a.n == 0 {
		a.mu.Unlock()
		return
	}
	a.full = false
gather:
	for uid, gs := range a.uids {
		for g := range gs {
			if len(todo) == replayMax {
				break gather
			}
			todo = append(todo, entry{uid, g})
		}
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), replayTimeout)
	defer cancel()
	for _, e := range todo {
		if !b.replayOne(ctx, e.uid, e.group) {
			return
		}
	}
}

// replayOne carries out what is remembered of uid in group, holding the
// membership's lock; false when Redis failed.
func (b *Broker) replayOne(ctx context.Context, uid, group string) bool {
	mu := b.members.of(uid, group)
	mu.Lock()
	defer mu.Unlock()
	joined, ok := b.remembered(uid, group)
	if !ok {
		return true // a newer join or leave reached Redis
	}
	var err error
	switch {
	case joined && b.local.Online(uid) == 0:
		// Gone from this node meanwhile: nothing of it to tell.
	case joined:
		var v any
		v, err = b.joinScript(ctx, uid, group)
		if n, ok := v.(int64); ok && n < 0 { // offline in the cluster, or over the limits of groups
			b.log.Warn("a join made while the cluster's Redis was away was refused once it was back: it holds on this node only",
				zap.String("uid", uid), zap.String("group", group), zap.Int64("code", n))
		}
	default:
		_, err = b.leaveScript(ctx, uid, group)
	}
	if err != nil && !scriptError(err) {
		return false
	}
	b.forgetAway(uid, group)
	return true
}
