package redisbroker

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
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
	for i, q := range batch {
		calls[i] = b.pushCall(q.Publication, false)
	}
	// A script Redis does not hold would fail in the pipeline and run
	// again after the ones behind it: load it first.
	for _, c := range calls {
		if err := b.scripts.ensure(ctx, b.rdb, c.script); err != nil {
			break // the scripts fail in the pipeline too, and are delivered here alone
		}
	}
	cmds := make([]*redis.Cmd, len(batch))
	pipe := b.rdb.Pipeline()
	for i, c := range calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, b.keys, append([]any{b.p}, c.args...)...)
	}
	_, _ = pipe.Exec(ctx)
	for i, q := range batch {
		c := calls[i]
		v, err := cmds[i].Result()
		switch {
		case err == redis.Nil:
			v, err = nil, nil
		case err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT"):
			// Redis lost its scripts since they were loaded (a restart):
			// this one runs on its own, which loads it again.
			b.scripts.forget()
			v, err = b.run(ctx, c.script, c.args...)
		case err != nil && !scriptError(err):
			b.failed(err)
		}
		b.afterBatched(ctx, q, c, v, err)
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

// loadedScripts remembers which scripts Redis holds, so that a pipeline
// of EVALSHA finds them all.
type loadedScripts struct {
	mu     sync.Mutex
	loaded map[*redis.Script]bool
}

// ensure loads s into Redis unless it is known to be there.
func (l *loadedScripts) ensure(ctx context.Context, rdb redis.UniversalClient, s *redis.Script) error {
	l.mu.Lock()
	known := l.loaded[s]
	l.mu.Unlock()
	if known {
		return nil
	}
	if err := s.Load(ctx, rdb).Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if l.loaded == nil {
		l.loaded = make(map[*redis.Script]bool)
	}
	l.loaded[s] = true
	l.mu.Unlock()
	return nil
}

// forget is told that Redis lost its scripts.
func (l *loadedScripts) forget() {
	l.mu.Lock()
	l.loaded = nil
	l.mu.Unlock()
}
