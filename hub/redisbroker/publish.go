package redisbroker

import (
	"context"
	"time"

	"github.com/pushhub/caddy-pushhub/hub"
)

// Publish delivers p on every node that holds its targets. Without history,
// this node delivers to its own connections at once and one script
// publishes to the other nodes holding a target uid (or to every node, for
// a broadcast or a group); with history, one script numbers and stores the
// push per uid and routes it to every node holding one, this node included,
// so that every node delivers numbered pushes in Redis's order. Either way
// the receipt adds up what each node reports. A push with an idempotency
// key claims it in the same script; a repeat gets the first push's receipt.
func (b *Broker) Publish(ctx context.Context, p *hub.Publication) (hub.Receipt, error) {
	// Close waits for pushes (those with a key write their receipts
	// before the broker stops).
	if !b.enter() {
		return hub.Receipt{}, hub.ErrBrokerStopped
	}
	defer b.leave()
	key := p.IdempotencyKey
	if key == "" {
		r, _, err := b.publish(ctx, p, false)
		return r, err
	}
	// Delivered here alone, a retry through another node would deliver it
	// again: while Redis is away a push with a key is refused, to be
	// retried. So is one whose script failed: it may have run, so its key
	// stays under way (a retry waits, and takes the key over once stale).
	r, prior, err := b.publish(ctx, p, true)
	if err == nil && prior != "" { // another push has the key
		var first bool
		if r, first, err = b.claim(ctx, p, prior); err != nil || !first {
			r.Duplicate = err == nil
			return r, err
		}
		r, _, err = b.publish(ctx, p, false) // the key is this push's now
	}
	if err == nil {
		b.settle(key, r)
	}
	return r, err
}

// publish is Publish but for a key taken: with claim, the script claims
// p's idempotency key first, and a key some other push holds is returned
// as prior, with nothing published. A push with a key is never delivered
// here alone: where its script cannot run, publish returns errUncheckedKey.
func (b *Broker) publish(ctx context.Context, p *hub.Publication, claim bool) (r hub.Receipt, prior string, err error) {
	if !b.connected.Load() {
		return b.unrouted(ctx, p, b.local.Settings().HistorySize > 0)
	}
	c := b.pushCall(p, claim)
	v, err := b.runPiped(ctx, c.s, c.args...)
	c.ran = time.Now()
	r, prior, routed, err := b.afterScript(ctx, p, c, v, err)
	if !routed || c.w == nil {
		return r, prior, err
	}
	return b.gather(ctx, p, c, v, r), "", nil
}

// unrouted is what becomes of a push that Redis did not route: one without
// a key is delivered here alone; one with a key is refused.
func (b *Broker) unrouted(ctx context.Context, p *hub.Publication, history bool) (hub.Receipt, string, error) {
	if p.IdempotencyKey != "" {
		return hub.Receipt{}, "", errUncheckedKey
	}
	return b.deliverAlone(ctx, p, history), "", nil
}

// pushScript is a push's script call, ready to run (its answer goes in the
// scriptCall when the pipe runs it), and what its answer is read with.
type pushScript struct {
	scriptCall
	id      uint64  // the envelope's: other nodes' receipts name it
	w       *waiter // for their receipts; nil when nobody reads them
	history bool
	ran     time.Time // when its answer came
}

// pushCall makes p's script call; with claim, it claims p's key first.
func (b *Broker) pushCall(p *hub.Publication, claim bool) pushScript {
	st := b.local.Settings()
	c := pushScript{id: b.nextID.Add(1), history: st.HistorySize > 0}
	claimArgs := noClaim
	if claim {
		claimArgs = b.claimArgs(p)
	}
	e := &envelope{Kind: kindPush, ID: c.id, Origin: b.node, Msg: encodeMessage(p.Message), WaitMS: p.WaitAck.Milliseconds(), NoReply: p.NoReceipt}
	if !p.NoReceipt {
		c.w = b.await(c.id)
	}
	t := p.Target
	switch {
	case !c.history && (t.All || t.Group != ""):
		e.Target, e.Group = targetAll, ""
		if !t.All {
			e.Target, e.Group = targetGroup, t.Group
		}
		c.s, c.args = scriptFanOut, append([]any{pushEnvelope(e), b.node}, claimArgs...)
	case t.All:
		e.Target = targetUIDs
		c.s, c.args = scriptPublishAll, append(b.numberingArgs(st, e), claimArgs...)
	case t.Group != "":
		e.Target = targetUIDs
		c.s, c.args = scriptPublishGroup, append(append(b.numberingArgs(st, e), t.Group), claimArgs...)
	default:
		e.Target = targetUIDs
		uids := t.UIDs
		if uids == nil {
			uids = []string{t.UID}
		}
		if c.history {
			c.s, c.args = scriptPublishUIDs, append(b.numberingArgs(st, e), claimArgs...)
		} else {
			c.s, c.args = scriptRouteUIDs, append([]any{b.node, routedEnvelope(e, uids)}, claimArgs...)
		}
		for _, u := range uids {
			c.args = append(c.args, u)
		}
	}
	return c
}

