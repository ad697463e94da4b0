package hub

import (
	"context"
	"sync"
	"time"
)

// Idempotent pushes: a push that carries a key is delivered once per key
// within a window; a retry with the same key delivers nothing and answers
// the first push's receipt. This is the in-process store of keys; a cluster
// broker keeps them in its own store, so that a retry reaching another node
// is recognised too.

// maxIdempotencyKeys bounds the keys kept in memory; past it the oldest go
// before their window ends.
const maxIdempotencyKeys = 200_000

type idempotencyStore struct {
	mu    sync.Mutex
	m     map[string]*idemEntry
	order []idemKey // by expiry, oldest first (one window for all keys of a claim)
}

type idemEntry struct {
	done    chan struct{} // closed once the first push has its receipt
	receipt Receipt
	failed  bool  // the first push failed: a retry may push again
	expires int64 // unix nanoseconds: past it the key is free again
}

type idemKey struct {
	key     string
	expires int64 // unix nanoseconds
}

// claim makes the caller the first push of key, or waits for the first
// one's receipt (at most until ctx ends).
func (s *idempotencyStore) claim(ctx context.Context, key string, window time.Duration) (prior Receipt, first bool, err error) {
	for {
		s.mu.Lock()
		if s.m == nil {
			s.m = make(map[string]*idemEntry)
		}
		e := s.m[key]
		now := time.Now()
		if e != nil && e.expires < now.UnixNano() && settled(e) {
			e = nil // its window is over (windows may differ between reloads)
		}
		if e == nil {
			expires := now.Add(window).UnixNano()
			s.m[key] = &idemEntry{done: make(chan struct{}), expires: expires}
			s.order = append(s.order, idemKey{key, expires})
			if len(s.order) > maxIdempotencyKeys {
				delete(s.m, s.order[0].key)
				s.order = s.order[1:]
			}
			s.mu.Unlock()
			return Receipt{}, true, nil
		}
		s.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return Receipt{}, false, ctx.Err()
		}
		s.mu.Lock()
		if !e.failed {
			s.mu.Unlock()
			return e.receipt, false, nil
		}
		if s.m[key] == e {
			delete(s.m, key) // the first push failed: this one goes
		}
		s.mu.Unlock()
	}
}

func settled(e *idemEntry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// settle records the first push's receipt, or its failure.
func (s *idempotencyStore) settle(key string, r Receipt, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[key]; e != nil {
		select {
		case <-e.done:
			return
		default:
		}
		e.receipt, e.failed = r, err != nil
		close(e.done)
	}
}

// expire forgets keys whose window has ended, oldest claim first; a key
// claimed again meanwhile stays (its entry has a later end). Claim checks
// the end itself, so a key with a short window behind one with a long
// window is free on time.
func (s *idempotencyStore) expire(now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for ; n < len(s.order) && s.order[n].expires < now; n++ {
		k := s.order[n].key
		if e := s.m[k]; e != nil && e.expires < now {
			if !settled(e) {
				break // still in flight: it goes once settled
			}
			delete(s.m, k)
		}
	}
	s.order = s.order[n:]
}
