package redisbroker

import (
	"context"

	"go.uber.org/zap"
)

// Joins and leaves while Redis is away apply on this node only (Join,
// Leave). Each is remembered, the last one per uid and group, and carried
// out in Redis once it answers again, so that the cluster learns of them:
// a uid joined meanwhile gets the group's pushes from every node, one that
// left no longer does. A join or leave that reaches Redis in the meantime
// replaces the remembered one.

// membership names a uid's place in a group.
type membership struct{ uid, group string }

// maxAway bounds what an outage remembers: past it, a join or leave
// holds on its node only, and the log says so once per outage.
const maxAway = 1 << 16

// rememberAway notes a join (joined) or leave that Redis did not get.
func (b *Broker) rememberAway(uid, group string, joined bool) {
	b.awayMu.Lock()
	defer b.awayMu.Unlock()
	m := membership{uid, group}
	if _, known := b.away[m]; !known && len(b.away) >= maxAway {
		if !b.awayFull {
			b.awayFull = true
			b.log.Warn("too many joins and leaves while the cluster's Redis is away: the next ones hold on this node only",
				zap.Int("remembered", len(b.away)))
		}
		return
	}
	b.away[m] = joined
}

// forgetAway drops what was remembered of uid in group: Redis has a newer
// join or leave.
func (b *Broker) forgetAway(uid, group string) {
	b.awayMu.Lock()
	delete(b.away, membership{uid, group})
	b.awayMu.Unlock()
}

// replayAway carries out in Redis the joins and leaves made while it was
// away. What Redis cannot take now is kept for the next try, unless a
// newer join or leave of the same came meanwhile.
func (b *Broker) replayAway(ctx context.Context) error {
	b.awayMu.Lock()
	if len(b.away) == 0 {
		b.awayMu.Unlock()
		return nil
	}
	todo := b.away
	b.away, b.awayFull = make(map[membership]bool), false
	b.awayMu.Unlock()
	for m, joined := range todo {
		var err error
		switch {
		case joined && b.local.Online(m.uid) == 0:
			// Gone from this node meanwhile: nothing of it to tell.
		case joined:
			var v any
			v, err = b.joinScript(ctx, m.uid, m.group)
			if n, ok := v.(int64); ok && n < 0 { // offline meanwhile, or over the limits of groups
				b.log.Warn("a join made while the cluster's Redis was away was refused once it was back: it holds on this node only",
					zap.String("uid", m.uid), zap.String("group", m.group), zap.Int64("code", n))
			}
		default:
			_, err = b.leaveScript(ctx, m.uid, m.group)
		}
		if err != nil && !scriptError(err) {
			b.awayMu.Lock()
			for m2, j := range todo {
				if _, newer := b.away[m2]; !newer {
					b.away[m2] = j
				}
			}
			b.awayMu.Unlock()
			return err
		}
		delete(todo, m)
	}
	return nil
}
