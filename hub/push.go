package hub

import (
	"context"
	"errors"
	"time"
)

// The hub's operations, as the push API and clients use them. Each goes
// through the hub's broker, which reaches this node's connections through
// Local and other nodes' however it does.

// SendOptions tune one push.
type SendOptions struct {
	// WaitAck, when positive, makes Send wait up to this long for the
	// resuming connections it reached to acknowledge the message
	// (Receipt.Acked).
	WaitAck time.Duration
	// Account bounds what a client's publish may store for offline uids.
	Account *StoreAccount
	// NoReceipt tells the broker that the receipt will not be read (a
	// client's publish without an id): in cluster mode the other nodes
	// then do not report their deliveries, and the receipt counts only
	// this node's.
	NoReceipt bool
	// IdempotencyKey, when set, makes the push happen once per key within
	// IdempotencyWindow: a repeat delivers nothing and gets the first
	// push's receipt (marked Duplicate).
	IdempotencyKey    string
	IdempotencyWindow time.Duration
}

// DefaultIdempotencyWindow is how long an idempotency key is remembered
// when SendOptions names no window.
const DefaultIdempotencyWindow = 5 * time.Minute

// Send pushes m to t. It never blocks on a connection; with o.WaitAck it
// waits for acknowledgements, at most that long or until ctx ends.
func (h *Hub) Send(ctx context.Context, t Target, m Message, o SendOptions) (Receipt, error) {
	return h.publish(ctx, publication(t, m, o))
}

// publish publishes p through the hub's broker, and counts it.
func (h *Hub) publish(ctx context.Context, p *Publication) (Receipt, error) {
	r, err := withBroker(h, func(b Broker) (Receipt, error) { return b.Publish(ctx, p) })
	h.countPush(r, err)
	return r, err
}

// withBroker calls the hub's broker, and the one a reload put in its place
// if that one stopped under the call (ErrBrokerStopped: it did nothing).
func withBroker[T any](h *Hub, call func(Broker) (T, error)) (T, error) {
	for {
		b := h.Broker()
		v, err := call(b)
		if !errors.Is(err, ErrBrokerStopped) || h.Broker() == b {
			return v, err
		}
	}
}

// publication is the push of m to t with options o. A uid named twice
// is pushed to once: every broker numbers, stores and delivers each uid
// of a push once.
func publication(t Target, m Message, o SendOptions) *Publication {
	if t.Group != "" {
		m.Group = t.Group
	}
	if len(t.UIDs) > 1 {
		t.UIDs = distinct(t.UIDs)
	}
	window := o.IdempotencyWindow
	if window <= 0 {
		window = DefaultIdempotencyWindow
	}
	return &Publication{Target: t, Message: m, WaitAck: o.WaitAck, Account: o.Account, NoReceipt: o.NoReceipt,
		IdempotencyKey: o.IdempotencyKey, IdempotencyWindow: window}
}

// distinct is uids without repeats, in their order; uids itself when it
// has none.
func distinct(uids []string) []string {
	seen := make(map[string]struct{}, len(uids))
	var out []string
	for i, u := range uids {
		if _, dup := seen[u]; dup {
			if out == nil {
				out = append(make([]string, 0, len(uids)-1), uids[:i]...)
			}
			continue
		}
		seen[u] = struct{}{}
		if out != nil {
			out = append(out, u)
		}
	}
	if out == nil {
		return uids
	}
	return out
}

// countPush counts a push that went out.
func (h *Hub) countPush(r Receipt, err error) {
	if err == nil && !r.Duplicate {
		h.pushes.Add(1)
	}
}

// Join adds an online uid to a group. Membership lasts until Leave or until
// the uid's last connection closes.
func (h *Hub) Join(ctx context.Context, uid, group string) error {
	if err := ValidName("group", group, h.Settings().MaxUIDLength); err != nil {
		return err
	}
	_, err := withBroker(h, func(b Broker) (struct{}, error) { return struct{}{}, b.Join(ctx, uid, group) })
	return err
}

// Leave removes uid from group and reports whether it was a member.
func (h *Hub) Leave(ctx context.Context, uid, group string) (bool, error) {
	return withBroker(h, func(b Broker) (bool, error) { return b.Leave(ctx, uid, group) })
}

// Kick closes every connection of uid, after what is already queued to it
// has been written, with close code 4005 and reason. It returns how many
// connections it closed.
func (h *Hub) Kick(ctx context.Context, uid, reason string) (int, error) {
	return withBroker(h, func(b Broker) (int, error) { return b.Kick(ctx, uid, reason) })
}

// Online returns how many connections uid holds.
func (h *Hub) Online(ctx context.Context, uid string) (int, error) {
	return h.Broker().Online(ctx, uid)
}

// UIDs lists online uids in byte order, after the uid `after`, at most
// limit of them; with group set, only that group's members. more tells
// whether uids remain past the page.
func (h *Hub) UIDs(ctx context.Context, group, after string, limit int) (uids []string, more bool, err error) {
	return h.Broker().UIDs(ctx, group, after, limit)
}
