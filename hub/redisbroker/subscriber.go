package redisbroker

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// subscribe reads this node's inbox and the all-nodes channel, in order,
// until the broker stops. go-redis subscribes again by itself after a
// lost connection; each (re)subscription makes the node announce its uids
// again, since Redis may have lost them.
func (b *Broker) subscribe(ps *redis.PubSub) {
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(4096), redis.WithChannelSendTimeout(time.Minute))
	for {
		select {
		case <-b.stop:
			return
		case v, ok := <-ch:
			if !ok {
				return
			}
			switch m := v.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" && m.Channel == b.inbox {
					// Redis runs one SUBSCRIBE for both channels: once it
					// confirms the inbox, both are live.
					b.subOnce.Do(func() { close(b.subscribed) })
					b.wakeHeartbeat() // the heartbeat re-announces if needed
				}
			case *redis.Message:
				b.handle([]byte(m.Payload))
			}
		}
	}
}

// handle runs one envelope from another node (or, for numbered pushes,
// from this one).
func (b *Broker) handle(payload []byte) {
	e, err := readEnvelope(payload)
	if err != nil {
		b.log.Warn("an unreadable message on the cluster's channel", zap.Error(err))
		return
	}
	switch e.Kind {
	case kindPush:
		b.deliver(e)
	case kindReplies:
		for _, r := range e.Replies {
			b.received(r)
		}
	case kindKick:
		b.reply(e.Origin, reply{ID: e.ID, Delivered: b.local.Kick(e.UID, e.Reason)})
	case kindJoin:
		if b.local.Online(e.UID) > 0 {
			_ = b.local.Join(e.UID, e.Group)
		}
	case kindLeave:
		b.local.Leave(e.UID, e.Group)
	case kindEcho:
		if e.Origin == b.node {
			b.received(reply{ID: e.ID, Node: b.node})
		}
	case kindStats:
		if e.Origin == b.node {
			return // the asking node counts itself
		}
		ns := nodeStatsOf(b.node, b.local.Stats())
		b.reply(e.Origin, reply{ID: e.ID, Stats: &ns})
	}
}

// deliver queues a push to this node's connections and replies with the
// receipt once the acknowledgements it waits for are in.
func (b *Broker) deliver(e *envelope) {
	if e.Origin == b.node && e.Target != targetUIDs {
		return // a fan-out this node published: it delivered already
	}
	m, err := decodeMessage(e.Msg)
	if err != nil {
		b.log.Warn("an unreadable push on the cluster's channel", zap.Error(err))
		return
	}
	p := &hub.Publication{Message: *m, WaitAck: time.Duration(e.WaitMS) * time.Millisecond}
	var o hub.DeliverOptions
	switch e.Target {
	case targetAll:
		p.Target.All = true
	case targetGroup:
		p.Target.Group = e.Group
	default:
		p.Target.UIDs = make([]string, len(e.U))
		var seqs map[string]uint64
		for i, t := range e.U {
			p.Target.UIDs[i] = t.UID
			if t.Seq > 0 {
				if seqs == nil {
					seqs = make(map[string]uint64, len(e.U))
				}
				seqs[t.UID] = t.Seq
			}
		}
		if seqs != nil {
			o.Numbering = func(uid string) (uint64, bool) {
				seq, ok := seqs[uid]
				return seq, ok
			}
		}
	}
	origin, id, noReply := e.Origin, e.ID, e.NoReply
	b.local.DeliverAndReport(p, o, func(r hub.Receipt) {
		if !noReply {
			b.reply(origin, reply{ID: id, Delivered: r.Delivered, Dropped: r.Dropped, Acked: r.Acked})
		}
	})
}

// requestStats asks every live node for its counters.
func (b *Broker) requestStats(ctx context.Context) ([]reply, int, error) {
	id := b.nextID.Add(1)
	w := b.await(id)
	v, err := b.run(ctx, scriptFanOut, string(marshal(&envelope{Kind: kindStats, ID: id, Origin: b.node})), b.node)
	if err != nil {
		b.forget(id)
		return nil, 0, err
	}
	replies, missing := b.collect(ctx, id, w, stringList(v), b.replyTimeout())
	return replies, missing, nil
}
