package redisbroker

import (
	"context"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// Attached records uid's first connection on this node before its welcome
// is sent, and joins it here to the groups it belongs to in the cluster.
func (b *Broker) Attached(ctx context.Context, uid string) error {
	b.countMu.RLock()
	v, err := b.run(ctx, scriptAttach, b.node, b.local.Online(uid), uid)
	b.countMu.RUnlock()
	if err != nil {
		b.Changed(uid) // recorded once Redis is back
		return err
	}
	for _, g := range stringList(v) {
		_ = b.local.Join(uid, g)
	}
	return nil
}

// Changed queues uid for the announcer, which records this node's count of
// its connections.
func (b *Broker) Changed(uid string) {
	if b.local.Online(uid) == 0 {
		b.wentOffline(uid)
	}
	b.changedMu.Lock()
	b.changed[uid] = struct{}{}
	b.changedMu.Unlock()
	b.wakeAnnouncer()
}

// wakeAnnouncer asks the announcer to record the queued counts.
func (b *Broker) wakeAnnouncer() {
	select {
	case b.changedCh <- struct{}{}:
	default:
	}
}

// announce records the counts of changed uids, many per script: what the
// node holds when it gets to them, so that calls out of order do not
// matter.
func (b *Broker) announce() {
	for {
		select {
		case <-b.changedCh:
		case <-b.stop:
			b.flushChanged() // a closing hub's last departures
			return
		}
		b.flushChanged()
	}
}

// flushChanged records the counts of the changed uids; on failure they
// stay queued for the next try. While Redis is away (or the node has not
// entered again), they wait for the heartbeat's re-announcement.
func (b *Broker) flushChanged() {
	if b.connected.Load() {
		b.recordChanged()
	}
}

// recordChanged records the counts of the uids queued when it began and
// reports whether it recorded them all; those it could not stay queued.
// One runs at a time (flushMu), and none of its scripts while a first
// connection is recorded by Attached (countMu).
func (b *Broker) recordChanged() bool {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.changedMu.Lock()
	uids := make([]string, 0, len(b.changed))
	for u := range b.changed {
		uids = append(uids, u)
	}
	clear(b.changed)
	b.changedMu.Unlock()
	ttl := b.historyTTL()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(uids) > 0 {
		n := min(len(uids), 256)
		b.countMu.Lock()
		args := []any{b.node, ttl}
		for _, u := range uids[:n] {
			args = append(args, u, b.local.Online(u))
		}
		_, err := b.run(ctx, scriptCounts, args...)
		b.countMu.Unlock()
		if err != nil {
			b.requeue(uids)
			return false
		}
		uids = uids[n:]
	}
	return true
}

func (b *Broker) requeue(uids []string) {
	b.changedMu.Lock()
	for _, u := range uids {
		b.changed[u] = struct{}{}
	}
	b.changedMu.Unlock()
}

// Installed is called once the broker serves its hub, in place of another
// (a reload that changed the cluster). Connections that came or went while
// both ran were told to the one before: the heartbeat, woken, records
// again every uid this node holds and every one Redis says it holds, and
// their groups here (adopted), as soon as Redis answers.
func (b *Broker) Installed() {
	b.adopt.Store(true)
	b.wakeHeartbeat()
}

// adopted records again every uid this node holds, and every one Redis
// says it holds, with their groups here.
func (b *Broker) adopted(ctx context.Context) error {
	held, err := b.rdb.SMembers(ctx, b.p+"n:"+b.node).Result()
	if err != nil {
		return err
	}
	for _, u := range held {
		b.Changed(u)
	}
	return b.reannounce(ctx, true)
}

// historyTTL is the ttl of a departed uid's numbering and history, in ms; 0
// with history off.
func (b *Broker) historyTTL() int64 {
	st := b.local.Settings()
	if st.HistorySize == 0 {
		return 0
	}
	return st.HistoryTTL.Milliseconds()
}

// Online counts uid's connections on the live nodes.
func (b *Broker) Online(ctx context.Context, uid string) (int, error) {
	v, err := b.run(ctx, scriptOnline, uid)
	if err != nil {
		return b.local.Online(uid), err
	}
	n, _ := v.(int64)
	return int(n), nil
}

// UIDs pages the cluster's online uids, or a group's members.
func (b *Broker) UIDs(ctx context.Context, group, after string, limit int) ([]string, bool, error) {
	if limit <= 0 {
		limit = 1 << 20
	}
	v, err := b.run(ctx, scriptUIDs, group, after, limit)
	if err != nil {
		return nil, false, err
	}
	uids := stringList(v)
	if len(uids) > limit {
		return uids[:limit], true, nil
	}
	return uids, false, nil
}

// heartbeat renews the node's lease every third of it, cleans up after
// dead nodes, and finds Redis again after it was lost: then it announces
// the node's uids again (Redis may have lost them) and starts new epochs
// for uids numbered here meanwhile. Failed attempts back off with jitter.
func (b *Broker) heartbeat() {
	// No lease and no uids announced before the node's channels are live:
	// another node would route pushes here that nobody reads.
	select {
	case <-b.stop:
		return
	case <-b.subscribed:
	}
	backoff := 50 * time.Millisecond
	next := time.Duration(0)
	for {
		timer := time.NewTimer(next)
		select {
		case <-b.stop:
			timer.Stop()
			return
		case <-b.wake:
			timer.Stop()
		case <-timer.C:
		}
		every := b.lease() / 3 // a reload may change it
		began := time.Now()
		if b.beat() {
			// Counted from the renewal, at the beat's start: what follows
			// it (re-announcing, cleaning up, replaying) against a slow
			// Redis must not let the lease run out.
			backoff = 50 * time.Millisecond
			next = max(every-every/10+rand.N(every/5)-time.Since(began), 0)
			continue
		}
		next = backoff/2 + rand.N(backoff)
		backoff = min(2*backoff, every)
	}
}

// beat renews the lease once; it reports whether Redis answered.
func (b *Broker) beat() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lease := b.lease().Milliseconds()
	v, err := b.run(ctx, scriptHeartbeat, b.node, lease, "0")
	if err != nil {
		return false
	}
	unknown, _ := v.(int64)
	if !b.connected.Load() || unknown == 1 {
		// Redis is back, or lost this node's state: the node delivers to
		// its own connections only until Redis routes to it again, which
		// it does once the node's inbox is live again (go-redis subscribes
		// again on its own, after the connection it lost) and Redis knows
		// its uids and their groups: then the node enters.
		if b.connected.Swap(false) { // connected, yet Redis does not know the node
			b.log.Warn(lostState)
		}
		b.scripts.forget() // a Redis that lost this node's state may have lost its scripts too
		err := b.echo(ctx)
		if err == nil {
			err = b.reannounce(ctx, unknown == 1)
		}
		if err == nil && unknown == 1 {
			_, err = b.run(ctx, scriptHeartbeat, b.node, lease, "1")
		}
		if err != nil {
			b.connected.Store(false)
			return false
		}
		if b.connected.CompareAndSwap(false, true) && b.reconnects.Add(1) > 1 {
			b.log.Info("the cluster's Redis is back: routing across nodes again")
		}
		b.wakeAnnouncer() // for counts that changed during the re-announcement
	}
	if b.adopt.Load() {
		if err := b.adopted(ctx); err == nil {
			b.adopt.Store(false)
		}
	}
	// Pushes that found the node not yet entered again, while it was
	// entering, were numbered here.
	if b.diverging() {
		_ = b.renumber(ctx)
	}
	b.reap(ctx)
	b.replayAway() // a failure marks Redis as lost, and what is left waits for the next beat
	b.readyOnce.Do(func() { close(b.ready) })
	return true
}

