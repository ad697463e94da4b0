package pushhub

import (
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
	"github.com/pushhub/caddy-pushhub/hub/redisbroker"
)

// Cluster makes a hub span several Caddy instances through Redis: a push
// through any instance's push_api, or from a client on any instance,
// reaches the uid's connections on every instance; presence, groups and
// history are cluster-wide.
type Cluster struct {
	// URLs name Redis: redis://[user:password@]host:port[/db], or rediss://
	// for TLS. Several URLs are the seed nodes of a Redis Cluster, or the
	// sentinels when MasterName is set. Placeholders such as
	// {env.REDIS_URL} are expanded when the config loads. Required.
	URLs []string `json:"urls,omitempty"`

	// Password overrides the URLs' password; placeholders such as
	// {env.REDIS_PASSWORD} are expanded when the config loads.
	Password string `json:"password,omitempty"`

	// MasterName is the Redis Sentinel master to follow. Default: none.
	MasterName string `json:"master_name,omitempty"`

	// Prefix starts every Redis key and channel of the hub, so that several
	// deployments can share one Redis. Default: "pushhub".
	Prefix string `json:"prefix,omitempty"`

	// Lease is how long an instance counts as alive after its last
	// heartbeat (sent every third of it): an instance that died without
	// leaving drops out of presence and routing within it. Default: 15s.
	Lease caddy.Duration `json:"lease,omitempty"`

	// ReplyTimeout bounds how long a push waits for the other instances to
	// report their deliveries; instances that have not answered by then
	// are counted in the receipt's unreached_nodes. Default: 2s.
	ReplyTimeout caddy.Duration `json:"reply_timeout,omitempty"`
}

// config expands the placeholders and checks the result.
func (c *Cluster) config() (redisbroker.Config, error) {
	cfg := redisbroker.Config{
		MasterName:   c.MasterName,
		Prefix:       c.Prefix,
		Lease:        time.Duration(c.Lease),
		ReplyTimeout: time.Duration(c.ReplyTimeout),
	}
	for _, u := range c.URLs {
		x, err := expandRequired("cluster:", u)
		if err != nil {
			return cfg, err
		}
		cfg.URLs = append(cfg.URLs, x)
	}
	if c.Password != "" {
		var err error
		if cfg.Password, err = expandRequired("cluster: the password", c.Password); err != nil {
			return cfg, err
		}
	}
	if c.Lease < 0 || c.ReplyTimeout < 0 {
		return cfg, errors.New("cluster: lease and reply_timeout must not be negative")
	}
	return cfg, cfg.Validate()
}

// brokers remembers which cluster each live hub's broker talks to (nil:
// the in-process broker), so that a reload that keeps a hub's cluster keeps
// its broker, its Redis connections and every socket.
var brokers = struct {
	sync.Mutex
	of map[*hub.Hub]*redisbroker.Config
}{of: map[*hub.Hub]*redisbroker.Config{}}

func sameCluster(a, b *redisbroker.Config) bool {
	switch {
	case a == nil || b == nil:
		return a == b
	default:
		return redisbroker.SameCluster(*a, *b) && a.Lease == b.Lease && a.ReplyTimeout == b.ReplyTimeout
	}
}

// useCluster gives h the broker of cluster cfg (nil: in-process) unless it
// has it already; undo puts the previous one back. A change of the lease
// or the reply timeout alone keeps the broker and retunes it.
func useCluster(h *hub.Hub, cfg *redisbroker.Config, log *zap.Logger) (undo func(), err error) {
	brokers.Lock()
	cur, known := brokers.of[h]
	brokers.Unlock()
	if (known || cfg == nil) && sameCluster(cur, cfg) {
		return func() {}, nil
	}
	if rb, ok := h.Broker().(*redisbroker.Broker); ok && known && cur != nil && cfg != nil && redisbroker.SameCluster(*cur, *cfg) {
		rb.Retune(cfg.Lease, cfg.ReplyTimeout)
		remember(h, cfg)
		return func() {
			rb.Retune(cur.Lease, cur.ReplyTimeout)
			remember(h, cur)
		}, nil
	}
	b, err := newBroker(h, cfg, log)
	if err != nil {
		return nil, err
	}
	swap(h, b, cfg)
	if cfg != nil {
		log.Info("hub in cluster mode", zap.String("hub", h.Name()), zap.Strings("redis", redactAll(cfg.URLs)))
	}
	return func() {
		if prev, err := newBroker(h, cur, log); err == nil {
			swap(h, prev, cur)
		}
	}, nil
}

func newBroker(h *hub.Hub, cfg *redisbroker.Config, log *zap.Logger) (hub.Broker, error) {
	if cfg == nil {
		return hub.NewMemoryBroker(h.Local()), nil
	}
	b, err := redisbroker.New(h.Name(), h.Local(), *cfg, log)
	if err != nil {
		return nil, err
	}
	// A node that started routing before it joined would refuse its first
	// pushes; one whose Redis is down starts anyway, after a short wait.
	if !b.WaitConnected(joinWait) {
		log.Warn("the cluster's Redis has not answered: this node delivers only to its own connections until it does",
			zap.String("hub", h.Name()), zap.Strings("redis", redactAll(cfg.URLs)))
	}
	return b, nil
}

// joinWait bounds how long a start or reload waits for a node to join its
// cluster.
const joinWait = 3 * time.Second

// swap installs b and closes the broker it replaces; a cluster broker then
// records what changed here while both ran.
func swap(h *hub.Hub, b hub.Broker, cfg *redisbroker.Config) {
	old := h.SetBroker(b)
	remember(h, cfg)
	if rb, ok := b.(*redisbroker.Broker); ok && old != nil {
		rb.Installed()
	}
	if old != nil {
		_ = old.Close()
	}
}

// remember notes which cluster h's broker talks to.
func remember(h *hub.Hub, cfg *redisbroker.Config) {
	brokers.Lock()
	brokers.of[h] = cfg
	brokers.Unlock()
}

// forgetBroker drops a hub that closed.
func forgetBroker(h *hub.Hub) {
	brokers.Lock()
	delete(brokers.of, h)
	brokers.Unlock()
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redisbroker.RedactURL(u)
	}
	return out
}
