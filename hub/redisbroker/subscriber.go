package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// subscribe reads this node's inbox and the all-nodes channel, in order,
// until the broker stops (Close closes ps). It reads the subscription
// itself, rather than through a channel go-redis's goroutine fills, so
// that a push from another node costs no hand-over between goroutines.
// go-redis subscribes again by itself after a lost connection; each
// (re)subscription makes the node announce its uids again, since Redis
// may have lost them.
func (b *Broker) subscribe(ps *redis.PubSub) {
	defer ps.Close()
	ctx := context.Background()
	failures := 0
	for {
		v, err := ps.ReceiveTimeout(ctx, subscriptionCheck)
		select {
		case <-b.stop:
			return
		default:
		}
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, redis.ErrClosed):
				return
			case errors.As(err, &ne) && ne.Timeout():
				// Nothing came for a while: a ping finds out whether
				// the connection still works (go-redis reconnects if not).
				_ = ps.Ping(ctx)
				continue
			}
			if failures++; failures > 1 && !b.sleep(subscriptionRetry) {
				return
			}
			continue
		}
		failures = 0
		switch m := v.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == b.inbox {
				// Redis runs one SUBSCRIBE for both channels: once it
				// confirms the inbox, both are live.
				b.subOnce.Do(func() { close(b.subscribed) })
				select {
				case b.wake <- struct{}{}: // the heartbeat re-announces if needed
				default:
				}
			}
		case *redis.Message:
			b.handle([]byte(m.Payload))
		}
	}
}

const (
	// subscriptionCheck is how long the subscription may be silent before
	// a ping checks it.
	subscriptionCheck = 3 * time.Second
	// subscriptionRetry is the wait between failed reads of it.
	subscriptionRetry = 100 * time.Millisecond
)

// sleep waits d, or less if the broker stops: false then.
func (b *Broker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.stop:
		return false
	case <-t.C:
		return true
	}
}

// handle runs one envelope from another node (or, for numbered pushes,
// from this one).
func (b *Broker) handle(payload []byte) {
	var e envelope
	if err := json.Unmarshal(payload, &e); err != nil {
		b.log.Warn("an unreadable message on the cluster's channel", zap.Error(err))
		return
	}
	switch e.Kind {
	case kindPush:
		b.deliver(&e)
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
	replies, missing := b.collect(ctx, id, w, stringList(v), b.cfg.ReplyTimeout)
	return replies, missing, nil
}
