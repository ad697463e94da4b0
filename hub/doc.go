// Package hub is caddy-pushhub's engine: WebSocket connections bound to
// uids, groups of uids, and fan-out of pushes to one uid, many, a group or
// everyone. It knows nothing of Caddy; the Caddy modules hand it upgrade
// requests (Hub.Upgrade) and the push API's calls (Hub.Send, Join, ...).
//
// # The path of a push
//
//	push_api /send ─► Hub.Send (push.go)
//	                   └► Broker.Publish (broker.go; broker_memory.go by default)
//	                       └► Local.Deliver (delivery.go): target → uid entries (registry.go, groups.go)
//	                           └► deliver: number, store (history.go), one frame per protocol (codec_*.go)
//	                               └► Conn.enqueue (writer.go): inline write, or queue + writer goroutine
//
// A client's frame comes the other way: the poller (poller_linux.go) sees
// the socket readable, the reader (reader.go) reads a frame, the
// connection's codec decodes it into a Command, and the session
// (session.go) runs it, through the same Hub calls as the push API; with a
// broker that waits (a cluster's), a client's publishes, joins and leaves
// go through the hub's lanes (lanes.go), in the client's order. Where
// nothing on that path can wait (a logged-in client, or a login without a
// hook to ask or a cluster to tell), the poller reads whole frames itself
// (readInline); otherwise, or for a frame that has not arrived whole, a
// worker does. Over TLS, crypto/tls reads and writes through a socket of
// the hub's that never waits (tls_socket.go), so the poller decrypts and
// the delivering goroutine encrypts, as they read and write plain sockets.
//
// # Where things go
//
//   - A wire protocol is one file implementing Codec (codec.go) and one line
//     in its protocols list. The engine never asks which protocol a
//     connection speaks.
//   - A broker (cluster mode) is a package of its own implementing Broker; it
//     reaches this process's connections through Local, and is installed
//     with Hub.SetBroker.
//   - An operation of the push API is a Hub method in push.go that goes
//     through the broker, and a Broker method answered locally by Local.
//
// # Locks, in the order they are taken
//
//  1. uidShard.mu (registry.go): a shard of uid entries. Join and the last
//     connection's removal hold it while they change group membership.
//  2. groupShard.mu (groups.go), taken under uidShard.mu, or alone.
//  3. uidEntry.mu: a uid's numbering, history and connections. Delivery
//     holds it while queueing, so every connection of a uid sees messages
//     in sequence order.
//  4. Conn.mu (writer.go): a connection's queue and writer state.
//  5. pollShard.mu (poller_linux.go), taken under Conn.mu, or alone.
//  6. crypto/tls's own locks, then tlsSocket.mu (tls_socket.go), taken
//     under Conn.mu by an inline write, or alone; tlsSocket.mu never
//     waits on a socket.
//
// Hub.endpointsMu, Hub.pendingMu and the notifier's and tally's mutexes are
// never held while taking another lock. Nothing that holds a uid entry's
// lock may tear a connection down (teardown takes the shard's lock): a
// connection cut off there is torn down on a goroutine of its own.
//
// # Goroutines and their owner
//
// Every goroutine of a hub is started through Hub.routines (routines.go),
// which counts it, recovers a panic by logging it (and closing the
// connection it worked for), and lets Close wait for all of them:
//
//   - the reaper (lifecycle.go): history expiry, until Close;
//   - the poller's loop (poller_linux.go): until Close wakes it;
//   - workers (workers.go), reused, that read a readable connection
//     (readReady) or drain a connection's queue (writeLoop); a reader
//     goroutine per connection without the poller (readLoop), until its
//     socket closes;
//   - the timer wheel (wheel.go), which ticks every connection's timer
//     (timers.go) in batches; a close's deadline is a runtime timer;
//   - a lingering close per socket closed with unread bytes (conn.go);
//   - the per-core workers of a large broadcast (delivery.go);
//   - the lanes of clients' commands (lanes.go), started with the first
//     command a cluster broker would wait for, until Close.
//
// Waiting is done on channels and contexts: Close waits for the
// connections' tally and the goroutines' tally to reach zero; waiting for
// acknowledgements wakes on each acknowledgement.
package hub
