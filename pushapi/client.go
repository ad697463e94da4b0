// Package pushapi is a Go client for caddy-pushhub's server-side push API
// (the push_api handler): send to a uid, a list of uids, a group or
// everyone; manage group membership; kick; ask who is online; read the hub's
// counters.
//
//	c := pushapi.New("http://127.0.0.1:7070", os.Getenv("PUSH_API_KEY"), nil)
//	rc, err := c.SendUID(ctx, "42", map[string]any{"text": "hello"})
//
// A refusal by the API (a 4xx, or any other non-2xx answer) is returned as a
// *Error carrying the status and the API's stable error code:
//
//	var apiErr *pushapi.Error
//	if errors.As(err, &apiErr) && apiErr.Code == "uid_offline" { ... }
//
// A Client is safe for concurrent use and keeps its connections alive, so
// one Client should be shared by all goroutines of a program.
package pushapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one push API. Its zero value is not usable: make it with New.
type Client struct {
	base string // without a trailing slash; calls are base + "/" + name
	auth string // the Authorization header value, or ""
	hc   *http.Client

	// Retries is how many times Send tries again after a connection error
	// (the connection refused, reset or closed before the answer: during a
	// server's reload, say). Each push carries an idempotency key, so a
	// retry of a push that did land delivers nothing twice. Default: 4.
	// With 0, Send never retries and makes no key for a push that has none
	// (the API then keeps no receipt for it, which costs it less).
	Retries int
}

// DefaultRetries is Client.Retries of a new Client.
const DefaultRetries = 4

// New returns a client of the push API at baseURL, the address the push_api
// handler answers at: "http://127.0.0.1:7070", or "https://host/push" when
// it is mounted under a prefix. key is the Bearer key; "" sends none (a
// push_api without a key serves loopback callers only). hc is the HTTP
// client to use; nil means a client of its own whose transport keeps up to
// 256 idle connections to the API alive, so that many goroutines can send at
// once without opening a connection per call.
func New(baseURL, key string, hc *http.Client) *Client {
	if hc == nil {
		// The timeout bounds calls whose context has no deadline.
		hc = &http.Client{Transport: NewTransport(256), Timeout: time.Minute}
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: hc, Retries: DefaultRetries}
	if key != "" {
		c.auth = "Bearer " + key
	}
	return c
}

