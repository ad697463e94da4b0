package hub

import "time"

// Settings are an endpoint's tunables (see Endpoint). Connections read them
// when they need them, so new values applied to an endpoint reach the
// connections opened through it before.
type Settings struct {
	PingInterval         time.Duration // how often the server pings each connection
	PongTimeout          time.Duration // grace after a missed ping before a silent peer is closed
	WriteTimeout         time.Duration // deadline of one frame write
	AuthTimeout          time.Duration // how long a connection may stay unauthenticated
	MaxMessageSize       int64         // largest frame a client may send; larger closes 1009
	SendQueue            int           // frames queued per connection before it is cut off as slow
	MaxConnectionsPerUID int           // connections one uid may hold at once
	MaxUIDLength         int           // longest uid or group name, in bytes
	AllowClientPublish   bool          // clients may send to a uid, a group or everyone
	AllowClientGroups    bool          // json clients may join and leave groups themselves

	// MaxGroupsPerUID caps the groups one uid belongs to; MaxGroups the
	// groups of the whole hub. A join over either is refused.
	MaxGroupsPerUID int
	MaxGroups       int

	// MaxStoredPerClient bounds the history one connection's publishes may
	// hold for uids that are offline, in bytes: past it, its publishes to
	// offline uids are delivered to nobody and not stored, so one client
	// cannot spend the hub's history budget for everyone.
	MaxStoredPerClient int64

	// History keeps the last HistorySize messages of each uid for
	// HistoryTTL so that a json client can resume after a reconnect; 0
	// turns it off. HistoryMaxBytes bounds the memory of all of a hub's
	// history together: past it, new messages are not stored (and receipts
	// say so).
	HistorySize     int
	HistoryTTL      time.Duration
	HistoryMaxBytes int64

	// RateLimit is how many frames per second one client may send, with
	// bursts of RateBurst; a client over it is closed with 4008.
	RateLimit float64
	RateBurst int

	// ReconnectJitter spreads the retry hint given to clients when the hub
	// closes, so that they do not all come back at once.
	ReconnectJitter time.Duration
}

// DefaultSettings are the values a zero field of Settings stands for.
var DefaultSettings = Settings{
	PingInterval:         25 * time.Second,
	PongTimeout:          10 * time.Second,
	WriteTimeout:         10 * time.Second,
	AuthTimeout:          10 * time.Second,
	MaxMessageSize:       64 << 10,
	SendQueue:            64,
	MaxConnectionsPerUID: 16,
	MaxUIDLength:         128,
	MaxGroupsPerUID:      64,
	MaxGroups:            100000,
	MaxStoredPerClient:   256 << 10,
	HistoryTTL:           2 * time.Minute,
	HistoryMaxBytes:      64 << 20,
	RateLimit:            100,
	RateBurst:            200,
	ReconnectJitter:      5 * time.Second,
}

// withDefaults fills every zero field from DefaultSettings.
func (s Settings) withDefaults() Settings {
	d := DefaultSettings
	if s.PingInterval <= 0 {
		s.PingInterval = d.PingInterval
	}
	if s.PongTimeout <= 0 {
		s.PongTimeout = d.PongTimeout
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = d.WriteTimeout
	}
	if s.AuthTimeout <= 0 {
		s.AuthTimeout = d.AuthTimeout
	}
	if s.MaxMessageSize <= 0 {
		s.MaxMessageSize = d.MaxMessageSize
	}
	if s.SendQueue <= 0 {
		s.SendQueue = d.SendQueue
	}
	if s.MaxConnectionsPerUID <= 0 {
		s.MaxConnectionsPerUID = d.MaxConnectionsPerUID
	}
	if s.MaxUIDLength <= 0 {
		s.MaxUIDLength = d.MaxUIDLength
	}
	if s.MaxGroupsPerUID <= 0 {
		s.MaxGroupsPerUID = d.MaxGroupsPerUID
	}
	if s.MaxGroups <= 0 {
		s.MaxGroups = d.MaxGroups
	}
	if s.MaxStoredPerClient <= 0 {
		s.MaxStoredPerClient = d.MaxStoredPerClient
	}
	if s.HistoryTTL <= 0 {
		s.HistoryTTL = d.HistoryTTL
	}
	if s.HistoryMaxBytes <= 0 {
		s.HistoryMaxBytes = d.HistoryMaxBytes
	}
	if s.RateLimit <= 0 {
		s.RateLimit = d.RateLimit
	}
	if s.RateBurst <= 0 {
		s.RateBurst = max(d.RateBurst, int(2*s.RateLimit))
	}
	if s.ReconnectJitter <= 0 {
		s.ReconnectJitter = d.ReconnectJitter
	}
	return s
}
