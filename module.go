// Package pushhub is a Caddy v2 plugin that makes a Caddy server a real-time
// push hub: clients hold a WebSocket bound to a user id (uid) through the
// push_hub handler, and anything can push to a uid, a group or everyone
// through the push_api handler or from other clients.
package pushhub

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
	"github.com/pushhub/caddy-pushhub/hub/redisbroker"
	"github.com/pushhub/caddy-pushhub/hub/webhook"
	"github.com/pushhub/caddy-pushhub/internal/jwtauth"
)

func init() {
	caddy.RegisterModule(Handler{})
	caddy.RegisterModule(API{})
}

// Handler is the push_hub WebSocket endpoint. Each connection logs in as a
// uid and receives what is pushed to that uid, to its groups or to everyone.
// Endpoints that name the same hub share its connections, and a hub lives
// across config reloads: its sockets stay open and bound.
type Handler struct {
	// Hub names the hub this endpoint serves. Default: "default".
	Hub string `json:"hub,omitempty"`

	// Protocol is the wire protocol: "json" (default) or "text", the
	// Workerman recipe's protocol. See PROTOCOL.md.
	Protocol string `json:"protocol,omitempty"`

	// Auth says how a connection proves its uid. Required.
	Auth *Auth `json:"auth,omitempty"`

	// Origins lists the browser origins (scheme://host[:port]) allowed to
	// connect; "*" allows any. Empty means same-origin only: a request whose
	// Origin header names another host than the request's is refused with
	// 403. Requests without an Origin header (non-browser clients) are
	// always allowed.
	Origins []string `json:"origins,omitempty"`

	// PingInterval is how often an otherwise silent connection is pinged.
	// Default: 25s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`

	// PongTimeout is how long after a due ping a connection that has sent
	// nothing, not even a pong, is closed with 4006. Default: 10s.
	PongTimeout caddy.Duration `json:"pong_timeout,omitempty"`

	// WriteTimeout bounds one frame write; a connection that cannot take a
	// frame within it is closed. Default: 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// AuthTimeout is how long a connection may stay without logging in
	// before it is closed with 4002. Default: 10s.
	AuthTimeout caddy.Duration `json:"auth_timeout,omitempty"`

	// MaxMessageSize is the largest frame a client may send, in bytes; a
	// larger one closes the connection with 1009. Default: 65536.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`

	// SendQueue is how many frames may wait to be written to one connection.
	// A connection whose queue is full when a message comes is a slow
	// consumer: it is closed with 4004 and nobody else waits for it.
	// Default: 64.
	SendQueue int `json:"send_queue,omitempty"`

	// MaxConnectionsPerUID is how many connections one uid may hold at once;
	// one more is refused with close code 4003. Default: 16.
	MaxConnectionsPerUID int `json:"max_connections_per_uid,omitempty"`

	// MaxUIDLength caps uids and group names, in bytes. Default: 128.
	MaxUIDLength int `json:"max_uid_length,omitempty"`

	// AllowClientPublish lets clients send to a uid, a group or everyone
	// (the recipe's "uid:message" and "all:message"). Default: false.
	AllowClientPublish bool `json:"allow_client_publish,omitempty"`

	// AllowClientGroups lets json clients join and leave groups themselves.
	// Default: false (groups are managed through push_api).
	AllowClientGroups bool `json:"allow_client_groups,omitempty"`

	// MaxGroupsPerUID caps the groups one uid belongs to; a join over it is
	// refused with too_many_groups. Groups belong to the hub, which takes
	// the largest cap any of its endpoints sets. Default: 64.
	MaxGroupsPerUID int `json:"max_groups_per_uid,omitempty"`

	// MaxGroups caps the groups of the whole hub; a join that would make
	// one more is refused with too_many_groups. Default: 100000.
	MaxGroups int `json:"max_groups,omitempty"`

	// MaxStoredPerClient bounds, in bytes, the history one connection's
	// publishes may hold for uids that are offline (with history on): past
	// it, its publishes to offline uids are not stored, so that one client
	// cannot spend the history budget of everyone. Default: 262144 (256 KiB).
	MaxStoredPerClient int64 `json:"max_stored_per_client,omitempty"`

	// HistorySize is how many messages per uid are kept for resume: a json
	// client that reconnects with the last sequence number it saw gets what
	// it missed, and a push to an offline uid is stored for it. Default: 0
	// (off).
	HistorySize int `json:"history_size,omitempty"`

	// HistoryTTL is how long a stored message, and an offline uid's
	// numbering, are kept. Default: 2m.
	HistoryTTL caddy.Duration `json:"history_ttl,omitempty"`

	// HistoryMaxBytes bounds the memory of the hub's whole history; past it
	// new messages are not stored and receipts say "stored": false.
	// Default: 67108864 (64 MiB).
	HistoryMaxBytes int64 `json:"history_max_bytes,omitempty"`

	// RateLimit is how many frames per second one client may send; a client
	// over it (after bursts of RateBurst) is closed with 4008. Default: 100.
	RateLimit float64 `json:"rate_limit,omitempty"`

	// RateBurst is the burst RateLimit allows. Default: 200, or twice
	// RateLimit if that is more.
	RateBurst int `json:"rate_burst,omitempty"`

	// ReconnectJitter spreads the retry hint sent to clients when the hub
	// closes (server stop, hub removed): each is told to come back after
	// 500ms plus a random part of this. Default: 5s.
	ReconnectJitter caddy.Duration `json:"reconnect_jitter,omitempty"`

	// Events sends what happens on this endpoint's connections to the
	// application. Default: none.
	Events *Events `json:"events,omitempty"`

	// LoginHook asks the application about every login on this endpoint.
	// Default: none.
	LoginHook *LoginHook `json:"login_hook,omitempty"`

	// Cluster makes the hub span several Caddy instances through Redis.
	// It belongs to the hub: every push_hub endpoint of one hub must name
	// the same cluster. Default: none, the hub lives in this process.
	Cluster *Cluster `json:"cluster,omitempty"`

	hub      *hub.Hub
	endpoint *hub.Endpoint
	cluster  *redisbroker.Config
	events   *webhook.Events
	verifier *jwtauth.Verifier
	origins  map[string]bool
	anyOrig  bool
	logger   *zap.Logger
}

