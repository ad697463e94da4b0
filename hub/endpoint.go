package hub

import "sync/atomic"

// Endpoint holds the connection settings of one way into a hub (a push_hub
// handler): a hub may be reached through several endpoints, say json and
// text, each with its own limits. Endpoints are named by a key within the
// hub, so a reload that configures the same key changes the settings of
// connections already open through it.
type Endpoint struct {
	hub  *Hub
	key  string
	refs int // configs holding it; guarded by hub.endpointsMu
	s    atomic.Pointer[Settings]
}

// Configure replaces the endpoint's settings; zero fields take
// DefaultSettings. History is kept per uid for the whole hub: the hub keeps
// the largest history any of its endpoints asks for.
func (e *Endpoint) Configure(s Settings) {
	s = s.withDefaults()
	e.s.Store(&s)
	e.hub.endpointsMu.Lock()
	e.hub.applyEndpoints()
	e.hub.endpointsMu.Unlock()
}

// Settings returns the endpoint's current settings.
func (e *Endpoint) Settings() Settings { return *e.s.Load() }

// AcquireEndpoint returns the hub's endpoint named key, created with the
// hub's settings the first time, and holds it until ReleaseEndpoint.
func (h *Hub) AcquireEndpoint(key string) *Endpoint {
	h.endpointsMu.Lock()
	defer h.endpointsMu.Unlock()
	e := h.endpoints[key]
	if e == nil {
		e = &Endpoint{hub: h, key: key}
		s := h.Settings()
		e.s.Store(&s)
		if h.endpoints == nil {
			h.endpoints = make(map[string]*Endpoint)
		}
		h.endpoints[key] = e
	}
	e.refs++
	return e
}

// ReleaseEndpoint drops a hold. An endpoint no config holds stops counting
// for the hub's history; its open connections keep its settings.
func (h *Hub) ReleaseEndpoint(e *Endpoint) {
	h.endpointsMu.Lock()
	defer h.endpointsMu.Unlock()
	if e.refs--; e.refs <= 0 {
		delete(h.endpoints, e.key)
		h.applyEndpoints()
	}
}

// applyEndpoints sets the hub-wide settings from the held endpoints: the
// largest history and uid length. h.endpointsMu is held.
func (h *Hub) applyEndpoints() {
	if len(h.endpoints) == 0 {
		return
	}
	s := h.Settings()
	s.HistorySize, s.MaxUIDLength = 0, 0
	for _, e := range h.endpoints {
		es := e.s.Load()
		if es.HistorySize > s.HistorySize {
			s.HistorySize, s.HistoryTTL, s.HistoryMaxBytes = es.HistorySize, es.HistoryTTL, es.HistoryMaxBytes
		}
		s.MaxUIDLength = max(s.MaxUIDLength, es.MaxUIDLength)
	}
	h.Configure(s)
}
