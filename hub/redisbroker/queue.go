package redisbroker

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// The queue of clients' commands (hub.Queue): a client's publishes, joins
// and leaves are handed over by the goroutine that read them, the hub's
// poller, which must not wait for Redis. One goroutine carries them out in
// the order they came, so each client's commands take effect in its order;
// publishes that follow one another go to Redis in one pipelined round
// trip.

// queued is one command: a push (p, with done for its receipt if anyone
// reads it) or anything else (fn).
type queued struct {
	p    *hub.Publication
	done func(hub.Receipt, error)
	fn   func()
}

const (
	queueSize = 4096 // commands waiting; a reader that finds it full waits its turn
	// queueTimeout bounds one batch's round trip to Redis.
	queueTimeout = 5 * time.Second
)

// PublishLater publishes p after the commands queued before it; done, if
// not nil, gets the receipt. It reports false once the broker has stopped:
// the caller then publishes through the hub's current broker itself.
func (b *Broker) PublishLater(p *hub.Publication, done func(hub.Receipt, error)) bool {
	return b.enqueue(queued{p: p, done: done})
}

// Later runs fn after the commands queued before it; false once the broker
// has stopped.
func (b *Broker) Later(fn func()) bool { return b.enqueue(queued{fn: fn}) }

func (b *Broker) enqueue(q queued) bool {
	// Close waits for this: nothing is queued once the queue's goroutine
	// has taken its last command.
	b.pending.RLock()
	defer b.pending.RUnlock()
	if b.closed.Load() {
		return false
	}
	b.queue <- q
	return true
}

// runQueue carries out the queued commands, in order, until the broker
// stops; then what is left. Publishes that follow one another go in one
// batch.
func (b *Broker) runQueue() {
	for {
		cmds, ok := takeBatch(b.queue, b.stop)
		for len(cmds) > 0 {
			n := 1
			for cmds[0].p != nil && n < len(cmds) && cmds[n].p != nil {
				n++
			}
			b.carryOut(cmds[:n])
			cmds = cmds[n:]
		}
		if !ok {
			return
		}
	}
}

// carryOut runs one command, or a batch of publishes, recovering a panic
// so that the commands after it still run.
func (b *Broker) carryOut(batch []queued) {
	defer func() {
		if v := recover(); v != nil {
			b.log.Error("panic in a client's command in the cluster broker", zap.Any("panic", v), zap.Stack("stack"))
		}
	}()
	if batch[0].fn != nil {
		batch[0].fn()
		return
	}
	b.publishBatch(batch)
}

// publishBatch publishes a batch of pushes without keys in one pipelined
// round trip, then does what Publish does after each script, in order. A
// receipt that waits for other nodes is gathered on a goroutine of its own.
func (b *Broker) publishBatch(batch []queued) {
	ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
	defer cancel()
	history := b.local.Settings().HistorySize > 0
	finish := func(q queued, r hub.Receipt, err error) {
		if q.done != nil {
			q.done(r, err)
		}
	}
	if !b.connected.Load() {
		for _, q := range batch {
			r, _, err := b.unrouted(ctx, q.p, history)
			finish(q, r, err)
		}
		return
	}
	calls := make([]pushScript, len(batch))
	cmds := make([]*redis.Cmd, len(batch))
	pipe := b.rdb.Pipeline()
	for i, q := range batch {
		calls[i] = b.pushCall(q.p, false)
		cmds[i] = calls[i].script.EvalSha(ctx, pipe, b.keys, append([]any{b.p}, calls[i].args...)...)
	}
	_, _ = pipe.Exec(ctx)
	for i, q := range batch {
		c := calls[i]
		v, err := cmds[i].Result()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// Redis lost its scripts (a restart or SCRIPT FLUSH): this
			// one runs on its own, which loads it again.
			v, err = b.run(ctx, c.script, c.args...)
		} else if err != nil && err != redis.Nil && ctx.Err() == nil && !scriptError(err) {
			b.failed(err)
		}
		if err == redis.Nil {
			v, err = nil, nil
		}
		r, _, routed, err := b.afterScript(ctx, q.p, c, v, err)
		if !routed || c.w == nil {
			finish(q, r, err)
			continue
		}
		b.goFn("receipt", func() { finish(q, b.gather(context.Background(), q.p, c, v, r), nil) })
	}
}
