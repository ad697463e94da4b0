package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pushhub/caddy-pushhub/pushapi"
)

// The targets pushbench measures. Every figure means the same for each: the
// server's CPU per connect + login, per copy, per message; RSS per idle
// connection; time to the last copy of a broadcast; unicast latency.
//
//   - hub: push_hub (json or text protocol) and push_api.
//   - recipe: the Workerman recipe's text protocol ("How to send data to a
//     specific client"): the first frame is the uid, answered
//     "login success, your uid is <uid>"; afterwards "<uid>:<message>" goes to
//     that uid and "all:<message>" to everyone. It has no push API, so unicast
//     is measured through clients publishing and broadcasts through a client
//     sending "all:"; the API phases are skipped. It splits at every colon
//     and keeps one connection per uid: payloads hold no colon, and every
//     connection has its own uid.
//   - centrifugo: its JSON protocol over WebSocket, logged in with an HS256
//     token {sub: uid, channels: ["broadcast"]}, each uid subscribed to its
//     personal channel "#<uid>"; pushes through its HTTP API (publish to
//     "#<uid>", broadcast by publishing to "broadcast", batches through
//     /api/broadcast).
const (
	targetHub        = "hub"
	targetRecipe     = "recipe"
	targetCentrifugo = "centrifugo"

	protoCentrifugo = "centrifugo" // the wire of the centrifugo target
)

var (
	defaultWS = map[string]string{
		targetHub:        "ws://127.0.0.1:8080/ws",
		targetRecipe:     "ws://127.0.0.1:8181/",
		targetCentrifugo: "ws://127.0.0.1:8000/connection/websocket",
	}
	defaultAPI = map[string]string{
		targetHub:        "http://127.0.0.1:7070",
		targetCentrifugo: "http://127.0.0.1:8000",
	}
)

// The defaults of a Centrifugo configured for benchmarks (and of
// bench.Caddyfile's jwt endpoints); flags and environment variables change
// them.
const (
	defaultJWTSecret     = "pushhub-bench-hmac-secret-0123456789abcdef"
	defaultCentrifugoKey = "pushhub-bench-api-key"
)

// hs256JWT signs claims (a JSON object) as a compact HS256 JWT.
func hs256JWT(secret string, claims []byte) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := head + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return body + "." + enc.EncodeToString(mac.Sum(nil))
}

// loginToken is the token a connection logs in with, or "" where the first
// frame is the uid itself.
func loginToken(wire, secret, uid string) string {
	switch {
	case wire == protoCentrifugo:
		return hs256JWT(secret, []byte(`{"sub":`+strconv.Quote(uid)+`,"channels":["broadcast"]}`))
	case secret != "":
		return hs256JWT(secret, []byte(`{"sub":`+strconv.Quote(uid)+`}`))
	}
	return ""
}

// loginFrame is the first frame a connection sends.
func loginFrame(wire, uid, token string) []byte {
	switch wire {
	case "text":
		if token != "" {
			return []byte(token)
		}
		return []byte(uid)
	case "json":
		if token != "" {
			return []byte(`{"type":"login","token":` + strconv.Quote(token) + `}`)
		}
		return []byte(`{"type":"login","uid":` + strconv.Quote(uid) + `}`)
	default: // centrifugo
		return []byte(`{"id":1,"connect":{"token":` + strconv.Quote(token) + `}}`)
	}
}

// checkGreeting checks the server's answer to a login. For Centrifugo it also
// returns the lines of the frame that followed the connect reply (pushes may
// share its frame).
func checkGreeting(wire, uid string, msg []byte) (rest [][]byte, err error) {
	switch wire {
	case "text":
		if string(msg) != "login success, your uid is "+uid {
			return nil, fmt.Errorf("login answered %.80q", msg)
		}
		return nil, nil
	case "json":
		if !bytes.Contains(msg, []byte(`"type":"welcome"`)) {
			return nil, fmt.Errorf("login answered %.80q", msg)
		}
		return nil, nil
	}
	found := false
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if found {
			rest = append(rest, line)
			continue
		}
		var r cfConnectReply
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("connect answered %.80q: %v", line, err)
		}
		switch {
		case r.ID != 1:
			rest = append(rest, line) // a push before the reply
		case r.Error != nil:
			return nil, fmt.Errorf("connect refused: %d %s", r.Error.Code, r.Error.Message)
		case r.Connect == nil:
			return nil, fmt.Errorf("connect answered %.80q", line)
		default:
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("no connect reply in %.80q", msg)
	}
	return rest, nil
}