// NewTransport returns an HTTP transport for a push API: the default
// transport's settings (proxy from the environment, dial and TLS timeouts,
// HTTP/2 where the server offers it) with idle connections kept per host, up
// to maxIdlePerHost of them, so that busy callers reuse connections.
func NewTransport(maxIdlePerHost int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = max(t.MaxIdleConns, maxIdlePerHost)
	t.MaxIdleConnsPerHost = maxIdlePerHost
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Error is a refusal by the API: a non-2xx answer. Code and Message come
// from the API's error body ({"error": {"code": ..., "message": ...}}); when
// the body is not one (a proxy's error page, say), Code is "" and Message
// holds the start of the body.
type Error struct {
	Status  int    // the HTTP status code
	Code    string // the API's stable error code, e.g. "bad_target", "uid_offline"
	Message string // the API's explanation, for people
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("push API: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("push API: %d %s: %s", e.Status, e.Code, e.Message)
}

// SendRequest is one push: Data and exactly one target of UID, UIDs, Group
// and All.
type SendRequest struct {
	UID   string   `json:"uid,omitempty"`
	UIDs  []string `json:"uids,omitempty"`
	Group string   `json:"group,omitempty"`
	All   bool     `json:"all,omitempty"`
	// Data is any JSON value but null: it is encoded with encoding/json, and
	// a json.RawMessage goes as it is. The text protocol delivers a string as
	// its bare text and anything else as its JSON text.
	Data any `json:"data"`
	// WaitAck, when positive, makes the call wait up to this long (the API
	// allows 30s) for the json connections reached to acknowledge the
	// message; the receipt's Acked counts those that did. It travels as
	// nanoseconds, which the API accepts like a duration string.
	WaitAck time.Duration `json:"wait_ack,omitempty"`
	// IdempotencyKey makes the push happen once however often it is sent
	// within the API's idempotency window (5 minutes by default). Send
	// makes one when it is empty, so that its own retries are safe; set it
	// to make your own retries (after a crash, say) safe too.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// SendReceipt tells what a push reached.
type SendReceipt struct {
	// Delivered counts the connections the message was queued to.
	Delivered int `json:"delivered"`
	// Dropped counts connections cut off as slow consumers by this message.
	Dropped int `json:"dropped"`
	// Stored tells whether the message was kept in history for later
	// delivery: to a uid that is offline, or to a client that resumes.
	Stored bool `json:"stored"`
	// Acked counts the json connections that acknowledged the message
	// within WaitAck; nil when WaitAck was not given.
	Acked *int `json:"acked,omitempty"`
	// UnreachedNodes counts, in cluster mode, the instances that should
	// have delivered the push but did not answer in time.
	UnreachedNodes int `json:"unreached_nodes,omitempty"`
	// ClusterUnavailable is true, in cluster mode, when the cluster's Redis
	// could not be reached: only the instance that took the push delivered
	// it, and nothing was stored.
	ClusterUnavailable bool `json:"cluster_unavailable,omitempty"`
	// Duplicate is true when the push repeated an idempotency key: nothing
	// was delivered again, and the figures are the first push's (the API
	// says so with its Idempotency-Replayed header).
	Duplicate bool `json:"-"`
}

// Online is the answer of GET /online: whether a uid is connected, and by
// how many connections.
type Online struct {
	UID         string `json:"uid"`
	Online      bool   `json:"online"`
	Connections int    `json:"connections"`
}

// UIDsQuery selects a page of GET /uids.
type UIDsQuery struct {
	// Group restricts the list to that group's members; "" lists every
	// online uid.
	Group string
	// After starts the page after this uid (uids come in byte order): pass
	// the previous page's Next.
	After string
	// Limit caps the page; 0 means the API's default (1000), and the API
	// allows at most 10000.
	Limit int
}

// UIDPage is one page of online uids.
type UIDPage struct {
	UIDs  []string `json:"uids"`
	Group string   `json:"group,omitempty"`
	// Next is "" on the last page; otherwise it is the After of the next
	// page.
	Next string `json:"next,omitempty"`
}

// Stats are a hub's counters, as GET /stats answers them.
type Stats struct {
	Hub            string `json:"hub"`
	Connections    int64  `json:"connections"`       // logged-in connections
	Pending        int    `json:"pending"`           // connections that have not logged in
	UIDs           int    `json:"uids"`              // online uids
	OfflineKept    int    `json:"offline_uids_kept"` // offline uids whose history is kept
	Groups         int    `json:"groups"`            // groups with a member
	MessagesIn     uint64 `json:"messages_in"`       // frames received from clients
	MessagesOut    uint64 `json:"messages_out"`      // message frames queued to connections
	Pushes         uint64 `json:"pushes"`            // API sends and client publishes
	SlowConsumers  uint64 `json:"slow_consumers"`    // connections cut off with a full queue
	HistoryStored  int64  `json:"history_messages"`  // messages kept for resume
	HistoryBytes   int64  `json:"history_bytes"`     // their memory
	HistoryMaxSize int64  `json:"history_max_bytes"` // the history budget
	Goroutines     int    `json:"goroutines"`        // of the server process
	EventsSent     uint64 `json:"events_sent"`       // events the application took
	EventsFailed   uint64 `json:"events_failed"`     // events given up after retries
	EventsDropped  uint64 `json:"events_dropped"`    // events never sent: their queue was full
	// The answering instance's own, in cluster mode too:
	Logins        uint64            `json:"logins"`                   // logins accepted
	LoginRefusals map[string]uint64 `json:"login_refusals,omitempty"` // logins refused, by error code ("auth_timeout": none came in time)
	Closes        map[string]uint64 `json:"closes,omitempty"`         // connections closed, by close code ("1006": lost without one)
	SendQueued    int               `json:"send_queued"`              // frames waiting in send queues
	SendQueueMax  int               `json:"send_queue_max"`           // the longest send queue
	LaneQueued    int               `json:"lane_queued"`              // clients' commands waiting in the lanes (cluster mode)
	// Cluster is set in cluster mode; the counters above are then the
	// whole cluster's.
	Cluster *ClusterStats `json:"cluster,omitempty"`
}

// ClusterStats describe a hub's cluster, as the instance that answered
// sees it.
type ClusterStats struct {
	Node        string      `json:"node"`         // the answering instance's id
	Connected   bool        `json:"connected"`    // it reaches Redis: pushes reach the other instances
	Nodes       []NodeStats `json:"nodes"`        // each live instance that answered, this one first
	Unanswered  int         `json:"unanswered"`   // live instances that did not answer in time
	StoreErrors uint64      `json:"store_errors"` // operations on Redis that failed, on this instance
	Reconnects  uint64      `json:"reconnects"`   // times this instance got Redis back after losing it
	Unreached   uint64      `json:"unreached"`    // pushes from this instance that did not reach every instance
	// Push scripts this instance sent to Redis, and the round trips they
	// took: the scripts of concurrent pushes share a pipelined one.
	PushScripts    uint64 `json:"push_scripts"`
	PushRoundTrips uint64 `json:"push_round_trips"`
}

// NodeStats are one instance's own counters.
type NodeStats struct {
	Node          string `json:"node"`
	Connections   int64  `json:"connections"`
	Pending       int    `json:"pending"`
	UIDs          int    `json:"uids"`
	Groups        int    `json:"groups"`
	MessagesIn    uint64 `json:"messages_in"`
	MessagesOut   uint64 `json:"messages_out"`
	Pushes        uint64 `json:"pushes"`
	SlowConsumers uint64 `json:"slow_consumers"`
	Goroutines    int    `json:"goroutines"`
}

// Send pushes req and returns the receipt. After a connection error it
// tries again, up to c.Retries times with a growing pause, with the same
// idempotency key (made here when req has none and Retries is not 0), so
// the push lands once.
func (c *Client) Send(ctx context.Context, req SendRequest) (SendReceipt, error) {
	if req.IdempotencyKey == "" && c.Retries > 0 {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return SendReceipt{}, err
		}
		req.IdempotencyKey = hex.EncodeToString(b[:])
	}
	body, err := json.Marshal(req)
	if err != nil {
		return SendReceipt{}, fmt.Errorf("push API send: encoding the request: %w", err)
	}
	pause := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		var rc SendReceipt
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/send", bytes.NewReader(body))
		if err != nil {
			return rc, err
		}
		hreq.Header.Set("Content-Type", "application/json")
		resp, err := c.do(hreq, "send", &rc)
		if err == nil {
			rc.Duplicate = resp.Header.Get("Idempotency-Replayed") == "true"
			return rc, nil
		}
		if attempt >= c.Retries || !connectionError(ctx, err) {
			return rc, err
		}
		select {
		case <-time.After(pause/2 + mrand.N(pause)):
		case <-ctx.Done():
			return rc, err
		}
		pause *= 2
	}
}

// connectionError reports whether err is the connection failing before an
// answer came (refused, reset, closed): the request may or may not have
// reached the API, and a retry with the same idempotency key is safe.
func connectionError(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return false // the API answered
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

// SendUID pushes data to every connection of uid.
func (c *Client) SendUID(ctx context.Context, uid string, data any) (SendReceipt, error) {
	return c.Send(ctx, SendRequest{UID: uid, Data: data})
}

// SendUIDs pushes data to every connection of each of uids, in one request
// (the API takes at most 10000 uids per request).
func (c *Client) SendUIDs(ctx context.Context, uids []string, data any) (SendReceipt, error) {
	return c.Send(ctx, SendRequest{UIDs: uids, Data: data})
}

// SendGroup pushes data to every connection of every member of group.
func (c *Client) SendGroup(ctx context.Context, group string, data any) (SendReceipt, error) {
	return c.Send(ctx, SendRequest{Group: group, Data: data})
}

// Broadcast pushes data to every connection of the hub.
func (c *Client) Broadcast(ctx context.Context, data any) (SendReceipt, error) {
	return c.Send(ctx, SendRequest{All: true, Data: data})
}

type membership struct {
	UID   string `json:"uid"`
	Group string `json:"group"`
}

// Join adds an online uid to group. Joining an offline uid fails with a 404
// *Error whose Code is "uid_offline".
func (c *Client) Join(ctx context.Context, uid, group string) error {
	return c.post(ctx, "join", membership{uid, group}, nil)
}

// Leave takes uid out of group and reports whether it was a member.
func (c *Client) Leave(ctx context.Context, uid, group string) (wasMember bool, err error) {
	var out struct {
		WasMember bool `json:"was_member"`
	}
	err = c.post(ctx, "leave", membership{uid, group}, &out)
	return out.WasMember, err
}

// Kick closes every connection of uid (close code 4005, with reason; ""
// lets the server say "kicked") and returns how many it closed.
func (c *Client) Kick(ctx context.Context, uid, reason string) (closed int, err error) {
	var out struct {
		Closed int `json:"closed"`
	}
	err = c.post(ctx, "kick", struct {
		UID    string `json:"uid"`
		Reason string `json:"reason,omitempty"`
	}{uid, reason}, &out)
	return out.Closed, err
}

// Online tells whether uid is connected and by how many connections.
func (c *Client) Online(ctx context.Context, uid string) (Online, error) {
	var out Online
	err := c.get(ctx, "online", url.Values{"uid": {uid}}, &out)
	return out, err
}

// UIDs returns one page of online uids (of a group, with q.Group).
func (c *Client) UIDs(ctx context.Context, q UIDsQuery) (UIDPage, error) {
	v := url.Values{}
	if q.Group != "" {
		v.Set("group", q.Group)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var page UIDPage
	err := c.get(ctx, "uids", v, &page)
	return page, err
}

// AllUIDs returns every online uid (of group, unless it is ""), following
// the pages of GET /uids with pages of limit uids (0: the API's default).
// The list is a sequence of snapshots, not one: uids that come or go while
// it is read may be missed or listed although gone.
func (c *Client) AllUIDs(ctx context.Context, group string, limit int) ([]string, error) {
	var all []string
	q := UIDsQuery{Group: group, Limit: limit}
	for {
		page, err := c.UIDs(ctx, q)
		if err != nil {
			return all, err
		}
		all = append(all, page.UIDs...)
		if page.Next == "" || page.Next == q.After {
			return all, nil
		}
		q.After = page.Next
	}
}

// Stats returns the hub's counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := c.get(ctx, "stats", nil, &st)
	return st, err
}

func (c *Client) post(ctx context.Context, name string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("push API %s: encoding the request: %w", name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, err = c.do(req, name, out)
	return err
}

func (c *Client) get(ctx context.Context, name string, q url.Values, out any) error {
	u := c.base + "/" + name
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	_, err = c.do(req, name, out)
	return err
}

// maxAnswer bounds how much of an answer is read. The largest real answer
// is a page of 10000 uids of at most 4 KiB each (about 41 MB); the bound
// guards against a misdirected URL, it is not a limit of the API.
const maxAnswer = 64 << 20

func (c *Client) do(req *http.Request, name string, out any) (*http.Response, error) {
	req.Header.Set("Accept", "application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Reading to the end lets the transport reuse the connection.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp, fmt.Errorf("push API %s: reading the answer: %w", name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, errorFrom(resp.StatusCode, body)
	}
	if out == nil {
		return resp, nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp, fmt.Errorf("push API %s: the answer is not the expected JSON: %w", name, err)
	}
	return resp, nil
}

// errorFrom makes the *Error of a non-2xx answer.
func errorFrom(status int, body []byte) *Error {
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		return &Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Message: msg}
}

// IsOffline reports whether err is the API's answer that a uid has no
// connection (a Join of an offline uid).
func IsOffline(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == "uid_offline"
}
