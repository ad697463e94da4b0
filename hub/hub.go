package hub

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// shardCount spreads uids and groups over independently locked maps so that
// fan-out and logins on both cores do not contend on one lock.
const shardCount = 64

// Hub is one named hub: the connections of this process bound to uids, and
// the broker that carries pushes, group changes, presence and history
// between the hub's API and the connections of every node.
type Hub struct {
	name     string
	log      atomic.Pointer[zap.Logger]
	settings atomic.Pointer[Settings] // hub-wide: history and name length
	broker   atomic.Pointer[brokerRef]
	// localHistory: this process numbers and keeps history (the broker's
	// LocalHistory).
	localHistory atomic.Bool
	seed         maphash.Seed

	uids   [shardCount]uidShard
	groups [shardCount]groupShard

	endpointsMu sync.Mutex
	endpoints   map[string]*settingsCell
	defaultEP   *Endpoint // for connections that name no endpoint

	pendingMu sync.Mutex
	pending   map[*Conn]struct{} // connections that have not logged in

	closed      atomic.Bool
	done        chan struct{} // closed by Close: stops the reaper
	nextConnID  atomic.Uint64
	binds       atomic.Uint64 // logins so far: the last one's Conn.boundAt
	live        tally         // connections not yet torn down, logged in or not
	routines    routines
	poller      *poller
	acks        notifier // wakes waiters for acknowledgements
	workers     workers
	lanes       lanes
	wheel       wheel
	events      EventCounters
	idempotency idempotencyStore

	histBytes    atomic.Int64
	histMessages atomic.Int64
	kept         atomic.Int64 // offline uids kept for history
	groupCount   atomic.Int64 // groups with a member on this node

	connections   atomic.Int64 // logged-in connections
	framesIn      atomic.Uint64
	framesOut     atomic.Uint64
	pushes        atomic.Uint64
	slowConsumers atomic.Uint64

	outcomes     outcomes         // logins, refusals, closes (outcomes.go)
	hookFailures atomic.Uint64    // login hook calls that got no answer
	lastHookWarn atomic.Int64     // unix nanoseconds of the last warning about them
	writeLatency latencyHistogram // push to socket write (latency.go)
}

type brokerRef struct {
	Broker
	inline bool // its calls never wait: clients' commands need no lane (lanes.go)
}

// nonBlocking is implemented by brokers whose calls never wait on
// anything but memory (the in-process broker).
type nonBlocking interface{ nonBlocking() }

// Options configure a new hub.
type Options struct {
	// Logger receives the hub's logs; nil discards them.
	Logger *zap.Logger
	// Settings are the settings of the hub's default endpoint (connections
	// that name no endpoint) and the hub-wide ones; zero fields take
	// DefaultSettings.
	Settings Settings
	// GoroutineReaders reads every connection with a goroutine of its own
	// instead of the poller (which is Linux-only and used where it can be).
	GoroutineReaders bool
}

// New makes an empty hub on the in-process broker.
func New(name string, o Options) *Hub {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	h := &Hub{
		name:      name,
		seed:      maphash.MakeSeed(),
		endpoints: make(map[string]*settingsCell),
		pending:   make(map[*Conn]struct{}),
		done:      make(chan struct{}),
		workers:   workers{jobs: make(chan job)},
	}
	h.log.Store(log)
	h.routines.log = h.logger
	for i := range h.uids {
		h.uids[i].m = make(map[string]*uidEntry)
		h.groups[i].m = make(map[string]map[string]struct{})
	}
	s := o.Settings.withDefaults()
	h.settings.Store(&s)
	h.defaultEP = h.Endpoint("", s)
	h.SetBroker(NewMemoryBroker(h.Local()))
	if !o.GoroutineReaders {
		h.poller = newPoller(h)
	}
	h.routines.goEvery("reaper", reapEvery, h.done, h.reap)
	h.routines.goEvery("timer wheel", wheelTick, h.done, h.tickSlot)
	return h
}

// Name is the hub's name.
func (h *Hub) Name() string { return h.name }

// SetLogger replaces the hub's logger (a configuration that succeeded
// brings a new one) and returns the one it replaced.
func (h *Hub) SetLogger(log *zap.Logger) *zap.Logger {
	if log == nil {
		return h.log.Load()
	}
	return h.log.Swap(log)
}

func (h *Hub) logger() *zap.Logger { return h.log.Load() }

// Broker returns the broker the hub's pushes go through.
func (h *Hub) Broker() Broker { return h.broker.Load().Broker }

// SetBroker makes b the hub's broker and returns the one it replaces (nil
// for a new hub), which the caller closes.
func (h *Hub) SetBroker(b Broker) Broker {
	h.localHistory.Store(b.LocalHistory())
	_, inline := b.(nonBlocking)
	old := h.broker.Swap(&brokerRef{b, inline})
	if old == nil {
		return nil
	}
	return old.Broker
}

func (h *Hub) uidShard(uid string) *uidShard {
	return &h.uids[maphash.String(h.seed, uid)%shardCount]
}

func (h *Hub) groupShard(g string) *groupShard {
	return &h.groups[maphash.String(h.seed, g)%shardCount]
}

// notifier wakes every goroutine waiting on it; waiters take the channel
// before checking their condition, so no wake-up is missed.
type notifier struct {
	waiters atomic.Int32
	mu      sync.Mutex
	ch      chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	if n.waiters.Load() == 0 {
		return
	}
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}
