package redisbroker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// PublishBatch publishes clients' pushes (hub.BatchPublisher) in one
// pipelined round trip, in the batch's order, then does what Publish does
// after each script, in that order. A receipt that waits for other nodes
// is gathered on a goroutine of its own.
func (b *Broker) PublishBatch(batch []hub.QueuedPush) error {
	if !b.enter() {
		return hub.ErrBrokerStopped
	}
	defer b.leave()
	ctx := context.Background() // go-redis's timeouts bound it, and a timeout marks Redis as lost
	history := b.local.Settings().HistorySize > 0
	if !b.connected.Load() {
		for _, q := range batch {
			r, _, err := b.unrouted(ctx, q.Publication, history)
			q.Done(r, err)
		}
		return nil
	}
	calls := make([]pushScript, len(batch))
	scripts := make([]*scriptCall, len(batch))
	for i, q := range batch {
		calls[i] = b.pushCall(q.Publication, false)
		scripts[i] = &calls[i].scriptCall
	}
	b.evalPipelined(ctx, scripts)
	ran := time.Now()
	for i, q := range batch {
		calls[i].ran = ran
		b.afterBatched(ctx, q, calls[i], calls[i].v, calls[i].err)
	}
	return nil
}

// afterBatched is what follows one push's script in a batch; a panic in it
// is logged, and the pushes after it in the batch still get theirs.
func (b *Broker) afterBatched(ctx context.Context, q hub.QueuedPush, c pushScript, v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("panic after a client's publish in the cluster broker", zap.Any("panic", p), zap.Stack("stack"))
		}
	}()
	r, _, routed, err := b.afterScript(ctx, q.Publication, c, v, err)
	if !routed || c.w == nil {
		q.Done(r, err)
		return
	}
	b.goFn("receipt", func() { q.Done(b.gather(ctx, q.Publication, c, v, r), nil) })
}
