package hub

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"
)

// Broker is the one path between "something happened" and the connections
// it concerns: every push, group change, kick, presence query and history
// read of a hub goes through it. The in-process broker (broker_memory.go)
// delivers to this process's connections and keeps history in memory; a
// cluster broker (its own package) routes each push to the nodes that hold
// its uids, answers presence for every node, and keeps history outside the
// process. Either way, what reaches this process's connections goes
// through Local.
type Broker interface {
	// Publish delivers p to every connection it targets, on every node.
	Publish(ctx context.Context, p *Publication) (Receipt, error)
	// Join adds an online uid to a group; ErrOffline when the uid has no
	// connection anywhere.
	Join(ctx context.Context, uid, group string) error
	// Leave removes uid from group and reports whether it was a member.
	Leave(ctx context.Context, uid, group string) (bool, error)
	// Kick closes every connection of uid with reason; it returns how many.
	Kick(ctx context.Context, uid, reason string) (int, error)
	// Online returns how many connections uid holds.
	Online(ctx context.Context, uid string) (int, error)
	// UIDs lists online uids in byte order after `after`, at most limit;
	// with group set, only its members. more tells whether uids remain.
	UIDs(ctx context.Context, group, after string, limit int) (uids []string, more bool, err error)
	// Recover returns uid's current position and what a client that has
	// seen since missed; without since, the uid's mailbox: what was stored
	// while it had no connection anywhere, once, to the first login
	// without since.
	Recover(ctx context.Context, uid string, since *Position) (Recovery, error)
	// Attached tells the broker that uid's first connection on this node
	// has logged in. It is called before the connection's welcome is sent,
	// so once a client has its welcome every node can reach it.
	Attached(ctx context.Context, uid string) error
	// Changed tells the broker that the number of uid's connections on this
	// node changed (Local.Online tells it now; 0 when the last one closed).
	// It must not block: a broker that records it elsewhere does so in the
	// background, and calls may reach it out of order.
	Changed(uid string)
	// LocalHistory tells whether the hub keeps history in this process
	// (Local numbers and stores pushes) rather than the broker elsewhere.
	LocalHistory() bool
	// Stats adds what the broker knows beyond this node to st.
	Stats(ctx context.Context, st *Stats)
	// Close stops the broker.
	Close() error
}

// BatchPublisher is offered by a broker that can publish several pushes
// in one round trip (a cluster's on Redis): the lanes of clients' commands
// (lanes.go) hand it the publishes that follow one another in a lane.
type BatchPublisher interface {
	// PublishBatch publishes each push as Publish would, in the batch's
	// order, and gives each Done its receipt. The pushes are clients':
	// without idempotency keys or acknowledgement waits. Once the broker
	// has stopped it does nothing and answers ErrBrokerStopped.
	PublishBatch(batch []QueuedPush) error
}

// ErrBrokerStopped is what a broker's call answers once the broker has
// stopped (Close), having done nothing: the hub gives the call to the
// broker a reload put in its place, if there is one.
var ErrBrokerStopped = &Error{Code: "hub_closed", Message: "the hub's broker has stopped"}

// QueuedPush is a client's push waiting in a lane, and what gets its
// receipt.
type QueuedPush struct {
	Publication *Publication
	Done        func(Receipt, error)
}

// Publication is one push on its way through a broker.
type Publication struct {
	Target  Target
	Message Message
	// WaitAck, when positive, waits up to this long for the resuming
	// connections reached to acknowledge the message (Receipt.Acked).
	WaitAck time.Duration
	// Account, for a client's publish, bounds what the push may store for
	// offline uids on this node (Settings.MaxStoredPerClient); nil for the
	// push API, which the hub-wide history budget bounds.
	Account *StoreAccount
	// NoReceipt: nobody reads the receipt (a client's publish that asked
	// for no answer), so a broker need not gather other nodes' counts.
	NoReceipt bool
	// IdempotencyKey, when set, makes the push happen once per key within
	// IdempotencyWindow, on every node: a repeat delivers nothing and gets
	// the receipt of the push that came first (marked Duplicate), waiting
	// for it while it is under way.
	IdempotencyKey    string
	IdempotencyWindow time.Duration
}