// cfConnectReply is the part of a Centrifugo reply that login reads.
type cfConnectReply struct {
	ID      int             `json:"id"`
	Connect json.RawMessage `json:"connect"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// publishFrame is the frame a client sends to publish payload to uid.
func publishFrame(b []byte, wire, uid string, payload []byte) []byte {
	if wire == "text" {
		b = append(b, uid...)
		b = append(b, ':')
		return append(b, payload...)
	}
	b = append(b, `{"type":"send","to":`...)
	b = strconv.AppendQuote(b, uid)
	b = append(b, `,"data":"`...)
	b = append(b, payload...)
	return append(b, `"}`...)
}

// broadcastFrame is the frame a client sends to publish payload to everyone.
func broadcastFrame(b []byte, wire string, payload []byte) []byte {
	if wire == "text" {
		b = append(b, "all:"...)
		return append(b, payload...)
	}
	b = append(b, `{"type":"send","all":true,"data":"`...)
	b = append(b, payload...)
	return append(b, `"}`...)
}

// cfKind is what a line of a Centrifugo frame is.
type cfKind int

const (
	cfOther      cfKind = iota
	cfPing              // {}: the server's ping, to be answered with {}
	cfPush              // a publication in a channel
	cfDisconnect        // the server ends the connection
	cfReply             // the answer to a command
	cfError             // the answer to a command, refusing it
)

// centrifugoKind tells what a line of a Centrifugo frame is. Centrifugo
// writes its fields in a fixed order, so prefixes tell pushes and pings
// apart without decoding; the rare other lines are decoded.
func centrifugoKind(line []byte) cfKind {
	line = bytes.TrimSpace(line)
	switch {
	case string(line) == "{}":
		return cfPing
	case bytes.HasPrefix(line, []byte(`{"push":{"channel":`)) && bytes.Contains(line, []byte(`"pub":`)):
		return cfPush
	}
	var m struct {
		ID    *int            `json:"id"`
		Error json.RawMessage `json:"error"`
		Push  *struct {
			Pub        json.RawMessage `json:"pub"`
			Disconnect json.RawMessage `json:"disconnect"`
		} `json:"push"`
	}
	if json.Unmarshal(line, &m) != nil {
		return cfOther
	}
	switch {
	case m.Push != nil && m.Push.Disconnect != nil:
		return cfDisconnect
	case m.Push != nil && m.Push.Pub != nil:
		return cfPush
	case m.ID != nil && m.Error != nil:
		return cfError
	case m.ID != nil:
		return cfReply
	}
	return cfOther
}

// readLines reads one WebSocket message from r and calls fn with each of its
// non-empty lines (Centrifugo puts several replies and pushes in one frame,
// separated by "\n"). buf is its scratch space: a line longer than buf is cut
// to its head. It does not allocate.
func readLines(r io.Reader, buf []byte, fn func(line []byte)) error {
	n := 0        // bytes of an unfinished line at the head of buf
	skip := false // the head of an overlong line has been passed on; drop the rest
	emit := func(line []byte) {
		if len(line) > 0 {
			fn(line)
		}
	}
	for {
		m, err := r.Read(buf[n:])
		scan, start := n, 0
		n += m
		for {
			k := bytes.IndexByte(buf[scan:n], '\n')
			if k < 0 {
				break
			}
			end := scan + k
			if !skip {
				emit(buf[start:end])
			}
			skip = false
			start, scan = end+1, end+1
		}
		n = copy(buf, buf[start:n])
		if n == len(buf) {
			if !skip {
				emit(buf[:n])
			}
			skip, n = true, 0
		}
		if err == io.EOF {
			if !skip {
				emit(buf[:n])
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// pushTarget is what an API push is addressed to: exactly one of them.
type pushTarget struct {
	uid   string
	uids  []string
	group string
	all   bool
}

// errNoStats is what a pusher without a stats call answers.
var errNoStats = errors.New("the server has no stats call")

// pusher is a server's push API, on one or several nodes.
type pusher interface {
	// send pushes data (a JSON value) through node's API and returns how
	// many copies the server says it queued, or -1 when it does not say.
	send(ctx context.Context, node int, to pushTarget, data []byte) (int, error)
	join(ctx context.Context, node int, uid, group string) error
	// stats is the hub's GET /stats, errNoStats for others.
	stats(ctx context.Context, node int) (pushapi.Stats, error)
	groups() bool
}

// hubPusher is push_api on each node.
type hubPusher struct{ apis []*pushapi.Client }

// With keys false, pushes carry no idempotency key (and are not retried).
func newHubPusher(urls []string, key string, hc *http.Client, keys bool) *hubPusher {
	p := &hubPusher{}
	for _, u := range urls {
		c := pushapi.New(u, key, hc)
		if !keys {
			c.Retries = 0
		}
		p.apis = append(p.apis, c)
	}
	return p
}

func (p *hubPusher) api(node int) *pushapi.Client { return p.apis[node%len(p.apis)] }

func (p *hubPusher) send(ctx context.Context, node int, to pushTarget, data []byte) (int, error) {
	rc, err := p.api(node).Send(ctx, pushapi.SendRequest{UID: to.uid, UIDs: to.uids, Group: to.group, All: to.all, Data: json.RawMessage(data)})
	return rc.Delivered, err
}

func (p *hubPusher) join(ctx context.Context, node int, uid, group string) error {
	return p.api(node).Join(ctx, uid, group)
}

func (p *hubPusher) stats(ctx context.Context, node int) (pushapi.Stats, error) {
	return p.api(node).Stats(ctx)
}

func (p *hubPusher) groups() bool { return true }

// centrifugoPusher is Centrifugo's HTTP API on each node. With keys, each
// publish and broadcast carries an idempotency_key, as pushapi gives every
// push to the hub one (Centrifugo then runs its idempotent publish script
// in Redis instead of a plain PUBLISH).
type centrifugoPusher struct {
	bases []string
	key   string
	hc    *http.Client
	keys  bool
}

func (p *centrifugoPusher) send(ctx context.Context, node int, to pushTarget, data []byte) (int, error) {
	var method string
	var body []byte
	switch {
	case to.uid != "":
		method = "publish"
		body = append(strconv.AppendQuote([]byte(`{"channel":`), "#"+to.uid), `,"data":`...)
	case to.all:
		method = "publish"
		body = []byte(`{"channel":"broadcast","data":`)
	case len(to.uids) > 0:
		method = "broadcast"
		body = []byte(`{"channels":[`)
		for i, u := range to.uids {
			if i > 0 {
				body = append(body, ',')
			}
			body = strconv.AppendQuote(body, "#"+u)
		}
		body = append(body, `],"data":`...)
	default:
		return 0, errors.New("centrifugo has no groups here")
	}
	body = append(body, data...)
	if p.keys {
		var k [16]byte // as pushapi makes its keys
		if _, err := rand.Read(k[:]); err != nil {
			return 0, err
		}
		body = hex.AppendEncode(append(body, `,"idempotency_key":"`...), k[:])
		body = append(body, '"')
	}
	return -1, p.call(ctx, node, method, append(body, '}'))
}

// call POSTs body to /api/<method>; Centrifugo answers 200 with an "error"
// object when it refuses a command.
func (p *centrifugoPusher) call(ctx context.Context, node int, method string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(p.bases[node%len(p.bases)], "/")+"/api/"+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", p.key)
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return err
	}
	return centrifugoAPIError(resp.StatusCode, out)
}

// centrifugoAPIError reads the answer of Centrifugo's HTTP API.
func centrifugoAPIError(status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("centrifugo API: %d %.80s", status, bytes.TrimSpace(body))
	}
	var r struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Result *struct {
			Responses []struct {
				Error *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			} `json:"responses"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("centrifugo API answered %.80q", body)
	}
	if r.Error != nil {
		return fmt.Errorf("centrifugo API: error %d %s", r.Error.Code, r.Error.Message)
	}
	if r.Result != nil {
		for _, x := range r.Result.Responses {
			if x.Error != nil {
				return fmt.Errorf("centrifugo API: error %d %s", x.Error.Code, x.Error.Message)
			}
		}
	}
	return nil
}

func (p *centrifugoPusher) join(context.Context, int, string, string) error {
	return errors.New("centrifugo has no groups here")
}

func (p *centrifugoPusher) stats(context.Context, int) (pushapi.Stats, error) {
	return pushapi.Stats{}, errNoStats
}

func (p *centrifugoPusher) groups() bool { return false }

// newPusher is the target's push API, or nil for the recipe.
func newPusher(cfg *config) pusher {
	if len(cfg.apiURLs) == 0 {
		return nil
	}
	hc := &http.Client{Transport: pushapi.NewTransport(2 * cfg.apiConcurrency), Timeout: 30 * time.Second}
	if cfg.target == targetCentrifugo {
		return &centrifugoPusher{bases: cfg.apiURLs, key: cfg.key, hc: hc, keys: cfg.apiKeys}
	}
	return newHubPusher(cfg.apiURLs, cfg.key, hc, cfg.apiKeys)
}
