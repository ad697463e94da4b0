// Package webhook is the hub's side of the application in the loop: events
// POSTed to the application in signed batches (Events, a hub.EventSink),
// and a login hook that asks the application about each login (Login, a
// hub.LoginHook). It speaks plain HTTP and JSON; the hub knows nothing of
// it but those two interfaces.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// with the configured secret; DeliveryHeader a batch's id, the same on each
// retry, so that the application can tell a retry from a new batch.
const (
	SignatureHeader = "X-PushHub-Signature"
	DeliveryHeader  = "X-PushHub-Delivery"
)

// EventsConfig says where events go and how.
type EventsConfig struct {
	URL    string
	Secret string   // HMAC key of SignatureHeader; "" sends unsigned batches
	Kinds  []string // the kinds sent (hub.EventLogin, ...); nil: all
	Hub    string   // named in every batch
	Node   string   // named in every batch: the instance that sends it

	QueueSize int           // events waiting to be sent; past it they are dropped. Default: 10000.
	BatchSize int           // events per POST at most. Default: 100.
	Timeout   time.Duration // of one POST. Default: 5s.
	Retries   int           // tries again after a failed POST, with backoff. Default (0): 5; negative: never.
	Client    *http.Client  // default: a client of its own
}

// Events sends a hub endpoint's events to the application: Emit never
// blocks; one goroutine of its own POSTs them in batches, as many as are
// waiting, and tries a failed batch again with backoff and jitter. What
// the queue cannot hold is dropped, and counted.
type Events struct {
	cfg      EventsConfig
	kinds    map[string]bool
	queue    chan hub.Event
	counters *hub.EventCounters
	log      *zap.Logger
	stop     chan struct{}
	done     chan struct{}
	closed   atomic.Bool
	lastDrop atomic.Int64 // unix nanoseconds of the last drop logged
}

