package pushhub

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
	"github.com/pushhub/caddy-pushhub/pushapi"
)

// API is the push_api handler: the server-side push API to a hub, JSON over
// HTTP. The last path segment names the call (send, join, leave, kick,
// online, uids, stats), so it works at a site's root or under a prefix.
type API struct {
	// Hub names the hub to push to. Default: "default".
	Hub string `json:"hub,omitempty"`

	// Key is the Bearer key callers must present in an Authorization
	// header, compared in constant time; placeholders such as
	// {env.PUSH_API_KEY} are expanded when the config loads. Empty means no
	// key: only callers from loopback addresses are served, others get 403.
	Key string `json:"key,omitempty"`

	// MaxBodySize caps request bodies, in bytes; a larger body is refused
	// with 413. Default: 1048576 (1 MiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// IdempotencyWindow is how long an idempotency_key of POST /send is
	// remembered: a repeat within it delivers nothing and gets the first
	// push's receipt. Default: 5m; at most 24h.
	IdempotencyWindow caddy.Duration `json:"idempotency_window,omitempty"`

	hub    *hub.Hub
	key    [sha256.Size]byte
	hasKey bool
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.push_api",
		New: func() caddy.Module { return new(API) },
	}
}

// Provision expands the key and takes the hub from the pool.
func (a *API) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.Hub = cmp.Or(a.Hub, defaultHub)
	if a.MaxBodySize == 0 {
		a.MaxBodySize = 1 << 20
	}
	if a.Key != "" {
		key, err := expandRequired("push_api: the key", a.Key)
		if err != nil {
			return err
		}
		a.key, a.hasKey = sha256.Sum256([]byte(key)), true
	}
	app, h, err := takeHub(ctx, a.Hub, a.logger)
	if err != nil {
		return err
	}
	a.hub = h
	app.hold(h)
	return registerMetrics(ctx)
}

// Validate checks the configuration.
func (a *API) Validate() error {
	if a.MaxBodySize < 0 {
		return errors.New("push_api: max_body_size must not be negative")
	}
	if a.IdempotencyWindow < 0 || time.Duration(a.IdempotencyWindow) > maxIdempotencyWindow {
		return fmt.Errorf("push_api: idempotency_window must be between 0 and %s", maxIdempotencyWindow)
	}
	return nil
}

// Cleanup releases the hub.
func (a *API) Cleanup() error { return releaseHub(a.Hub, a.hub) }

// apiError is an error answered as {"error": {"code": ..., "message": ...}}.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

// call is one API call: its method and what it does.
type call struct {
	method string
	serve  func(a *API, w http.ResponseWriter, r *http.Request) (any, *apiError)
}

var calls = map[string]call{
	"send":   {http.MethodPost, (*API).send},
	"join":   {http.MethodPost, (*API).join},
	"leave":  {http.MethodPost, (*API).leave},
	"kick":   {http.MethodPost, (*API).kick},
	"online": {http.MethodGet, (*API).online},
	"uids":   {http.MethodGet, (*API).uids},
	"stats":  {http.MethodGet, (*API).stats},
}

// ServeHTTP answers an API call. Every refusal is a 4xx with a JSON body.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	result, aerr := a.serve(w, r)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	if aerr != nil {
		status = aerr.status
		result = map[string]any{"error": map[string]string{"code": aerr.code, "message": aerr.message}}
		if ce := a.logger.Check(zap.DebugLevel, "push_api refused a request"); ce != nil {
			ce.Write(zap.String("remote", r.RemoteAddr), zap.String("path", r.URL.Path), zap.String("code", aerr.code))
		}
	}
	body, err := json.Marshal(result)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	w.WriteHeader(status)
	_, err = w.Write(append(body, '\n'))
	return err
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) (any, *apiError) {
	if aerr := a.authorize(w, r); aerr != nil {
		return nil, aerr
	}
	name := path.Base(r.URL.Path)
	c, ok := calls[name]
	if !ok {
		return nil, &apiError{http.StatusNotFound, "unknown_call",
			fmt.Sprintf("no API call %q: want send, join, leave, kick, online, uids or stats", name)}
	}
	if r.Method != c.method && !(c.method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", c.method)
		return nil, &apiError{http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s takes %s, not %s", name, c.method, r.Method)}
	}
	if c.method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, a.MaxBodySize)
	}
	return c.serve(a, w, r)
}

