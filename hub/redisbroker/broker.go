// Package redisbroker is the cluster mode of caddy-pushhub: a hub.Broker on
// Redis that makes several Caddy processes (nodes) behave as one hub.
//
// Each node keeps, under a lease renewed by heartbeat, which uids it holds
// in a cluster-wide index (uid -> nodes), so a push to a uid is published
// only to the nodes that hold it: one script, one round trip, whatever the
// number of nodes. Broadcasts and group pushes without history go to every
// node on one channel. Presence (online, the uid list, stats) answers for
// the whole cluster; a node that dies drops out of presence and routing
// when its lease ends, and a live node cleans up after it.
//
// With history on, Redis numbers every push per uid (an epoch and an
// offset) and keeps the uid's last messages: a client resuming on any node
// gets what it missed, and a store that lost its data (a restart, a flush)
// starts new epochs, which resuming clients are told about. Numbered
// pushes reach every node, the origin included, through Redis in Redis's
// order, so every connection of a uid sees them in sequence.
//
// When Redis is away, each node goes on delivering to its own connections,
// says so in receipts (Unreached -1), stats, logs and metrics, and tries
// again with backoff and jitter; once back, it announces its uids again and
// routing resumes. Receipts report "stored" only once Redis has the
// message.
package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// Broker is a hub's cluster broker on Redis. Make it with New; it is
// installed with Hub.SetBroker and stopped with Close.
type Broker struct {
	cfg    Config
	local  hub.Local
	log    *zap.Logger
	rdb    redis.UniversalClient
	node   string   // this node's id
	p      string   // key prefix: "<prefix>:{<hub>}:"
	keys   []string // KEYS of every script: the hub's node set
	inbox  string   // this node's channel
	allCh  string   // every node's channel
	nextID atomic.Uint64

	connected  atomic.Bool
	wake       chan struct{} // a failed operation asks the heartbeat to check at once
	subscribed chan struct{} // closed once Redis confirmed the first subscription
	subOnce    sync.Once
	ready      chan struct{} // closed after the first heartbeat Redis answered
	readyOnce  sync.Once

	waitMu  sync.Mutex
	waiters map[uint64]*waiter

	replies chan outReply // to the reply sender
	settles chan keyValue // to the settler
	// open is held (read) by every push, batch, join, leave and kick while
	// it uses Redis: Close waits for them before Redis's client closes,
	// and once closed they answer hub.ErrBrokerStopped, having done nothing.
	open    sync.RWMutex
	scripts loadedScripts // which scripts Redis is known to hold (pipe.go)
	pipe    scriptPipe    // pushes' scripts, pipelined together (pipe.go)

	changedMu sync.Mutex
	changed   map[string]struct{} // uids whose count here changed, to record
	changedCh chan struct{}
	// flushMu lets one recording of counts run at a time: the heartbeat's
	// re-announcement must not find the queue emptied by the announcer,
	// whose uids are not recorded yet, and let the node enter before them.
	flushMu sync.Mutex
	// countMu is held (Lock) while counts or groups read here are written
	// to Redis, a script at a time, and by a first connection's Attached
	// (RLock): a count read before the connection came is not written
	// after it, taking the uid offline in Redis while it is online here.
	countMu sync.RWMutex
	// adopt is set once the broker serves its hub in place of another: the
	// heartbeat then records what changed here while both ran (Installed).
	adopt atomic.Bool

	divergedMu  sync.Mutex
	diverged    map[string]struct{} // uids numbered here while Redis was away
	divergedAll bool

	away    away        // joins and leaves made while Redis was away (away.go)
	members memberLocks // a membership's join, leave and replay, one at a time

	storeErrors atomic.Uint64
	reconnects  atomic.Uint64
	unreached   atomic.Uint64
	pushScripts atomic.Uint64 // push scripts sent (pipe.go)
	pushTrips   atomic.Uint64 // the round trips they took
	echoWait    time.Duration // the heartbeat's next wait for its echo

	// The lease and the reply timeout, which a reload may change in place
	// (Retune); cfg's are the first ones.
	leaseNs, replyNs atomic.Int64

	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
}

// New makes a cluster broker for the hub whose local side is l and starts
// it: it subscribes, announces this node's uids, and keeps its lease. It
// does not wait for Redis: until Redis answers, the hub delivers locally
// and reports the cluster as unreachable.
func New(hubName string, l hub.Local, cfg Config, log *zap.Logger) (*Broker, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:        cfg,
		local:      l,
		rdb:        redis.NewUniversalClient(opts),
		node:       hex.EncodeToString(id[:]),
		p:          fmt.Sprintf("%s:{%s}:", cfg.Prefix, hubName),
		wake:       make(chan struct{}, 1),
		subscribed: make(chan struct{}),
		ready:      make(chan struct{}),
		waiters:    make(map[uint64]*waiter),
		replies:    make(chan outReply, 4096),
		settles:    make(chan keyValue, 4096),
		changed:    make(map[string]struct{}),
		changedCh:  make(chan struct{}, 1),
		diverged:   make(map[string]struct{}),
		stop:       make(chan struct{}),
		echoWait:   firstEchoWait,
	}
	b.Retune(cfg.Lease, cfg.ReplyTimeout)
	b.away.uids = make(map[string]map[string]bool)
	b.members.seed = maphash.MakeSeed()
	b.log = log.With(zap.String("hub", hubName), zap.String("node", b.node))
	b.keys = []string{b.p + "nodes"}
	b.inbox = b.p + "c:" + b.node
	b.allCh = b.p + "c:all"
	ps := b.rdb.Subscribe(context.Background(), b.inbox, b.allCh)
	b.goFn("subscriber", func() { b.subscribe(ps) })
	b.goFn("reply sender", b.sendReplies)
	b.goFn("settler", b.sendSettled)
	b.goFn("announcer", b.announce)
	b.goFn("heartbeat", b.heartbeat)
	return b, nil
}