// NewEvents starts sending events to cfg.URL; counters count what becomes
// of them (the hub's, from Hub.EventCounters).
func NewEvents(cfg EventsConfig, counters *hub.EventCounters, log *zap.Logger) *Events {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	e := &Events{
		cfg:      cfg,
		queue:    make(chan hub.Event, cfg.QueueSize),
		counters: counters,
		log:      log,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if cfg.Kinds != nil {
		e.kinds = make(map[string]bool)
		for _, k := range cfg.Kinds {
			e.kinds[k] = true
		}
	}
	go e.run()
	return e
}

// Wants tells whether events of kind are sent.
func (e *Events) Wants(kind string) bool { return e.kinds == nil || e.kinds[kind] }

// Emit queues ev without blocking; false means the queue was full and ev
// was dropped.
func (e *Events) Emit(ev hub.Event) bool {
	if e.closed.Load() {
		e.dropped(1)
		return false
	}
	select {
	case e.queue <- ev:
		return true
	default:
		e.dropped(1)
		return false
	}
}

// dropped counts events that were not sent, and logs it at most once a
// second.
func (e *Events) dropped(n int) {
	e.counters.Dropped.Add(uint64(n))
	now := time.Now().UnixNano()
	if last := e.lastDrop.Load(); now-last > int64(time.Second) && e.lastDrop.CompareAndSwap(last, now) {
		e.log.Warn("events to the application dropped: its queue is full (is the application down or slow?)",
			zap.String("url", e.cfg.URL), zap.Uint64("dropped_in_all", e.counters.Dropped.Load()))
	}
}

// closeWithin bounds how long Close waits for queued events to go.
const closeWithin = 2 * time.Second

// Close sends what is queued, for closeWithin at most, and stops. Events
// emitted afterwards are dropped.
func (e *Events) Close() {
	if !e.closed.CompareAndSwap(false, true) {
		return
	}
	close(e.stop)
	<-e.done
}

// wireEvent is an event as the application gets it.
type wireEvent struct {
	Kind       string          `json:"kind"`
	Time       time.Time       `json:"time"`
	UID        string          `json:"uid"`
	ConnID     string          `json:"conn_id"`
	Remote     string          `json:"remote"`
	Protocol   string          `json:"protocol"`
	Claims     map[string]any  `json:"claims,omitempty"`
	Code       int             `json:"code,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	DurationMS int64           `json:"duration_ms,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// batch is the body of a POST.
type batch struct {
	Hub    string      `json:"hub"`
	Node   string      `json:"node,omitempty"`
	Events []wireEvent `json:"events"`
}

func (e *Events) run() {
	defer close(e.done)
	defer func() {
		if v := recover(); v != nil {
			e.log.Error("panic in the events sender; events are no longer sent",
				zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		}
	}()
	for {
		var first hub.Event
		select {
		case first = <-e.queue:
		case <-e.stop:
			e.drain()
			return
		}
		e.send(e.collect(first), e.stop)
	}
}

// collect makes a batch of first and what else is waiting.
func (e *Events) collect(first hub.Event) []hub.Event {
	evs := []hub.Event{first}
	for len(evs) < e.cfg.BatchSize {
		select {
		case ev := <-e.queue:
			evs = append(evs, ev)
		default:
			return evs
		}
	}
	return evs
}

// drain sends what is queued at Close, within closeWithin.
func (e *Events) drain() {
	deadline := make(chan struct{})
	timer := time.AfterFunc(closeWithin, func() { close(deadline) })
	defer timer.Stop()
	for {
		select {
		case first := <-e.queue:
			e.send(e.collect(first), deadline)
		default:
			return
		}
		select {
		case <-deadline:
			e.dropped(len(e.queue))
			return
		default:
		}
	}
}

// send POSTs evs, trying again with backoff while abort is open; a batch
// that never goes through counts as failed.
func (e *Events) send(evs []hub.Event, abort <-chan struct{}) {
	b := batch{Hub: e.cfg.Hub, Node: e.cfg.Node, Events: make([]wireEvent, len(evs))}
	for i, ev := range evs {
		b.Events[i] = wireEvent{
			Kind: ev.Kind, Time: ev.Time.UTC(), UID: ev.UID, ConnID: ev.ConnID, Remote: ev.Remote, Protocol: ev.Protocol,
			Claims: ev.Claims, Code: ev.Code, Reason: ev.Reason, DurationMS: ev.Duration.Milliseconds(), Data: ev.Data,
		}
	}
	body, err := json.Marshal(b)
	if err != nil {
		e.log.Error("encoding events", zap.Error(err))
		e.counters.Failed.Add(uint64(len(evs)))
		return
	}
	id := newID()
	pause := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := post(context.Background(), e.cfg.Client, e.cfg.URL, e.cfg.Secret, id, body, e.cfg.Timeout, nil)
		if err == nil {
			e.counters.Sent.Add(uint64(len(evs)))
			return
		}
		if attempt >= e.cfg.Retries {
			e.counters.Failed.Add(uint64(len(evs)))
			e.log.Warn("events to the application failed; this batch is given up",
				zap.String("url", e.cfg.URL), zap.Int("events", len(evs)), zap.Int("attempts", attempt+1), zap.Error(err))
			return
		}
		select {
		case <-time.After(pause/2 + mrand.N(pause)):
		case <-abort:
			e.counters.Failed.Add(uint64(len(evs)))
			return
		}
		pause = min(2*pause, 10*time.Second)
	}
}

// post sends a signed JSON body, within timeout unless ctx ends first,
// and, with out, decodes a JSON answer into it; a non-2xx answer is an
// error. Fields of the answer that out does not name are ignored, so an
// application may answer more than the hub reads.
func post(ctx context.Context, c *http.Client, url, secret, id string, body []byte, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddy-pushhub")
	req.Header.Set(DeliveryHeader, id)
	if secret != "" {
		req.Header.Set(SignatureHeader, Sign(secret, body))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the application answered %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("the application's answer is not the expected JSON: %v", err)
	}
	return nil
}

// Sign is the value of SignatureHeader for body: "sha256=" and the hex
// HMAC-SHA256 of body with secret. An application checks it with Verify.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports, in constant time, whether signature is body's with
// secret.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// KnownKinds are the event kinds an events block may name.
var KnownKinds = []string{hub.EventLogin, hub.EventClose, hub.EventMessage}

// ValidKind reports whether kind is one of KnownKinds.
func ValidKind(kind string) bool { return slices.Contains(KnownKinds, kind) }

var _ hub.EventSink = (*Events)(nil)
