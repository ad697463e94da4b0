package hub

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Hooks tie an endpoint to the application that uses the hub: what happens
// on its connections is told to the application as events, and a login
// hook may allow or refuse each login and name the groups it joins. The
// application's side (HTTP, signing, retries) is hub/webhook's.
type Hooks struct {
	// Events receives the endpoint's events; nil sends none.
	Events EventSink
	// Login, when set, is asked at every login.
	Login LoginHook
	// TextToApp makes a text-protocol frame after login a message event
	// for the application instead of "<uid>:<message>" routing.
	TextToApp bool
}

// Kinds of events.
const (
	EventLogin   = "login"
	EventClose   = "close"
	EventMessage = "message"
)

// EventSink takes the events of an endpoint's connections to the
// application.
type EventSink interface {
	// Wants tells whether events of kind are sent at all.
	Wants(kind string) bool
	// Emit queues e without blocking; false means it was dropped (the
	// queue is full), and the sink has counted it.
	Emit(e Event) bool
}

// Event is one thing that happened on a connection.
type Event struct {
	Kind     string
	Time     time.Time
	UID      string
	ConnID   string
	Remote   string
	Protocol string
	// Claims are the login token's claims (login events, with jwt auth).
	Claims map[string]any
	// Code and Reason are the close code and reason, Duration how long the
	// connection was open (close events).
	Code     int
	Reason   string
	Duration time.Duration
	// Data is what the client sent (message events).
	Data json.RawMessage
}

// LoginHook asks the application about a login.
type LoginHook interface {
	// Check answers whether the login may go on. When the application
	// could not answer (err, logged), the answer is the hook's policy for
	// that case.
	Check(ctx context.Context, req LoginRequest) (LoginAnswer, error)
}

// LoginRequest is what the application is told of a login.
type LoginRequest struct {
	UID      string
	ConnID   string
	Remote   string
	Protocol string
	Claims   map[string]any
	// Headers are the upgrade request's headers the configuration names.
	Headers map[string]string
}

// LoginAnswer is the application's decision.
type LoginAnswer struct {
	Allow  bool
	Reason string   // why not, told to the client
	Groups []string // groups the uid joins at once
}

// Identity is who a connection logged in as.
type Identity struct {
	UID    string
	Claims map[string]any // the token's claims, with jwt auth
}

// EventCounters count a hub's events, for /stats and metrics; its sinks
// add to them.
type EventCounters struct {
	Sent    atomic.Uint64 // delivered to the application
	Failed  atomic.Uint64 // given up after retries
	Dropped atomic.Uint64 // never sent: the queue was full
}

// EventCounters returns the hub's event counters, for its sinks.
func (h *Hub) EventCounters() *EventCounters { return &h.events }

// hooks are the connection's endpoint's.
func (c *Conn) hooks() *Hooks { return c.cell.hooks.Load() }

// emit sends an event of c's to its endpoint's sink, if it wants the kind.
func (c *Conn) emit(kind string, fill func(*Event)) bool {
	sink := c.hooks().Events
	if sink == nil || !sink.Wants(kind) {
		return false
	}
	e := Event{Kind: kind, Time: time.Now(), UID: c.uid, ConnID: c.ID(), Remote: c.nc.RemoteAddr().String(), Protocol: c.proto.Name()}
	if fill != nil {
		fill(&e)
	}
	return sink.Emit(e)
}

// hookFailed counts a login hook call that got no usable answer, and logs
// it at most once a second: an application that is down must not flood
// the log with one line per login.
func (h *Hub) hookFailed(c *Conn, uid string, allowed bool, err error) {
	n := h.hookFailures.Add(1)
	now := time.Now().UnixNano()
	if last := h.lastHookWarn.Load(); now-last > int64(time.Second) && h.lastHookWarn.CompareAndSwap(last, now) {
		h.logger().Warn("the login hook did not answer", zap.String("conn", c.ID()), zap.String("uid", uid),
			zap.Bool("allowed", allowed), zap.Uint64("failures_in_all", n), zap.Error(err))
	}
}
