package redisbroker

import (
	"context"

	"github.com/pushhub/caddy-pushhub/hub"
)

// Stats makes st the cluster's: this node's counters plus every live
// node's, with the cluster-wide number of online uids and groups, and the
// cluster's state.
func (b *Broker) Stats(ctx context.Context, st *hub.Stats) {
	state := b.ClusterState()
	cs := &state
	cs.Nodes = []hub.NodeStats{nodeStatsOf(b.node, *st)}
	st.Cluster = cs
	if !cs.Connected {
		return
	}
	replies, missing, err := b.requestStats(ctx)
	if err != nil {
		cs.Connected = false
		return
	}
	cs.Unanswered = missing
	for _, r := range replies {
		if r.Stats == nil {
			continue
		}
		n := r.Stats
		cs.Nodes = append(cs.Nodes, *n)
		st.Connections += n.Connections
		st.Pending += n.Pending
		st.MessagesIn += n.MessagesIn
		st.MessagesOut += n.MessagesOut
		st.Pushes += n.Pushes
		st.SlowConsumers += n.SlowConsumers
	}
	if uids, err := b.rdb.ZCard(ctx, b.p+"online").Result(); err == nil {
		st.UIDs = int(uids)
	}
	if groups, err := b.rdb.SCard(ctx, b.p+"groups").Result(); err == nil {
		st.Groups = int(groups)
	}
}

// ClusterState is this node's view of the cluster, without asking the
// other nodes.
func (b *Broker) ClusterState() hub.ClusterStats {
	return hub.ClusterStats{
		Node:        b.node,
		Connected:   b.connected.Load(),
		StoreErrors: b.storeErrors.Load(),
		Reconnects:  b.reconnects.Load(),
		Unreached:   b.unreached.Load(),

		PushScripts:    b.pushScripts.Load(),
		PushRoundTrips: b.pushTrips.Load(),
	}
}

// nodeStatsOf is one node's own counters.
func nodeStatsOf(node string, st hub.Stats) hub.NodeStats {
	return hub.NodeStats{
		Node: node, Connections: st.Connections, Pending: st.Pending, UIDs: st.UIDs, Groups: st.Groups,
		MessagesIn: st.MessagesIn, MessagesOut: st.MessagesOut, Pushes: st.Pushes,
		SlowConsumers: st.SlowConsumers, Goroutines: st.Goroutines,
	}
}
