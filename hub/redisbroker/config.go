package redisbroker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config says which Redis to use and how.
type Config struct {
	// URLs name Redis: redis://[user:password@]host:port[/db] or rediss://
	// for TLS. Several URLs are the seed nodes of a Redis Cluster, or the
	// sentinels when MasterName is set; user, password, db and TLS come from
	// the first.
	URLs []string
	// Password, when set, overrides the URLs' password.
	Password string
	// MasterName is the Sentinel master to follow; "" without Sentinel.
	MasterName string
	// Prefix starts every key and channel. Default: "pushhub".
	Prefix string
	// Lease is how long a node counts as alive after its last heartbeat: a
	// node that died without leaving drops out of presence and routing
	// within it. Default: 15s.
	Lease time.Duration
	// ReplyTimeout bounds how long a push waits for the other nodes to
	// report their deliveries (beyond a wait for acknowledgements). Nodes
	// that have not answered by then count as unreached. Default: 2s.
	ReplyTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultPrefix       = "pushhub"
	DefaultLease        = 15 * time.Second
	DefaultReplyTimeout = 2 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.ReplyTimeout <= 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	return c
}

// Validate checks the URLs and values.
func (c Config) Validate() error {
	_, err := c.options()
	return err
}

// options turns the config into go-redis's universal options.
func (c Config) options() (*redis.UniversalOptions, error) {
	if len(c.URLs) == 0 {
		return nil, errors.New("cluster: a Redis URL is required, e.g. redis://127.0.0.1:6379/0")
	}
	c = c.withDefaults()
	if c.Lease < time.Second {
		return nil, fmt.Errorf("cluster: lease %s is too short: at least 1s", c.Lease)
	}
	first, err := redis.ParseURL(c.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("cluster: %q: %v", RedactURL(c.URLs[0]), err)
	}
	o := &redis.UniversalOptions{
		Addrs:      []string{first.Addr},
		Username:   first.Username,
		Password:   first.Password,
		DB:         first.DB,
		TLSConfig:  first.TLSConfig,
		MasterName: c.MasterName,
		ClientName: "caddy-pushhub",
		// RESP2: the broker uses none of RESP3's push notifications (its
		// Pub/Sub has a connection of its own either way), and under RESP3
		// go-redis looks for pending ones around every command: 3.8% of
		// the nodes' CPU when single API pushes saturate them.
		Protocol: 2,
		// Fail fast while Redis is away: the hub then delivers locally and
		// says so, rather than holding pushes.
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
		MaxRetries:   1,
		// A call's deadline bounds its reads and writes too (a join while
		// Redis is away, whileAway).
		ContextTimeoutEnabled: true,
		MinRetryBackoff:       20 * time.Millisecond,
		MaxRetryBackoff:       200 * time.Millisecond,
	}
	for _, u := range c.URLs[1:] {
		more, err := redis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("cluster: %q: %v", RedactURL(u), err)
		}
		if (more.TLSConfig == nil) != (first.TLSConfig == nil) {
			return nil, errors.New("cluster: mix of redis:// and rediss:// URLs")
		}
		o.Addrs = append(o.Addrs, more.Addr)
	}
	if c.Password != "" {
		o.Password = c.Password
	}
	if o.TLSConfig != nil && o.TLSConfig.MinVersion == 0 {
		o.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return o, nil
}

// RedactURL hides a URL's password, for error messages and logs.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(an unparsable URL)"
	}
	return u.Redacted()
}