// WaitConnected waits up to d for the node to join the cluster: Redis
// confirmed its subscriptions, took its lease and recorded its uids. It
// reports whether that happened; until it does, pushes are refused with
// ClusterUnavailable rather than routed.
func (b *Broker) WaitConnected(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.ready:
		return true
	case <-b.stop:
		return false
	case <-t.C:
		return false
	}
}

// Retune changes the lease and the reply timeout of a running broker (0:
// the default): a reload that changes only these keeps the broker, its
// node and its connections. A new lease counts from the next heartbeat.
func (b *Broker) Retune(lease, replyTimeout time.Duration) {
	c := Config{Lease: lease, ReplyTimeout: replyTimeout}.withDefaults()
	b.leaseNs.Store(int64(c.Lease))
	b.replyNs.Store(int64(c.ReplyTimeout))
}

// SameCluster tells whether a and b name the same Redis keys and channels
// the same way, so that a broker of a can go on serving b after Retune.
func SameCluster(a, b Config) bool {
	return slices.Equal(a.URLs, b.URLs) && a.Password == b.Password && a.MasterName == b.MasterName &&
		a.withDefaults().Prefix == b.withDefaults().Prefix
}

func (b *Broker) lease() time.Duration        { return time.Duration(b.leaseNs.Load()) }
func (b *Broker) replyTimeout() time.Duration { return time.Duration(b.replyNs.Load()) }

// Node is this node's id in the cluster.
func (b *Broker) Node() string { return b.node }

// goFn runs fn in a goroutine the broker owns: Close waits for it, and a
// panic is logged, not fatal.
func (b *Broker) goFn(name string, fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			if v := recover(); v != nil {
				b.log.Error("panic in the cluster broker's "+name+" goroutine",
					zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			}
		}()
		fn()
	}()
}

// run runs a script with the hub's prefix before args, counting and
// reporting a failure to reach Redis. A caller that gave up, or a script's
// own error, says nothing of Redis: the node stays in the cluster.
func (b *Broker) run(ctx context.Context, s *redis.Script, args ...any) (any, error) {
	v, err := s.Run(ctx, b.rdb, b.keys, append([]any{b.p}, args...)...).Result()
	return b.answer(ctx, v, err)
}

// enter begins a call that uses Redis; false once the broker has stopped.
// A true enter is followed by leave.
func (b *Broker) enter() bool {
	b.open.RLock()
	if b.closed.Load() {
		b.open.RUnlock()
		return false
	}
	return true
}

func (b *Broker) leave() { b.open.RUnlock() }

// scriptError tells a script's own runtime error from a failure of Redis.
func scriptError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "user_script") || strings.Contains(s, "Error running script")
}

// failed notes that Redis could not be reached: the heartbeat checks at
// once, and the broker counts as disconnected until Redis answers again.
func (b *Broker) failed(err error) {
	b.storeErrors.Add(1)
	if b.connected.CompareAndSwap(true, false) {
		if strings.HasPrefix(err.Error(), unknownNode) {
			b.log.Warn(lostState)
		} else {
			b.log.Warn("lost the cluster's Redis: delivering to this node's connections only until it is back", zap.Error(err))
		}
	}
	b.wakeHeartbeat()
}

// wakeHeartbeat asks the heartbeat to beat now.
func (b *Broker) wakeHeartbeat() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// lostState is logged when Redis no longer knows this node.
const lostState = "the cluster's Redis lost this node's state (restarted or flushed): delivering to this node's connections only until its uids are announced again"

// unknownNode starts the error a script answers to a node Redis does not
// know: Redis lost its state, and the node must announce its uids again.
const unknownNode = "PUSHHUB_UNKNOWN_NODE"

// LocalHistory is false: history lives in Redis.
func (b *Broker) LocalHistory() bool { return false }

// Close leaves the cluster: the node's uids are taken out of the index at
// once rather than when its lease ends, and the broker's goroutines end.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.open.Lock() // once the calls using Redis are done (pushes with a key have queued their receipts)
	close(b.stop)
	b.open.Unlock()
	b.wg.Wait()
	if b.connected.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// A lease that has ended makes the node dead; reaping it removes
		// its uids.
		if _, err := b.run(ctx, scriptDepart, b.node); err == nil {
			b.reap(ctx)
		}
	}
	return b.rdb.Close()
}

// stringList converts a script's list reply.
func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// newEpoch names a new numbering: random, never reused.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Interface guards
var (
	_ hub.Broker         = (*Broker)(nil)
	_ hub.BatchPublisher = (*Broker)(nil)
)
