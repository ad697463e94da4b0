package pushhub

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// defaultHub is the hub of handlers that name none.
const defaultHub = "default"

// hubs holds every hub by name across config reloads: a reload provisions
// the new config (taking a reference) before the old one is cleaned up
// (dropping one), so a hub that both configs name is never closed.
var hubs = caddy.NewUsagePool()

type pooledHub struct{ *hub.Hub }

// Destruct runs when the last config naming the hub is gone: the server is
// stopping or the hub was removed from the config.
func (p pooledHub) Destruct() error {
	p.Close("server shutting down")
	forgetBroker(p.Hub)
	return nil
}

func acquireHub(name string, log *zap.Logger) (*hub.Hub, error) {
	v, _, err := hubs.LoadOrNew(name, func() (caddy.Destructor, error) {
		return pooledHub{hub.New(name, hub.Options{Logger: log})}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledHub).Hub, nil
}

// releaseHub drops one reference; h is nil when Provision failed before
// acquiring it.
func releaseHub(name string, h *hub.Hub) error {
	if h == nil {
		return nil
	}
	_, err := hubs.Delete(name)
	return err
}