// authorize checks the Bearer key, or with no key that the caller is on a
// loopback address.
func (a *API) authorize(w http.ResponseWriter, r *http.Request) *apiError {
	if !a.hasKey {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return &apiError{http.StatusForbidden, "forbidden",
				"push_api has no key configured, so it serves loopback callers only"}
		}
		return nil
	}
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="push_api"`)
		return &apiError{http.StatusUnauthorized, "unauthorized", "an Authorization: Bearer <key> header is required"}
	}
	// Hashing first makes the comparison constant-time in the key's length too.
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	if subtle.ConstantTimeCompare(sum[:], a.key[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="push_api", error="invalid_token"`)
		return &apiError{http.StatusUnauthorized, "unauthorized", "the key is wrong"}
	}
	return nil
}

// decode reads a JSON object body into v, refusing unknown fields and
// trailing data.
func decode(r *http.Request, v any) *apiError {
	body, aerr := readBody(r)
	if aerr != nil {
		return aerr
	}
	return decodeBody(body, v)
}

// readBody reads a request's body, within push_api's max_body_size.
func readBody(r *http.Request) ([]byte, *apiError) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)}
		}
		return nil, badRequest("bad_body", "reading the body: %v", err)
	}
	return body, nil
}

func decodeBody(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("bad_json", "the body is empty: a JSON object is expected")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("bad_json", "the body is not the expected JSON object: %v", err)
	}
	// More says nothing of a stray ']' or '}' after the object: look at
	// what is left.
	if len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		return badRequest("bad_json", "the body has data after its JSON object")
	}
	return nil
}

