package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pushhub/caddy-pushhub/hub"
)

// Idempotency keys live in Redis, so that a retry that reaches another
// node is recognised too.

// wireReceipt is a settled push's receipt as Redis keeps it.
type wireReceipt struct {
	Delivered int  `json:"d"`
	Dropped   int  `json:"x"`
	Stored    bool `json:"s"`
	Acked     int  `json:"a"`
	Unreached int  `json:"u"`
}

// claimPoll is how often a repeat looks whether the first push settled.
const claimPoll = 20 * time.Millisecond

// stale is how long a push may stay under way, beyond its wait for
// acknowledgements, before a repeat takes its key over: its node must have
// died. A push waits for the other nodes' receipts at most ReplyTimeout
// and its wait for acknowledgements from when its script ran (gather).
func (b *Broker) stale() time.Duration { return b.replyTimeout() + 10*time.Second }

// claimArgs are the arguments of claiming (scripts.go) for p's key.
func (b *Broker) claimArgs(p *hub.Publication) []any {
	return []any{p.IdempotencyKey, max(p.IdempotencyWindow.Milliseconds(), 1), b.stale().Milliseconds(), p.WaitAck.Milliseconds()}
}

// claim makes p the first push of its key, or returns the first one's
// receipt, waiting while it is under way; state is what a publish script
// found the key holding.
func (b *Broker) claim(ctx context.Context, p *hub.Publication, state string) (hub.Receipt, bool, error) {
	for {
		switch {
		case state == "first":
			return hub.Receipt{}, true, nil
		case strings.HasPrefix(state, "r:"):
			var w wireReceipt
			if err := json.Unmarshal([]byte(state[2:]), &w); err != nil {
				return hub.Receipt{}, false, errBadReply
			}
			return hub.Receipt{Delivered: w.Delivered, Dropped: w.Dropped, Stored: w.Stored, Acked: w.Acked, Unreached: w.Unreached}, false, nil
		default: // under way on some node
			select {
			case <-time.After(claimPoll):
			case <-ctx.Done():
				return hub.Receipt{}, false, ctx.Err()
			case <-b.stop:
				return hub.Receipt{}, false, hub.ErrBrokerStopped
			}
		}
		v, err := b.run(ctx, scriptClaim, b.claimArgs(p)...)
		if err != nil {
			return hub.Receipt{}, false, errUncheckedKey
		}
		state, _ = v.(string)
	}
}

// settle records the receipt of the push that claimed key, keeping the
// key's window. It does not wait: the settler writes it, with the other
// receipts waiting by then, in one pipeline. Until it is written, a repeat
// of the key waits for it (claim), so answering the push first loses
// nothing; a node that dies in between leaves its keys under way, and
// repeats take them over once stale. Close waits for pushes with a key,
// so their receipts are queued before the settler's last drain.
func (b *Broker) settle(key string, r hub.Receipt) {
	j, _ := json.Marshal(wireReceipt{r.Delivered, r.Dropped, r.Stored, r.Acked, r.Unreached})
	v := "r:" + string(j)
	b.settles <- keyValue{b.p + "idem:" + key, v} // the settler runs until Close, which waits for this push
}

// keyValue is a settled idempotency key and its value.
type keyValue struct{ key, value string }

// sendSettled writes settled keys as they come, as many as are waiting in
// one pipeline, then lets the next ones gather for settleLinger; once the
// broker stops, what is still queued, at once. A pipeline Redis did not
// take is tried again for a reply timeout, backing off: a key left under
// way makes a retry of its push wait until it is stale, then push again.
// (Not longer: a receipt written late could land on a later claim of the
// key, once the key's window ended.)
func (b *Broker) sendSettled() {
	hub.DrainBatches(b.settles, b.stop, maxBatch, func(batch []keyValue) {
		giveUp := time.Now().Add(b.replyTimeout())
		ok := b.writeSettled(batch, true)
		for backoff := 50 * time.Millisecond; !ok && time.Now().Before(giveUp); backoff = min(2*backoff, 500*time.Millisecond) {
			select {
			case <-time.After(backoff):
			case <-b.stop:
				giveUp = time.Time{} // one last try, as Close drains
			}
			ok = b.writeSettled(batch, false) // Redis was marked lost once
		}
		linger := time.NewTimer(settleLinger)
		defer linger.Stop()
		select {
		case <-linger.C:
		case <-b.stop:
		}
	})
}

// settleLinger is how long the settler waits after a pipeline of receipts
// before it takes the next: under a steady stream of pushes with keys, one
// pipeline carries the receipts of several instead of one each (a write
// and a read in the node and in Redis). The push was answered already; a
// repeat of its key waits for its receipt meanwhile (claimPoll is ten
// times as long).
const settleLinger = 2 * time.Millisecond

// writeSettled sets each key's receipt, keeping its expiry: a key whose
// window ended meanwhile stays gone. It reports whether Redis took them;
// with report, a failure marks Redis as lost.
func (b *Broker) writeSettled(batch []keyValue, report bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for _, kv := range batch {
		pipe.SetArgs(ctx, kv.key, kv.value, redis.SetArgs{Mode: "XX", KeepTTL: true})
	}
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			if report && !b.closed.Load() { // leaving: Redis is no longer this node's concern
				b.failed(err)
			}
			return false
		}
	}
	return true
}

var errUncheckedKey = &hub.Error{Code: "cluster_unavailable", Message: "the cluster's Redis cannot be reached to check the push's idempotency key: retry it later"}