// StoreAccount counts the history one client's publishes hold for offline
// uids, until it expires or is evicted, against the bound its endpoint
// sets (max_stored_per_client) as of the client's latest publish, so a
// reload applies from the next one.
type StoreAccount struct {
	bytes atomic.Int64
	max   atomic.Int64
}

// Target names where a push goes: exactly one field is set.
type Target struct {
	UID   string
	UIDs  []string
	Group string
	All   bool
}

// Message is one push: its data and where it came from.
type Message struct {
	// Data is any JSON value. The text protocol delivers a string as its bare
	// text and anything else as its JSON text; the json protocol carries it as
	// it is.
	Data json.RawMessage
	// From is the sending uid when a client published the message; "" when it
	// came through the push API.
	From string
	// Group is set when the message was sent to a group.
	Group string
}

// Receipt tells what a push reached.
type Receipt struct {
	// Delivered is the number of connections the message was queued to.
	Delivered int
	// Dropped is the number of connections cut off as slow consumers because
	// their queue was full when the message came.
	Dropped int
	// Stored tells whether the message was kept in history for at least
	// one uid, to be replayed to a client that resumes.
	Stored bool
	// Acked is the number of connections that acknowledged the message
	// within Publication.WaitAck (0 without a wait).
	Acked int
	// Unreached counts the nodes of a cluster that should have had the
	// push but did not answer in time; -1 when the cluster's broker could
	// not be reached at all and only this node delivered.
	Unreached int
	// Duplicate is set when the push repeated an idempotency key: nothing
	// was delivered again, and the receipt is the first push's.
	Duplicate bool
}

// Add counts o into r.
func (r *Receipt) Add(o Receipt) {
	r.Delivered += o.Delivered
	r.Dropped += o.Dropped
	r.Stored = r.Stored || o.Stored
	r.Acked += o.Acked
	switch {
	case r.Unreached < 0 || o.Unreached < 0:
		r.Unreached = -1
	default:
		r.Unreached += o.Unreached
	}
}

// Position is a place in a uid's numbering: the sequence number (Offset)
// of a message, within a numbering (Epoch) that a restarted or different
// store never reuses. Offsets start at 1 in each epoch.
type Position struct {
	Epoch  string
	Offset uint64
}

// Recovery is a broker's answer to Recover.
type Recovery struct {
	// Position is the uid's position once Messages are replayed.
	Position Position
	// Messages are what the client missed, oldest first.
	Messages []StoredMessage
	// Resume says how the gap was filled; nil when since was nil.
	Resume *Resume
}

// StoredMessage is one message kept in a uid's history.
type StoredMessage struct {
	Seq     uint64
	Message *Message
}

// Resume describes, in the welcome frame, how a reconnecting client's gap
// was filled.
type Resume struct {
	// Since is the last sequence number the client said it had.
	Since uint64 `json:"since"`
	// Recovered is true when every message after Since was replayed: the
	// client missed nothing.
	Recovered bool `json:"recovered"`
	// Replayed counts the messages queued after the welcome frame.
	Replayed int `json:"replayed"`
	// Reason says why the gap could not be filled: "history_off",
	// "too_old" (expired or evicted), "unknown_position" (Since is ahead of
	// the uid's numbering), "epoch_changed" (Since belongs to a numbering
	// the store no longer has: what the current one holds was replayed),
	// or "store_unavailable" (the history store could not be reached).
	Reason string `json:"reason,omitempty"`
}

// Reasons a gap could not be filled.
const (
	ReasonHistoryOff       = "history_off"
	ReasonTooOld           = "too_old"
	ReasonUnknownPosition  = "unknown_position"
	ReasonEpochChanged     = "epoch_changed"
	ReasonStoreUnavailable = "store_unavailable"
)

// Local is this process's side of the broker seam: delivery to the
// connections of this node, and what this node knows of them. Brokers get
// it from Hub.Local.
type Local struct{ h *Hub }

// Local returns the hub's local side, for its broker.
func (h *Hub) Local() Local { return Local{h} }

// Settings are the hub-wide settings: history and the longest name.
func (l Local) Settings() Settings { return l.h.Settings() }