// SendRequest is the body of POST /send: data and exactly one target.
type SendRequest struct {
	UID   string          `json:"uid,omitempty"`
	UIDs  []string        `json:"uids,omitempty"`
	Group string          `json:"group,omitempty"`
	All   bool            `json:"all,omitempty"`
	Data  json.RawMessage `json:"data"`
	// WaitAck makes the call wait, at most this long (e.g. "2s"), for the
	// json connections reached to acknowledge the message.
	WaitAck caddy.Duration `json:"wait_ack,omitempty"`
	// IdempotencyKey makes a retry safe: a second request with the same key
	// within the push_api's idempotency_window delivers nothing and gets
	// the first request's receipt (with the Idempotency-Replayed header).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Caps of one send.
const (
	maxUIDsPerSend       = 10000
	maxWaitAck           = 30 * time.Second
	maxIdempotencyKey    = 256
	maxIdempotencyWindow = 24 * time.Hour
)

// validateSend checks a send request; it is the API's decoding contract,
// shared with the fuzz tests.
func (a *API) validateSend(req *SendRequest) *apiError {
	targets := 0
	if req.UID != "" {
		targets++
	}
	if req.UIDs != nil {
		targets++
	}
	if req.Group != "" {
		targets++
	}
	if req.All {
		targets++
	}
	if targets != 1 {
		return badRequest("bad_target", `name exactly one target: "uid", "uids", "group" or "all": true`)
	}
	if req.WaitAck < 0 || time.Duration(req.WaitAck) > maxWaitAck {
		return badRequest("bad_wait_ack", "wait_ack must be between 0 and %s", maxWaitAck)
	}
	if len(req.Data) == 0 || string(req.Data) == "null" {
		return badRequest("missing_data", `"data" is required: any JSON value but null`)
	}
	if k := req.IdempotencyKey; k != "" && (len(k) > maxIdempotencyKey || hub.ValidName("key", k, maxIdempotencyKey) != nil) {
		return badRequest("bad_idempotency_key", "idempotency_key must be 1 to %d bytes of UTF-8 without control characters", maxIdempotencyKey)
	}
	max := a.hub.Settings().MaxUIDLength
	if len(req.UIDs) > maxUIDsPerSend {
		return badRequest("bad_target", "at most %d uids per send", maxUIDsPerSend)
	}
	if req.UIDs != nil && len(req.UIDs) == 0 {
		return badRequest("bad_target", `"uids" is empty`)
	}
	uids := req.UIDs
	if req.UID != "" {
		uids = []string{req.UID}
	}
	for _, uid := range uids {
		if err := hub.ValidName("uid", uid, max); err != nil {
			return badRequest(hub.ErrorCode(err, "invalid_uid"), "%v", err)
		}
	}
	if req.Group != "" {
		if err := hub.ValidName("group", req.Group, max); err != nil {
			return badRequest(hub.ErrorCode(err, "invalid_group"), "%v", err)
		}
	}
	return nil
}

func (a *API) send(w http.ResponseWriter, r *http.Request) (any, *apiError) {
	body, aerr := readBody(r)
	if aerr != nil {
		return nil, aerr
	}
	var req SendRequest
	if aerr := readSend(body, &req); aerr != nil {
		return nil, aerr
	}
	if aerr := a.validateSend(&req); aerr != nil {
		return nil, aerr
	}
	target := hub.Target{UID: req.UID, UIDs: req.UIDs, Group: req.Group, All: req.All}
	opts := hub.SendOptions{
		WaitAck:           time.Duration(req.WaitAck),
		IdempotencyKey:    req.IdempotencyKey,
		IdempotencyWindow: time.Duration(a.IdempotencyWindow),
	}
	rc, err := a.hub.Send(r.Context(), target, hub.Message{Data: req.Data}, opts)
	if err != nil {
		return nil, unavailable(err)
	}
	if rc.Duplicate {
		w.Header().Set("Idempotency-Replayed", "true")
	}
	out := pushapi.SendReceipt{Delivered: rc.Delivered, Dropped: rc.Dropped, Stored: rc.Stored}
	if rc.Unreached < 0 {
		out.ClusterUnavailable = true
	} else {
		out.UnreachedNodes = rc.Unreached
	}
	if opts.WaitAck > 0 {
		out.Acked = &rc.Acked
	}
	return out, nil
}

// MembershipRequest is the body of POST /join and POST /leave.
type MembershipRequest struct {
	UID   string `json:"uid"`
	Group string `json:"group"`
}

func (a *API) membership(r *http.Request) (*MembershipRequest, *apiError) {
	var req MembershipRequest
	if aerr := decode(r, &req); aerr != nil {
		return nil, aerr
	}
	max := a.hub.Settings().MaxUIDLength
	if err := hub.ValidName("uid", req.UID, max); err != nil {
		return nil, badRequest(hub.ErrorCode(err, "invalid_uid"), "%v", err)
	}
	if err := hub.ValidName("group", req.Group, max); err != nil {
		return nil, badRequest(hub.ErrorCode(err, "invalid_group"), "%v", err)
	}
	return &req, nil
}

func (a *API) join(_ http.ResponseWriter, r *http.Request) (any, *apiError) {
	req, aerr := a.membership(r)
	if aerr != nil {
		return nil, aerr
	}
	if err := a.hub.Join(r.Context(), req.UID, req.Group); err != nil {
		var he *hub.Error
		switch {
		case errors.Is(err, hub.ErrOffline):
			return nil, &apiError{http.StatusNotFound, hub.ErrorCode(err, "uid_offline"), err.Error()}
		case errors.As(err, &he):
			return nil, &apiError{http.StatusBadRequest, he.Code, he.Message}
		}
		return nil, unavailable(err)
	}
	return map[string]bool{"ok": true}, nil
}

func (a *API) leave(_ http.ResponseWriter, r *http.Request) (any, *apiError) {
	req, aerr := a.membership(r)
	if aerr != nil {
		return nil, aerr
	}
	wasMember, err := a.hub.Leave(r.Context(), req.UID, req.Group)
	if err != nil {
		return nil, unavailable(err)
	}
	return map[string]bool{"ok": true, "was_member": wasMember}, nil
}

// KickRequest is the body of POST /kick.
type KickRequest struct {
	UID    string `json:"uid"`
	Reason string `json:"reason,omitempty"`
}

func (a *API) kick(_ http.ResponseWriter, r *http.Request) (any, *apiError) {
	var req KickRequest
	if aerr := decode(r, &req); aerr != nil {
		return nil, aerr
	}
	if err := hub.ValidName("uid", req.UID, a.hub.Settings().MaxUIDLength); err != nil {
		return nil, badRequest(hub.ErrorCode(err, "invalid_uid"), "%v", err)
	}
	if req.Reason == "" {
		req.Reason = "kicked"
	}
	closed, err := a.hub.Kick(r.Context(), req.UID, req.Reason)
	if err != nil {
		return nil, unavailable(err)
	}
	return map[string]any{"uid": req.UID, "closed": closed}, nil
}

func (a *API) online(_ http.ResponseWriter, r *http.Request) (any, *apiError) {
	uid := r.URL.Query().Get("uid")
	if err := hub.ValidName("uid", uid, a.hub.Settings().MaxUIDLength); err != nil {
		return nil, badRequest(hub.ErrorCode(err, "invalid_uid"), "%v (pass ?uid=)", err)
	}
	n, err := a.hub.Online(r.Context(), uid)
	if err != nil {
		return nil, unavailable(err)
	}
	return map[string]any{"uid": uid, "online": n > 0, "connections": n}, nil
}

// Paging of GET /uids.
const (
	defaultUIDsLimit = 1000
	maxUIDsLimit     = 10000
)

func (a *API) uids(_ http.ResponseWriter, r *http.Request) (any, *apiError) {
	q := r.URL.Query()
	limit := defaultUIDsLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxUIDsLimit {
			return nil, badRequest("bad_limit", "limit must be a number from 1 to %d", maxUIDsLimit)
		}
		limit = n
	}
	group := q.Get("group")
	uids, more, err := a.hub.UIDs(r.Context(), group, q.Get("after"), limit)
	if err != nil {
		return nil, unavailable(err)
	}
	if uids == nil {
		uids = []string{}
	}
	out := map[string]any{"uids": uids}
	if group != "" {
		out["group"] = group
	}
	if more {
		out["next"] = uids[len(uids)-1]
	}
	return out, nil
}