// afterScript reads a push's script answer v (or its error): this node's
// own connections get a push without history at once, in this order; a
// script that could not run leaves the push to unrouted. The receipt
// holds this node's counts; where routed, gather adds the other nodes'.
func (b *Broker) afterScript(ctx context.Context, p *hub.Publication, c pushScript, v any, err error) (r hub.Receipt, prior string, routed bool, _ error) {
	if s, taken := v.(string); err != nil || taken {
		if c.w != nil {
			b.forget(c.id)
		}
		if taken {
			return r, s, false, nil
		}
		r, _, err = b.unrouted(ctx, p, c.history)
		return r, "", false, err
	}
	if c.history {
		// The reply leads with how many uids were numbered and stored.
		if l, ok := v.([]any); ok && len(l) > 0 {
			n, _ := l[0].(int64)
			r.Stored = n > 0
		}
		return r, "", true, nil
	}
	return b.local.Deliver(ctx, p, hub.DeliverOptions{}), "", true, nil
}

// gather adds to r the receipts of the nodes the script answered v named,
// waiting for them up to the reply timeout and the push's ack wait from
// when the script ran: the other nodes wait for acknowledgements while
// this one does, so a push's receipt takes its ack wait once, not twice.
func (b *Broker) gather(ctx context.Context, p *hub.Publication, c pushScript, v any, r hub.Receipt) hub.Receipt {
	replies, missing := b.collect(ctx, c.id, c.w, stringList(v), b.replyTimeout()+p.WaitAck-time.Since(c.ran))
	for _, rep := range replies {
		r.Delivered += rep.Delivered
		r.Dropped += rep.Dropped
		r.Acked += rep.Acked
	}
	r.Unreached = missing
	if missing > 0 {
		b.unreached.Add(1)
	}
	return r
}

// noClaim are the claim arguments of a publish script for a push that
// claims no key.
var noClaim = []any{"", 0, 0, 0}

// numberingArgs are the arguments of the numbering scripts (pushes with
// history): history size, ttl, an epoch for new numberings, the message to
// keep, the origin (which gets the push through Redis too: every node
// delivers numbered pushes in Redis's order), and the envelope's head.
func (b *Broker) numberingArgs(st hub.Settings, e *envelope) []any {
	return []any{st.HistorySize, st.HistoryTTL.Milliseconds(), newEpoch(), string(e.Msg), b.node, head(e)}
}

// deliverAlone delivers a push to this node's connections only, because
// Redis cannot be reached: the receipt says other nodes were not
// (Unreached -1) and nothing was stored. A push numbered here is noted, so
// that the uid's numbering starts a new epoch once Redis is back.
func (b *Broker) deliverAlone(ctx context.Context, p *hub.Publication, history bool) hub.Receipt {
	b.unreached.Add(1)
	r := b.local.Deliver(ctx, p, hub.DeliverOptions{})
	r.Unreached = -1
	if history {
		b.divergedMu.Lock()
		switch t := p.Target; {
		case t.All:
			b.divergedAll = true
		case t.Group != "":
			uids, _ := b.local.UIDs(t.Group, "", 0)
			for _, u := range uids {
				b.diverged[u] = struct{}{}
			}
		case t.UIDs != nil:
			for _, u := range t.UIDs {
				b.diverged[u] = struct{}{}
			}
		default:
			b.diverged[t.UID] = struct{}{}
		}
		b.divergedMu.Unlock()
		if b.connected.Load() { // Redis came back meanwhile: renumber soon
			b.wakeHeartbeat()
		}
	}
	return r
}

