package hub

import "context"

// memoryBroker is the in-process broker, the default: a hub on one node.
// Everything it does is local; history lives in the uid entries of this
// process, which number messages themselves.
type memoryBroker struct{ local Local }

// NewMemoryBroker returns the in-process broker of the hub whose local side
// is l.
func NewMemoryBroker(l Local) Broker { return memoryBroker{l} }

func (memoryBroker) nonBlocking() {}

func (b memoryBroker) Publish(ctx context.Context, p *Publication) (Receipt, error) {
	if p.IdempotencyKey == "" {
		return b.local.Deliver(ctx, p, DeliverOptions{Store: true}), nil
	}
	keys := &b.local.h.idempotency
	prior, first, err := keys.claim(ctx, p.IdempotencyKey, p.IdempotencyWindow)
	if err != nil {
		return Receipt{}, err
	}
	if !first {
		prior.Duplicate = true
		return prior, nil
	}
	r := b.local.Deliver(ctx, p, DeliverOptions{Store: true})
	keys.settle(p.IdempotencyKey, r, nil)
	return r, nil
}

func (b memoryBroker) Join(_ context.Context, uid, group string) error {
	return b.local.Join(uid, group)
}

func (b memoryBroker) Leave(_ context.Context, uid, group string) (bool, error) {
	return b.local.Leave(uid, group), nil
}

func (b memoryBroker) Kick(_ context.Context, uid, reason string) (int, error) {
	return b.local.Kick(uid, reason), nil
}

func (b memoryBroker) Online(_ context.Context, uid string) (int, error) {
	return b.local.Online(uid), nil
}

func (b memoryBroker) UIDs(_ context.Context, group, after string, limit int) ([]string, bool, error) {
	uids, more := b.local.UIDs(group, after, limit)
	return uids, more, nil
}

func (b memoryBroker) Recover(_ context.Context, uid string, since *Position) (Recovery, error) {
	return b.local.Recover(uid, since), nil
}

func (memoryBroker) Attached(context.Context, string) error { return nil }
func (memoryBroker) Changed(string)                         {}
func (memoryBroker) LocalHistory() bool                     { return true }
func (memoryBroker) Stats(context.Context, *Stats)          {}
func (memoryBroker) Close() error                           { return nil }
