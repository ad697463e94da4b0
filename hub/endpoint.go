package hub

import "sync/atomic"

// Endpoint is one way into a hub (a push_hub handler) with settings of its
// own: a hub may be reached through several, say a json and a text one,
// each with its own limits.
//
// Endpoints are named by a key within the hub. Settings change in two
// steps, so that a configuration that fails to load changes nothing: Endpoint
// takes a hold on a key and stages the settings a new configuration asks
// for; Apply, once the whole configuration has succeeded, makes them the
// live settings of the key, for connections already open through it too.
type Endpoint struct {
	hub    *Hub
	key    string
	cell   *settingsCell
	staged Settings
	hooks  Hooks
}

// settingsCell holds the live settings of one endpoint key. Connections
// read through it, so applying new settings reaches them.
type settingsCell struct {
	s     atomic.Pointer[Settings]
	hooks atomic.Pointer[Hooks]
	refs  int // endpoints holding it; guarded by Hub.endpointsMu
}

func (c *settingsCell) load() *Settings { return c.s.Load() }

// Endpoint takes a hold on the endpoint key with settings s staged; zero
// fields of s take DefaultSettings. A key no connection uses yet starts with
// s; an existing key keeps its live settings until Apply.
func (h *Hub) Endpoint(key string, s Settings) *Endpoint {
	s = s.withDefaults()
	h.endpointsMu.Lock()
	defer h.endpointsMu.Unlock()
	cell := h.endpoints[key]
	if cell == nil {
		cell = &settingsCell{}
		cell.s.Store(&s)
		cell.hooks.Store(&Hooks{})
		h.endpoints[key] = cell
	}
	cell.refs++
	return &Endpoint{hub: h, key: key, cell: cell, staged: s}
}

// StageHooks sets the hooks the endpoint's configuration asks for; like
// its settings, they go live with Apply.
func (e *Endpoint) StageHooks(hk Hooks) { e.hooks = hk }

// Key is the endpoint's name within its hub.
func (e *Endpoint) Key() string { return e.key }

// Staged returns the settings the endpoint's configuration asks for.
func (e *Endpoint) Staged() Settings { return e.staged }

// Settings returns the live settings of the endpoint's key.
func (e *Endpoint) Settings() Settings { return *e.cell.load() }

// Apply makes the staged settings of eps live, and sets the hub-wide
// settings from them: the largest history, name length and group caps any
// of them asks for (history and groups are kept per uid for the whole hub). eps are every endpoint
// of one configuration on this hub; with none, the hub-wide settings stay.
// undo puts back what Apply replaced.
func (h *Hub) Apply(eps ...*Endpoint) (undo func()) {
	h.endpointsMu.Lock()
	defer h.endpointsMu.Unlock()
	type saved struct {
		cell  *settingsCell
		s     *Settings
		hooks *Hooks
	}
	var old []saved
	for _, e := range eps {
		old = append(old, saved{e.cell, e.cell.load(), e.cell.hooks.Load()})
		s, hk := e.staged, e.hooks
		e.cell.s.Store(&s)
		e.cell.hooks.Store(&hk)
	}
	oldHub := h.settings.Load()
	if len(eps) > 0 {
		hs := *oldHub
		hs.HistorySize, hs.MaxUIDLength, hs.MaxGroupsPerUID, hs.MaxGroups = 0, 0, 0, 0
		for _, e := range eps {
			if e.staged.HistorySize > hs.HistorySize {
				hs.HistorySize, hs.HistoryTTL, hs.HistoryMaxBytes = e.staged.HistorySize, e.staged.HistoryTTL, e.staged.HistoryMaxBytes
			}
			hs.MaxUIDLength = max(hs.MaxUIDLength, e.staged.MaxUIDLength)
			hs.MaxGroupsPerUID = max(hs.MaxGroupsPerUID, e.staged.MaxGroupsPerUID)
			hs.MaxGroups = max(hs.MaxGroups, e.staged.MaxGroups)
		}
		h.settings.Store(&hs)
	}
	return func() {
		h.endpointsMu.Lock()
		defer h.endpointsMu.Unlock()
		for i := len(old) - 1; i >= 0; i-- {
			old[i].cell.s.Store(old[i].s)
			old[i].cell.hooks.Store(old[i].hooks)
		}
		h.settings.Store(oldHub)
	}
}

// ReleaseEndpoint drops a hold taken by Endpoint. Connections opened
// through a key nobody holds keep its last settings.
func (h *Hub) ReleaseEndpoint(e *Endpoint) {
	h.endpointsMu.Lock()
	defer h.endpointsMu.Unlock()
	if e.cell.refs--; e.cell.refs <= 0 && h.endpoints[e.key] == e.cell {
		delete(h.endpoints, e.key)
	}
}

// Settings returns the hub-wide settings: history and the longest name.
func (h *Hub) Settings() Settings { return *h.settings.Load() }