// echo publishes a message to the node's own inbox and waits for it to
// come back through the subscription: an error means the inbox is not live.
func (b *Broker) echo(ctx context.Context) error {
	id := b.nextID.Add(1)
	w := b.await(id)
	if err := b.rdb.Publish(ctx, b.inbox, marshal(&envelope{Kind: kindEcho, ID: id, Origin: b.node})).Err(); err != nil {
		b.forget(id)
		b.failed(err)
		return err
	}
	// An echo published before go-redis has subscribed again is lost: a
	// short wait first (the subscriber wakes the heartbeat when it is back),
	// longer ones after each miss, in case Redis is only slow.
	wait := min(b.echoWait, b.replyTimeout())
	if _, missing := b.collect(ctx, id, w, []string{b.node}, wait); missing > 0 {
		b.echoWait = min(2*b.echoWait, b.replyTimeout())
		return errNotSubscribed
	}
	b.echoWait = firstEchoWait
	return nil
}

// firstEchoWait is how long echo first waits for its message.
const firstEchoWait = 200 * time.Millisecond

var errNotSubscribed = &hub.Error{Code: "cluster_unavailable", Message: "the node's inbox is not subscribed"}

// reannounce records every uid this node holds (and, where Redis lost the
// node's state, their groups here), then starts new epochs for the uids
// it numbered on its own while Redis was away. Counts that change while it
// runs are left to the announcer.
func (b *Broker) reannounce(ctx context.Context, lost bool) error {
	b.local.EachUID(func(uid string) { b.Changed(uid) })
	if !b.recordChanged() {
		return errNotAnnounced
	}
	if lost {
		if err := b.regroup(ctx); err != nil {
			return err
		}
	}
	return b.renumber(ctx)
}