// Auth modes.
const (
	AuthJWT          = "jwt"
	AuthPlaceholder  = "placeholder"
	AuthFirstMessage = "first_message"
)

// Auth configures how connections prove their uid.
type Auth struct {
	// Mode is "jwt" (a signed token whose subject, or UIDClaim, is the uid),
	// "placeholder" (the uid is a Caddy placeholder's value, e.g.
	// {http.auth.user.id} behind basic_auth) or "first_message" (the first
	// frame is the uid, trusted as it is: the recipe's insecure demo mode).
	Mode string `json:"mode"`

	// Secret is the HS256 secret of mode jwt; placeholders such as
	// {env.PUSH_JWT_SECRET} are expanded when the config loads. At least 16
	// bytes. Exactly one of Secret and KeyFile is set in mode jwt.
	Secret string `json:"secret,omitempty"`

	// KeyFile is a PEM public key (or certificate) of mode jwt: an RSA key
	// pins RS256, an ECDSA P-256 key ES256.
	KeyFile string `json:"key_file,omitempty"`

	// UIDClaim is the token claim that holds the uid. Default: "sub".
	UIDClaim string `json:"uid_claim,omitempty"`

	// Issuer, when set, must equal the token's "iss".
	Issuer string `json:"issuer,omitempty"`

	// Audience, when set, must be in the token's "aud".
	Audience string `json:"audience,omitempty"`

	// Placeholder is the placeholder of mode placeholder, resolved for each
	// upgrade request; an empty value refuses the request with 401.
	Placeholder string `json:"placeholder,omitempty"`

	// Cookie names a cookie that carries the token in mode jwt, for
	// browsers that cannot set a header (EventSource). Default: none.
	Cookie string `json:"cookie,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.push_hub",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the handler up, takes its hub from the pool (creating it
// the first time) and stages its settings, which become live once the whole
// configuration has started (see App).
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.Hub = cmp.Or(h.Hub, defaultHub)
	if h.Protocol == "" {
		h.Protocol = hub.DefaultProtocol
	}
	if !hub.KnownProtocol(h.Protocol) {
		return fmt.Errorf("unknown protocol %q: want one of %s", h.Protocol, strings.Join(hub.ProtocolNames(), ", "))
	}
	if err := h.provisionAuth(); err != nil {
		return err
	}
	h.origins = make(map[string]bool)
	for _, o := range h.Origins {
		if o == "*" {
			h.anyOrig = true
			continue
		}
		norm, err := normalizeOrigin(o)
		if err != nil {
			return fmt.Errorf("origin %q: %v", o, err)
		}
		h.origins[norm] = true
	}
	if err := h.checkHooks(); err != nil {
		return err
	}
	if h.Cluster != nil {
		cfg, err := h.Cluster.config()
		if err != nil {
			return err
		}
		h.cluster = &cfg
	}
	app, hb, err := takeHub(ctx, h.Hub, h.logger)
	if err != nil {
		return err
	}
	h.hub = hb
	// Endpoints of one hub with the same protocol and auth mode share their
	// settings; a reload reconfigures them under the same key.
	h.endpoint = h.hub.Endpoint(h.Protocol+" "+h.Auth.Mode, h.settings())
	h.endpoint.StageHooks(h.provisionHooks())
	if err := app.stage(h.hub, h.endpoint, h.cluster, hooksKey(h.Events, h.LoginHook)); err != nil {
		return err
	}
	return registerMetrics(ctx)
}

func (h *Handler) settings() hub.Settings {
	return hub.Settings{
		PingInterval:         time.Duration(h.PingInterval),
		PongTimeout:          time.Duration(h.PongTimeout),
		WriteTimeout:         time.Duration(h.WriteTimeout),
		AuthTimeout:          time.Duration(h.AuthTimeout),
		MaxMessageSize:       h.MaxMessageSize,
		SendQueue:            h.SendQueue,
		MaxConnectionsPerUID: h.MaxConnectionsPerUID,
		MaxUIDLength:         h.MaxUIDLength,
		AllowClientPublish:   h.AllowClientPublish,
		AllowClientGroups:    h.AllowClientGroups,
		MaxGroupsPerUID:      h.MaxGroupsPerUID,
		MaxGroups:            h.MaxGroups,
		MaxStoredPerClient:   h.MaxStoredPerClient,
		HistorySize:          h.HistorySize,
		HistoryTTL:           time.Duration(h.HistoryTTL),
		HistoryMaxBytes:      h.HistoryMaxBytes,
		RateLimit:            h.RateLimit,
		RateBurst:            h.RateBurst,
		ReconnectJitter:      time.Duration(h.ReconnectJitter),
	}
}

func (h *Handler) provisionAuth() error {
	if h.Auth == nil {
		return errors.New("push_hub needs an auth mode: jwt, jwt_key, placeholder or first_message")
	}
	a := h.Auth
	switch a.Mode {
	case AuthJWT:
		cfg := jwtauth.Config{UIDClaim: a.UIDClaim, Issuer: a.Issuer, Audience: a.Audience}
		switch {
		case a.Secret != "" && a.KeyFile != "":
			return errors.New("auth jwt: set either a secret or a key file, not both")
		case a.Secret != "":
			secret, err := expandRequired("auth jwt: the secret", a.Secret)
			if err != nil {
				return err
			}
			cfg.Secret = []byte(secret)
		case a.KeyFile != "":
			pem, err := os.ReadFile(a.KeyFile)
			if err != nil {
				return fmt.Errorf("auth jwt_key: %v", err)
			}
			cfg.KeyPEM = pem
		default:
			return errors.New("auth jwt: a secret or a key file is required")
		}
		v, err := jwtauth.New(cfg)
		if err != nil {
			return fmt.Errorf("auth jwt: %v", err)
		}
		h.verifier = v
	case AuthPlaceholder:
		if a.Placeholder == "" {
			return errors.New("auth placeholder: a placeholder is required, e.g. {http.auth.user.id}")
		}
	case AuthFirstMessage:
		h.logger.Warn("push_hub trusts any uid a client claims (auth first_message): use it for demos only",
			zap.String("hub", h.Hub))
	default:
		return fmt.Errorf("unknown auth mode %q: want jwt, placeholder or first_message", a.Mode)
	}
	return nil
}

// Validate checks combinations of settings.
func (h *Handler) Validate() error {
	if h.MaxMessageSize < 0 || h.SendQueue < 0 || h.MaxConnectionsPerUID < 0 || h.MaxUIDLength < 0 ||
		h.MaxGroupsPerUID < 0 || h.MaxGroups < 0 || h.MaxStoredPerClient < 0 ||
		h.HistorySize < 0 || h.HistoryMaxBytes < 0 || !(h.RateLimit >= 0 && h.RateLimit <= 1e6) || h.RateBurst < 0 {
		return errors.New("sizes, counts and rates must not be negative")
	}
	if h.PingInterval < 0 || h.PongTimeout < 0 || h.WriteTimeout < 0 || h.AuthTimeout < 0 ||
		h.HistoryTTL < 0 || h.ReconnectJitter < 0 {
		return errors.New("durations must not be negative")
	}
	if h.MaxUIDLength > 4096 {
		return errors.New("max_uid_length must be at most 4096")
	}
	return nil
}

// Cleanup releases the handler's hold on its hub; the hub closes when no
// config holds it any more.
func (h *Handler) Cleanup() error {
	h.closeHooks()
	if h.endpoint != nil {
		h.hub.ReleaseEndpoint(h.endpoint)
	}
	return releaseHub(h.Hub, h.hub)
}

// ServeHTTP upgrades WebSocket requests and hands them to the hub; other
// requests go to the next handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.ProtoMajor >= 2 && r.Method == http.MethodConnect {
		return caddyhttp.Error(http.StatusNotImplemented,
			errors.New("WebSocket over HTTP/2 or HTTP/3 is not supported: connect over HTTP/1.1"))
	}
	if hub.IsEventStream(r) && !hub.IsUpgrade(r) {
		return h.serveEvents(w, r)
	}
	if !hub.IsUpgrade(r) {
		return next.ServeHTTP(w, r)
	}
	if !h.checkOrigin(r) {
		return caddyhttp.Error(http.StatusForbidden, fmt.Errorf("origin %q is not allowed", r.Header.Get("Origin")))
	}
	opts := hub.ConnOptions{Protocol: h.Protocol, Endpoint: h.endpoint, Headers: h.hookHeaders(r)}
	id, err := h.identityAtUpgrade(r)
	if err != nil {
		return h.refuse(err)
	}
	uid := id.UID
	opts.UID, opts.Claims = uid, id.Claims
	if uid == "" {
		opts.Login, opts.QuickLogin = h.login, true // a credential check, no I/O
	}
	if opts.Since, err = sinceOf(r.URL.Query()); err != nil {
		return err
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.push_hub.uid", uid)

	if err := h.hub.Upgrade(w, r, opts); err != nil {
		if errors.Is(err, hub.ErrHandshake) {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		h.logger.Debug("upgrade failed", zap.String("remote", r.RemoteAddr), zap.Error(err))
	}
	return nil
}

// serveEvents streams Server-Sent Events to a client that only listens:
// authenticated as at an upgrade (with auth first_message, the uid is the
// uid query parameter), resuming from Last-Event-ID or ?since=.
func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request) error {
	if !h.checkOrigin(r) {
		return caddyhttp.Error(http.StatusForbidden, fmt.Errorf("origin %q is not allowed", r.Header.Get("Origin")))
	}
	id, err := h.identityAtUpgrade(r)
	if err != nil {
		return h.refuse(err)
	}
	q := r.URL.Query()
	if id.UID == "" && h.Auth.Mode == AuthFirstMessage {
		id.UID = q.Get("uid")
	}
	if id.UID == "" {
		return h.refuse(errors.New("an event stream authenticates in its request: a token (query, header or cookie), a placeholder, or with first_message the uid query parameter"))
	}
	opts := hub.ConnOptions{Endpoint: h.endpoint, UID: id.UID, Claims: id.Claims, Headers: h.hookHeaders(r)}
	if opts.Since, err = sinceOf(q); err != nil {
		return err
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.push_hub.uid", id.UID)
	return h.hub.ServeSSE(w, r, opts)
}

// sinceOf reads a resuming client's position from the since and epoch
// query parameters; nil without since.
func sinceOf(q url.Values) (*hub.Position, error) {
	v := q.Get("since")
	if v == "" {
		return nil, nil
	}
	since, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("since=%q is not a sequence number", v))
	}
	return &hub.Position{Epoch: q.Get("epoch"), Offset: since}, nil
}

// refuse answers a request whose credential did not pass with 401, and
// counts the refused login under the code a login frame would have got.
func (h *Handler) refuse(err error) error {
	counted := err
	if je := (*jwtauth.Error)(nil); errors.As(err, &je) {
		counted = &hub.Error{Code: je.Code, Message: je.Error()}
	}
	h.hub.CountRefusal(counted)
	return caddyhttp.Error(http.StatusUnauthorized, err)
}

// identityAtUpgrade authenticates at the upgrade where the credential is
// in the request: a placeholder, or a token in the token query parameter,
// the Authorization header or the cookie Auth.Cookie names. No uid and no
// error means: log in with the first frame.
func (h *Handler) identityAtUpgrade(r *http.Request) (hub.Identity, error) {
	switch h.Auth.Mode {
	case AuthPlaceholder:
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		// ReplaceAll: a placeholder with no value (no basic_auth user)
		// must become empty, not stay as its literal text.
		uid := repl.ReplaceAll(h.Auth.Placeholder, "")
		if uid == "" {
			return hub.Identity{}, fmt.Errorf("placeholder %s is empty for this request", h.Auth.Placeholder)
		}
		return hub.Identity{UID: uid}, nil
	case AuthJWT:
		token := r.URL.Query().Get("token")
		if auth := r.Header.Get("Authorization"); token == "" && auth != "" {
			scheme, t, ok := strings.Cut(auth, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				return hub.Identity{}, errors.New("the Authorization header is not a Bearer token")
			}
			token = strings.TrimSpace(t)
		}
		if token == "" && h.Auth.Cookie != "" {
			if c, err := r.Cookie(h.Auth.Cookie); err == nil {
				token = c.Value
			}
		}
		if token == "" {
			return hub.Identity{}, nil
		}
		uid, claims, err := h.verifier.VerifyClaims(token)
		if err != nil {
			return hub.Identity{}, fmt.Errorf("token refused: %w", err)
		}
		return hub.Identity{UID: uid, Claims: claims}, nil
	}
	return hub.Identity{}, nil
}

// login verifies a first-frame credential.
func (h *Handler) login(credential string) (hub.Identity, error) {
	if h.Auth.Mode == AuthJWT {
		uid, claims, err := h.verifier.VerifyClaims(credential)
		var je *jwtauth.Error
		if errors.As(err, &je) {
			return hub.Identity{}, &hub.Error{Code: je.Code, Message: je.Error()}
		}
		return hub.Identity{UID: uid, Claims: claims}, err
	}
	return hub.Identity{UID: credential}, nil // first_message: the frame is the uid
}

// checkOrigin allows requests without an Origin header, and browsers from
// the listed origins or, with none listed, from the request's own host.
func (h *Handler) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || h.anyOrig {
		return true
	}
	norm, err := normalizeOrigin(origin)
	if err != nil {
		return false
	}
	if len(h.origins) > 0 {
		return h.origins[norm]
	}
	u, _ := url.Parse(norm)
	return strings.EqualFold(u.Host, r.Host)
}

// normalizeOrigin reduces an origin to lower-case scheme://host[:port].
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return "", errors.New("an origin is scheme://host[:port]")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
