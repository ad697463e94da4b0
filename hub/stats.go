package hub

import (
	"context"
	"runtime"
)

// Stats is a snapshot of a hub's counters.
type Stats struct {
	Hub            string
	Connections    int64  // logged-in connections
	Pending        int    // connections that have not logged in
	UIDs           int    // online uids
	OfflineKept    int    // offline uids whose history is kept
	Groups         int    // groups with a member
	MessagesIn     uint64 // frames received from clients
	MessagesOut    uint64 // message frames queued to connections
	Pushes         uint64 // API sends and client publishes
	SlowConsumers  uint64 // connections cut off with a full queue
	HistoryStored  int64  // messages kept for resume
	HistoryBytes   int64  // their memory
	HistoryMaxSize int64  // the history budget
	Goroutines     int    // of the whole process
	EventsSent     uint64 // events the application took
	EventsFailed   uint64 // events given up after retries
	EventsDropped  uint64 // events never sent: their queue was full
	// This node's own, in cluster mode too:
	Logins        uint64            // logins accepted
	LoginRefusals map[string]uint64 // logins refused, by error code (auth_timeout: none came in time)
	Closes        map[int]uint64    // connections closed, by close code (1006: lost without one)
	SendQueued    int               // frames waiting in send queues
	SendQueueMax  int               // the longest send queue
	LaneQueued    int               // clients' commands waiting in the lanes (cluster mode, lanes.go)
	WriteLatency  Histogram         // push to socket write, per copy (latency.go)
	// Cluster is what a cluster broker adds; nil on one node. With it, the
	// counters above are the whole cluster's.
	Cluster *ClusterStats
}

// ClusterStats describe a hub's cluster, as seen from this node.
type ClusterStats struct {
	Node      string // this node's id
	Connected bool   // the broker reaches its store: pushes reach other nodes
	// Nodes are the counters of each live node that answered, this one
	// included; Unanswered counts the live nodes that did not in time.
	Nodes       []NodeStats
	Unanswered  int
	StoreErrors uint64 // operations on the store that failed
	Reconnects  uint64 // times the broker got its store back after losing it
	Unreached   uint64 // pushes from this node that did not reach every node they should have
	// PushScripts counts the push scripts this node sent to its store,
	// PushRoundTrips the round trips they took: scripts of concurrent
	// pushes share one.
	PushScripts    uint64
	PushRoundTrips uint64
}

// NodeStats are one node's own counters.
type NodeStats struct {
	Node          string
	Connections   int64
	Pending       int
	UIDs          int
	Groups        int
	MessagesIn    uint64
	MessagesOut   uint64
	Pushes        uint64
	SlowConsumers uint64
	Goroutines    int
}

// Stats counts the hub's connections, uids, groups, history and traffic,
// with what its broker adds.
func (h *Hub) Stats(ctx context.Context) Stats {
	st := h.Local().Stats()
	h.Broker().Stats(ctx, &st)
	return st
}

// Stats counts this node's connections, uids, groups, history and traffic.
func (l Local) Stats() Stats {
	h := l.h
	st := Stats{
		Hub:            h.name,
		Connections:    h.connections.Load(),
		MessagesIn:     h.framesIn.Load(),
		MessagesOut:    h.framesOut.Load(),
		Pushes:         h.pushes.Load(),
		SlowConsumers:  h.slowConsumers.Load(),
		HistoryStored:  h.histMessages.Load(),
		HistoryBytes:   h.histBytes.Load(),
		HistoryMaxSize: h.settings.Load().HistoryMaxBytes,
		Goroutines:     runtime.NumGoroutine(),
		EventsSent:     h.events.Sent.Load(),
		EventsFailed:   h.events.Failed.Load(),
		EventsDropped:  h.events.Dropped.Load(),
	}
	h.outcomes.into(&st)
	st.WriteLatency = h.writeLatency.snapshot()
	for i := range h.uids {
		s := &h.uids[i]
		s.mu.RLock()
		for _, e := range s.m {
			if !e.online() {
				st.OfflineKept++
				continue
			}
			st.UIDs++
			e.mu.Lock()
			for _, c := range e.conns {
				q := c.queued()
				st.SendQueued += q
				st.SendQueueMax = max(st.SendQueueMax, q)
			}
			e.mu.Unlock()
		}
		s.mu.RUnlock()
		gs := &h.groups[i]
		gs.mu.RLock()
		st.Groups += len(gs.m)
		gs.mu.RUnlock()
	}
	h.pendingMu.Lock()
	st.Pending = len(h.pending)
	h.pendingMu.Unlock()
	st.LaneQueued = h.lanes.queued()
	return st
}

// ClusterReporter is implemented by cluster brokers: the cluster's state as
// this node sees it, without asking the other nodes (for metrics).
type ClusterReporter interface {
	ClusterState() ClusterStats
}