// renumber starts new epochs for the uids this node numbered on its own
// while Redis was away (or before the node entered again).
func (b *Broker) renumber(ctx context.Context) error {
	b.divergedMu.Lock()
	uids := make([]string, 0, len(b.diverged))
	for u := range b.diverged {
		uids = append(uids, u)
	}
	if b.divergedAll {
		b.local.EachUID(func(uid string) { uids = append(uids, uid) })
	}
	clear(b.diverged)
	b.divergedAll = false
	b.divergedMu.Unlock()
	for len(uids) > 0 {
		n := min(len(uids), 256)
		args := []any{newEpoch()}
		for _, u := range uids[:n] {
			args = append(args, u, b.local.Seq(u))
		}
		if _, err := b.run(ctx, scriptDiverged, args...); err != nil {
			b.divergedMu.Lock()
			for _, u := range uids {
				b.diverged[u] = struct{}{}
			}
			b.divergedMu.Unlock()
			return err
		}
		uids = uids[n:]
	}
	return nil
}

// regroup records again the groups of the uids this node holds, for a
// Redis that lost them (restarted, flushed, or cleaned up after the node
// when its lease ended, or another cluster's, after a reload): those the
// uids' connections here are in. Groups are read and written under
// countMu, so that a uid whose last connection closes meanwhile is taken
// out of them by the count that follows; and Redis skips a uid it does not
// have on this node.
func (b *Broker) regroup(ctx context.Context) error {
	var uids []string
	b.local.EachUID(func(uid string) { uids = append(uids, uid) })
	for len(uids) > 0 {
		n := min(len(uids), 128)
		if err := b.regroupSome(ctx, uids[:n]); err != nil {
			return err
		}
		uids = uids[n:]
	}
	return nil
}

func (b *Broker) regroupSome(ctx context.Context, uids []string) error {
	b.countMu.Lock()
	defer b.countMu.Unlock()
	args := []any{b.node}
	for _, uid := range uids {
		if gs := b.local.Groups(uid); len(gs) > 0 {
			args = append(args, uid, len(gs))
			for _, g := range gs {
				args = append(args, g)
			}
		}
	}
	if len(args) == 1 {
		return nil
	}
	_, err := b.run(ctx, scriptRegroup, args...)
	return err
}

// diverging tells whether uids numbered here wait for renumber.
func (b *Broker) diverging() bool {
	b.divergedMu.Lock()
	defer b.divergedMu.Unlock()
	return len(b.diverged) > 0 || b.divergedAll
}

var errNotAnnounced = &hub.Error{Code: "cluster_unavailable", Message: "the node's uids could not be announced"}

// reap cleans up after nodes whose lease has ended, a bounded amount per
// script.
func (b *Broker) reap(ctx context.Context) {
	ttl := b.historyTTL()
	for range 100 {
		v, err := b.run(ctx, scriptReap, ttl, 1000)
		if err != nil {
			return
		}
		if n, _ := v.(int64); n == 0 {
			return
		}
		b.log.Debug("cleaned up after a node whose lease ended", zap.Int64("uids", v.(int64)))
	}
}

// Recover returns uid's position in Redis and what the client missed,
// from Redis's history: after since, or without it the uid's mailbox.
func (b *Broker) Recover(ctx context.Context, uid string, since *hub.Position) (hub.Recovery, error) {
	st := b.local.Settings()
	from, epoch := "", ""
	if since != nil {
		from, epoch = formatUint(since.Offset), since.Epoch
	}
	v, err := b.run(ctx, scriptRecover, uid, from, epoch, newEpoch(), st.HistoryTTL.Milliseconds())
	if err != nil {
		return hub.Recovery{}, err
	}
	l, _ := v.([]any)
	if len(l) < 4 {
		return hub.Recovery{}, errBadReply
	}
	seq, _ := l[0].(int64)
	cur, _ := l[1].(string)
	now, _ := l[2].(int64)
	start, _ := l[3].(int64)
	rec := hub.Recovery{Position: hub.Position{Epoch: cur, Offset: uint64(seq)}}
	if since == nil {
		if start < 0 || uint64(start) >= rec.Position.Offset {
			return rec, nil // no mailbox, or an empty one
		}
		since = &hub.Position{Epoch: cur, Offset: uint64(start)}
	}
	cutoff := now - st.HistoryTTL.Milliseconds()
	for _, x := range l[4:] {
		s, _ := x.(string)
		m, ok := parseStored(s)
		if ok && m.at >= cutoff {
			rec.Messages = append(rec.Messages, m.StoredMessage)
		}
	}
	rec.Resume = resumeOf(*since, rec.Position, len(rec.Messages))
	return rec, nil
}

var errBadReply = &hub.Error{Code: "cluster_unavailable", Message: "an unexpected reply from the cluster's Redis"}