// Kick closes uid's connections on every node.
func (b *Broker) Kick(ctx context.Context, uid, reason string) (int, error) {
	if !b.enter() {
		return 0, hub.ErrBrokerStopped
	}
	defer b.leave()
	closed := b.local.Kick(uid, reason)
	if !b.connected.Load() {
		return closed, nil
	}
	id := b.nextID.Add(1)
	w := b.await(id)
	v, err := b.run(ctx, scriptToHolders, uid, string(marshal(&envelope{Kind: kindKick, ID: id, Origin: b.node, UID: uid, Reason: reason})), b.node)
	if err != nil {
		b.forget(id)
		return closed, nil
	}
	replies, _ := b.collect(ctx, id, w, stringList(v), b.replyTimeout())
	for _, r := range replies {
		closed += r.Delivered
	}
	return closed, nil
}

// Join adds an online uid to a group for the whole cluster: Redis keeps the
// membership, and the nodes holding the uid are told, so that their
// connections of the uid get the group's pushes.
func (b *Broker) Join(ctx context.Context, uid, group string) error {
	if !b.enter() {
		return hub.ErrBrokerStopped
	}
	defer b.leave()
	ctx, cancel := b.whileAway(ctx)
	defer cancel()
	mu := b.members.of(uid, group)
	mu.Lock()
	defer mu.Unlock()
	v, err := b.joinScript(ctx, uid, group)
	if err != nil {
		if b.local.Online(uid) == 0 {
			return err
		}
		if lerr := b.local.Join(uid, group); lerr != nil { // on this node at least
			return lerr
		}
		if !scriptError(err) {
			b.remember(uid, group, true) // Redis learns of it when it answers again
		}
		return nil
	}
	b.forgetAway(uid, group)
	switch n, _ := v.(int64); n {
	case -1:
		return hub.ErrOffline
	case -2:
		return hub.ErrTooManyGroups
	}
	if b.local.Online(uid) > 0 {
		return b.local.Join(uid, group)
	}
	return nil
}

// joinScript adds uid to group in Redis and tells the nodes holding it; it
// answers -1 when the uid is offline, -2 over the limits of groups.
func (b *Broker) joinScript(ctx context.Context, uid, group string) (any, error) {
	st := b.local.Settings()
	ev := string(marshal(&envelope{Kind: kindJoin, UID: uid, Group: group}))
	return b.run(ctx, scriptJoin, uid, group, ev, b.node, st.MaxGroupsPerUID, st.MaxGroups)
}

// leaveScript takes uid out of group in Redis and tells the nodes holding
// it.
func (b *Broker) leaveScript(ctx context.Context, uid, group string) (any, error) {
	ev := string(marshal(&envelope{Kind: kindLeave, UID: uid, Group: group}))
	return b.run(ctx, scriptLeave, uid, group, ev, b.node)
}

// whileAway bounds a join or leave tightly while Redis is known to be
// away, so that one queued in a client's lane does not hold up the
// commands behind it for Redis's full timeouts; if Redis is in fact back,
// it still has time to answer.
func (b *Broker) whileAway(ctx context.Context) (context.Context, context.CancelFunc) {
	if b.connected.Load() {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, awayTimeout)
}

// awayTimeout is how long a join or leave waits for Redis while it is
// known to be away.
const awayTimeout = 250 * time.Millisecond

// Leave takes uid out of a group for the whole cluster.
func (b *Broker) Leave(ctx context.Context, uid, group string) (bool, error) {
	if !b.enter() {
		return false, hub.ErrBrokerStopped
	}
	defer b.leave()
	ctx, cancel := b.whileAway(ctx)
	defer cancel()
	mu := b.members.of(uid, group)
	mu.Lock()
	defer mu.Unlock()
	local := b.local.Leave(uid, group)
	v, err := b.leaveScript(ctx, uid, group)
	if err != nil {
		if !scriptError(err) {
			b.remember(uid, group, false) // Redis learns of it when it answers again
		}
		return local, err
	}
	b.forgetAway(uid, group)
	l, _ := v.([]any)
	was := local
	if len(l) > 0 {
		n, _ := l[0].(int64)
		was = was || n == 1
	}
	return was, nil
}
