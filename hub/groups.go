package hub

import "sync"

// Groups on this node: membership belongs to a uid (all its connections
// get the group's messages) and lasts until Leave or until the uid's last
// connection here closes. Each uid entry lists its groups; each group shard
// lists its member uids, for fan-out.

type groupShard struct {
	mu sync.RWMutex
	m  map[string]map[string]struct{} // group -> member uids
}

// Join adds uid, online on this node, to a group.
func (l Local) Join(uid, group string) error {
	h := l.h
	st := h.Settings()
	if err := ValidName("group", group, st.MaxUIDLength); err != nil {
		return err
	}
	s := h.uidShard(uid)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[uid]
	if e == nil || !e.online() {
		return ErrOffline
	}
	if _, member := e.groups[group]; member {
		return nil
	}
	if len(e.groups) >= st.MaxGroupsPerUID {
		return ErrTooManyGroups
	}
	// Adding under the uid's lock orders Join against the uid going offline.
	gs := h.groupShard(group)
	gs.mu.Lock()
	members := gs.m[group]
	if members == nil {
		if h.groupCount.Load() >= int64(st.MaxGroups) {
			gs.mu.Unlock()
			return ErrTooManyGroups
		}
		members = make(map[string]struct{})
		gs.m[group] = members
		h.groupCount.Add(1)
	}
	members[uid] = struct{}{}
	gs.mu.Unlock()
	if e.groups == nil {
		e.groups = make(map[string]struct{})
	}
	e.groups[group] = struct{}{}
	return nil
}

// Groups lists the groups uid is in on this node.
func (l Local) Groups(uid string) (groups []string) {
	l.h.withEntry(uid, func(e *uidEntry) {
		for g := range e.groups {
			groups = append(groups, g)
		}
	})
	return groups
}

// Leave removes uid from group on this node; the group disappears with its
// last member. It reports whether uid was a member.
func (l Local) Leave(uid, group string) bool {
	h := l.h
	s := h.uidShard(uid)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[uid]
	member := false
	if e != nil {
		_, member = e.groups[group]
		delete(e.groups, group)
	}
	if member {
		h.dropMember(group, uid)
	}
	return member
}

func (h *Hub) dropMember(group, uid string) {
	gs := h.groupShard(group)
	gs.mu.Lock()
	if members := gs.m[group]; members != nil {
		delete(members, uid)
		if len(members) == 0 {
			delete(gs.m, group)
			h.groupCount.Add(-1)
		}
	}
	gs.mu.Unlock()
}

// members is a snapshot of a group's uids on this node.
func (h *Hub) members(group string) []string {
	gs := h.groupShard(group)
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	members := gs.m[group]
	out := make([]string, 0, len(members))
	for uid := range members {
		out = append(out, uid)
	}
	return out
}
