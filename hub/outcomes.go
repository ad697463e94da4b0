package hub

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Outcomes: how connections log in and how they end, counted for /stats
// and metrics: logins, login refusals by error code, closes by close code.

// maxOutcomeKeys bounds the distinct refusal codes and close codes kept;
// beyond it they count under "other" and 0. Codes are the hub's own, so
// this only guards a metric's label set.
const maxOutcomeKeys = 64

type outcomes struct {
	logins   atomic.Uint64
	mu       sync.Mutex
	refusals map[string]uint64
	closes   map[int]uint64
}

func (o *outcomes) refused(code string) {
	o.mu.Lock()
	if o.refusals == nil {
		o.refusals = make(map[string]uint64)
	}
	if _, ok := o.refusals[code]; !ok && len(o.refusals) >= maxOutcomeKeys {
		code = "other"
	}
	o.refusals[code]++
	o.mu.Unlock()
}

func (o *outcomes) closed(code int) {
	o.mu.Lock()
	if o.closes == nil {
		o.closes = make(map[int]uint64)
	}
	if _, ok := o.closes[code]; !ok && len(o.closes) >= maxOutcomeKeys {
		code = 0
	}
	o.closes[code]++
	o.mu.Unlock()
}

// into copies the counts into st.
func (o *outcomes) into(st *Stats) {
	st.Logins = o.logins.Load()
	o.mu.Lock()
	st.LoginRefusals = maps.Clone(o.refusals)
	st.Closes = maps.Clone(o.closes)
	o.mu.Unlock()
}

// CountRefusal counts a login refused before any connection existed: a
// credential in the upgrade or event-stream request that did not pass,
// under err's code (auth_failed when it has none).
func (h *Hub) CountRefusal(err error) { h.outcomes.refused(ErrorCode(err, "auth_failed")) }
