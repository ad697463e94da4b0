package redisbroker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// Requests and their replies: a node that publishes a push (or a kick, or
// a stats request) to other nodes waits for each of them to say what it
// did, for a bounded time.

// waiter collects the replies to one request.
type waiter struct {
	want    map[string]bool // nodes expected to answer and yet to
	listed  bool            // want holds the request's nodes
	replies []reply
	done    chan struct{} // closed when every node listed answered
	closed  bool
}

// await registers a request before it is published, so that no reply can
// come before its waiter.
func (b *Broker) await(id uint64) *waiter {
	w := &waiter{want: map[string]bool{}, done: make(chan struct{})}
	b.waitMu.Lock()
	b.waiters[id] = w
	b.waitMu.Unlock()
	return w
}

// collect waits for the nodes the request went to, at most until ctx ends
// or within; it returns the replies and how many nodes did not answer.
func (b *Broker) collect(ctx context.Context, id uint64, w *waiter, nodes []string, within time.Duration) ([]reply, int) {
	b.waitMu.Lock()
	for _, n := range nodes {
		w.want[n] = true
	}
	for _, r := range w.replies { // replies that came before the node list
		delete(w.want, r.Node)
	}
	w.listed = true
	if len(w.want) == 0 && !w.closed {
		w.closed = true
		close(w.done)
	}
	b.waitMu.Unlock()

	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-w.done:
	case <-timer.C:
	case <-ctx.Done():
	case <-b.stop:
	}
	b.waitMu.Lock()
	delete(b.waiters, id)
	got := w.replies
	missing := len(w.want)
	b.waitMu.Unlock()
	return got, missing
}

// forget drops a request that was never published.
func (b *Broker) forget(id uint64) {
	b.waitMu.Lock()
	delete(b.waiters, id)
	b.waitMu.Unlock()
}

// received files a reply with its request.
func (b *Broker) received(r reply) {
	b.waitMu.Lock()
	defer b.waitMu.Unlock()
	w := b.waiters[r.ID]
	if w == nil {
		return // late: the request gave up on it
	}
	w.replies = append(w.replies, r)
	delete(w.want, r.Node)
	// Before collect has listed the nodes, an empty want means nothing.
	if w.listed && len(w.want) == 0 && !w.closed {
		w.closed = true
		close(w.done)
	}
}

// outReply is a reply on its way to its origin.
type outReply struct {
	origin string
	reply
}

// reply answers a request of origin: directly when this node asked it,
// otherwise through the reply sender, which batches replies per origin.
func (b *Broker) reply(origin string, r reply) {
	r.Node = b.node
	if origin == b.node {
		b.received(r)
		return
	}
	select {
	case b.replies <- outReply{origin, r}:
	case <-b.stop:
	}
}

// sendReplies publishes replies, as many as are waiting in one envelope
// per origin: under load, one publish answers many pushes.
func (b *Broker) sendReplies() { hub.DrainBatches(b.replies, b.stop, maxBatch, b.writeReplies) }

// writeReplies publishes replies, one envelope per origin.
func (b *Broker) writeReplies(rs []outReply) {
	batch := map[string][]reply{}
	for _, r := range rs {
		batch[r.origin] = append(batch[r.origin], r.reply)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for origin, rs := range batch {
		pipe.Publish(ctx, b.p+"c:"+origin, repliesEnvelope(rs))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if !b.closed.Load() { // leaving: Redis is no longer this node's concern
			b.failed(err)
		}
		b.log.Debug("could not send replies", zap.Error(err))
	}
}

// maxBatch bounds what one pipeline of replies or receipts carries.
const maxBatch = 512