func (a *API) stats(_ http.ResponseWriter, r *http.Request) (any, *apiError) {
	return wireStats(a.hub.Stats(r.Context())), nil
}

// wireStats is the answer of GET /stats.
func wireStats(st hub.Stats) pushapi.Stats {
	return pushapi.Stats{
		Hub:            st.Hub,
		Connections:    st.Connections,
		Pending:        st.Pending,
		UIDs:           st.UIDs,
		OfflineKept:    st.OfflineKept,
		Groups:         st.Groups,
		MessagesIn:     st.MessagesIn,
		MessagesOut:    st.MessagesOut,
		Pushes:         st.Pushes,
		SlowConsumers:  st.SlowConsumers,
		HistoryStored:  st.HistoryStored,
		HistoryBytes:   st.HistoryBytes,
		HistoryMaxSize: st.HistoryMaxSize,
		Goroutines:     st.Goroutines,
		EventsSent:     st.EventsSent,
		EventsFailed:   st.EventsFailed,
		EventsDropped:  st.EventsDropped,
		Logins:         st.Logins,
		LoginRefusals:  st.LoginRefusals,
		Closes:         wireCloses(st.Closes),
		SendQueued:     st.SendQueued,
		SendQueueMax:   st.SendQueueMax,
		LaneQueued:     st.LaneQueued,
		Cluster:        wireCluster(st.Cluster),
	}
}

// wireCloses keys closes by the close code's decimal text, as JSON does.
func wireCloses(m map[int]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for code, n := range m {
		out[strconv.Itoa(code)] = n
	}
	return out
}

func wireCluster(c *hub.ClusterStats) *pushapi.ClusterStats {
	if c == nil {
		return nil
	}
	out := &pushapi.ClusterStats{
		Node: c.Node, Connected: c.Connected, Unanswered: c.Unanswered,
		StoreErrors: c.StoreErrors, Reconnects: c.Reconnects, Unreached: c.Unreached,
		PushScripts: c.PushScripts, PushRoundTrips: c.PushRoundTrips,
		Nodes: make([]pushapi.NodeStats, len(c.Nodes)),
	}
	for i, n := range c.Nodes {
		out.Nodes[i] = pushapi.NodeStats(n)
	}
	return out
}

// unavailable answers a call the hub's broker could not carry out (a
// cluster whose store cannot be reached).
func unavailable(err error) *apiError {
	return &apiError{http.StatusServiceUnavailable, hub.ErrorCode(err, "unavailable"), err.Error()}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*API)(nil)
	_ caddy.Validator             = (*API)(nil)
	_ caddy.CleanerUpper          = (*API)(nil)
	_ caddyhttp.MiddlewareHandler = (*API)(nil)
)
