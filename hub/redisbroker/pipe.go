package redisbroker

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// A scriptPipe carries the push scripts of concurrent callers (API
// requests, each on its own goroutine) to Redis in shared pipelines: while
// pipeInFlight pipelines are out, a caller's script waits and goes out
// with the others that came meanwhile, in one write and one read, instead
// of a round trip and a pooled connection each. Under light load nothing
// waits: a caller runs its own script at once, as it would alone.
//
// It has no goroutine of its own: the caller that finds room leads its
// batch; one that finishes a batch hands the scripts waiting by then to
// the first of their callers, who leads them in turn.
type scriptPipe struct {
	mu       sync.Mutex
	waiting  []*pipedScript
	inFlight int
}

// pipeInFlight is how many pipelines of scripts may be out at once. Redis
// runs scripts one at a time: more pipelines would only split batches.
const pipeInFlight = 2

// pipeMax bounds the scripts in one pipeline; more wait for the next.
const pipeMax = 128

// A pipedScript is one caller's script and, once run, its answer.
type pipedScript struct {
	scriptCall
	// wake is signalled once: the answer is in, or lead holds a batch
	// (this script first) for this caller to run.
	wake chan struct{}
	lead []*pipedScript
}

// runPiped is run for a push's script: it shares a pipeline with the
// scripts of other callers waiting at the same time. Once sent, a script
// is waited for whatever ctx says (go-redis's timeouts bound it), since
// its answer may still say where the push went.
func (b *Broker) runPiped(ctx context.Context, s *redis.Script, args ...any) (any, error) {
	c := &pipedScript{scriptCall: scriptCall{s: s, args: args}}
	p := &b.pipe
	p.mu.Lock()
	if p.inFlight < pipeInFlight {
		p.inFlight++
		p.mu.Unlock()
		b.leadPipe(ctx, []*pipedScript{c})
		return c.v, c.err
	}
	c.wake = make(chan struct{}, 1)
	p.waiting = append(p.waiting, c)
	p.mu.Unlock()
	<-c.wake
	if c.lead != nil {
		b.leadPipe(ctx, c.lead)
	}
	return c.v, c.err
}

// leadPipe runs batch, whose first script is the caller's, wakes the other
// callers with their answers, and hands the scripts that waited meanwhile
// on (or frees its place).
func (b *Broker) leadPipe(ctx context.Context, batch []*pipedScript) {
	defer b.handOn(batch) // last, whatever happens before it
	calls := make([]*scriptCall, len(batch))
	for i, c := range batch {
		calls[i] = &c.scriptCall
	}
	done := false
	defer func() {
		if v := recover(); v != nil {
			b.log.Error("panic running the cluster's push scripts", zap.Any("panic", v), zap.Stack("stack"))
		}
		if !done {
			for _, c := range calls {
				c.v, c.err = nil, errPipePanic
			}
		}
	}()
	if !b.connected.Load() {
		// Redis was lost while these waited: none was sent, so each is
		// what a push made now would be (publish's unrouted), without
		// waiting out go-redis's timeouts batch after batch.
		for _, c := range calls {
			c.err = errRedisAway
		}
		done = true
		return
	}
	// Once sent, a script is waited for, the leader's included, whatever
	// their callers' contexts say: its answer says where the push went.
	b.evalPipelined(context.WithoutCancel(ctx), calls)
	done = true
}

// handOn wakes the callers of batch but its leader, whose answers are in,
// and gives the scripts waiting by now to the first of their callers to
// lead, or frees the leader's place.
func (b *Broker) handOn(batch []*pipedScript) {
	for _, c := range batch[1:] {
		c.wake <- struct{}{}
	}
	p := &b.pipe
	p.mu.Lock()
	if len(p.waiting) == 0 {
		p.inFlight--
		p.mu.Unlock()
		return
	}
	n := min(len(p.waiting), pipeMax)
	next := p.waiting[:n:n]
	p.waiting = append([]*pipedScript(nil), p.waiting[n:]...)
	p.mu.Unlock()
	next[0].lead = next
	next[0].wake <- struct{}{}
}

// errPipePanic answers the scripts of a batch whose run panicked.
var errPipePanic = errors.New("redisbroker: running the push scripts panicked")

// errRedisAway answers the scripts of a batch not sent because Redis was
// lost meanwhile.
var errRedisAway = errors.New("redisbroker: the cluster's Redis is away")

// A scriptCall is one push script of a pipeline and its answer, as run
// gives it.
type scriptCall struct {
	s    *redis.Script
	args []any // after the hub's prefix
	v    any
	err  error
}

// evalPipelined runs the push scripts of calls in one pipelined round trip
// (one alone, without a pipeline), in order, and answers each as run
// would: a failure to reach Redis is reported, and a script Redis lost (a
// restart) is loaded and run again. go-redis does not send them again
// after a timeout (onceCmd): a script that may have run is not run twice.
func (b *Broker) evalPipelined(ctx context.Context, calls []*scriptCall) {
	b.pushScripts.Add(uint64(len(calls)))
	if len(calls) == 1 {
		c := calls[0]
		c.v, c.err = b.runOnce(ctx, c.s, c.args)
		return
	}
	// A script Redis does not hold would fail in the pipeline and run
	// again after the ones behind it: load it first.
	for _, c := range calls {
		if err := b.scripts.ensure(ctx, b.rdb, c.s); err != nil {
			break // the scripts fail in the pipeline too
		}
	}
	cmds := make([]*redis.Cmd, len(calls))
	pipe := b.rdb.Pipeline()
	for i, c := range calls {
		cmds[i] = b.scriptCmd(ctx, c.s, c.args)
		_ = pipe.Process(ctx, onceCmd{cmds[i]})
	}
	_, _ = pipe.Exec(ctx)
	b.pushTrips.Add(1)
	lost := false // Redis lost its scripts (a restart): each is loaded once, then run again
	for i, c := range calls {
		v, err := cmds[i].Result()
		if err != nil && noScript(err) {
			if !lost {
				b.scripts.forget()
				lost = true
			}
			v, err = b.reloadAndRun(ctx, c.s, c.args)
		}
		c.v, c.err = b.answer(ctx, v, err)
	}
}

// runOnce runs one push script in its own round trip, loading it first if
// Redis lost it.
func (b *Broker) runOnce(ctx context.Context, s *redis.Script, args []any) (any, error) {
	v, err := b.evalOnce(ctx, s, args)
	if err != nil && noScript(err) {
		b.scripts.forget()
		v, err = b.reloadAndRun(ctx, s, args)
	}
	return b.answer(ctx, v, err)
}

// reloadAndRun loads s into Redis unless it is known to be there again,
// and runs it once.
func (b *Broker) reloadAndRun(ctx context.Context, s *redis.Script, args []any) (any, error) {
	if err := b.scripts.ensure(ctx, b.rdb, s); err != nil {
		return nil, err
	}
	return b.evalOnce(ctx, s, args)
}

// evalOnce sends s's EVALSHA once.
func (b *Broker) evalOnce(ctx context.Context, s *redis.Script, args []any) (any, error) {
	cmd := b.scriptCmd(ctx, s, args)
	b.pushTrips.Add(1)
	_ = b.rdb.Process(ctx, onceCmd{cmd})
	return cmd.Result()
}

// answer is a script's answer as its caller takes it: none for redis.Nil,
// and a failure to reach Redis reported (a caller that gave up, or a
// script's own error, says nothing of Redis).
func (b *Broker) answer(ctx context.Context, v any, err error) (any, error) {
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, redis.Nil):
		return nil, nil
	}
	if ctx.Err() == nil && !scriptError(err) {
		b.failed(err)
	}
	return nil, err
}

// scriptCmd is s's EVALSHA with the hub's keys and prefix before args.
func (b *Broker) scriptCmd(ctx context.Context, s *redis.Script, args []any) *redis.Cmd {
	a := make([]any, 0, 3+len(b.keys)+1+len(args))
	a = append(a, "evalsha", s.Hash(), len(b.keys))
	for _, k := range b.keys {
		a = append(a, k)
	}
	a = append(a, b.p)
	return redis.NewCmd(ctx, append(a, args...)...)
}

// onceCmd is a push script that go-redis must not send again after a
// timeout or a broken connection: it may have run, and a second run would
// deliver the push twice. Its failure is the broker's to handle (a push
// delivered here alone, or refused when it has a key).
type onceCmd struct{ *redis.Cmd }

func (onceCmd) NoRetry() bool { return true }

// noScript tells Redis's answer to a script it does not hold.
func noScript(err error) bool { return strings.HasPrefix(err.Error(), "NOSCRIPT") }

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
