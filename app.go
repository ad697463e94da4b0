package pushhub

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
	"github.com/pushhub/caddy-pushhub/hub/redisbroker"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the pushhub app. Nobody configures it: every configuration with a
// push_hub or push_api handler loads it, and it makes the configuration's
// settings live only once the whole configuration has started. Hubs outlive
// configurations (see pool.go), so a configuration that fails to load (a
// handler's Validate, another module's Provision, a port in use) must leave
// every running hub, endpoint and connection as it was: handlers only stage
// their settings while they are provisioned, and Start applies them all.
//
// Caddy provisions, starts and stops configurations one at a time, so the
// app needs no lock of its own.
type App struct {
	endpoints map[*hub.Hub][]*hub.Endpoint     // this configuration's, by hub
	clusters  map[*hub.Hub]*redisbroker.Config // the cluster each hub's endpoints name
	order     []*hub.Hub                       // hubs in the order handlers named them
	hooks     map[*hub.Endpoint]string         // each endpoint's events and login hook, to compare
	undo      []func()
	logger    *zap.Logger
	ctx       caddy.Context
}

// current is the app of the configuration whose settings are live.
var (
	currentMu sync.Mutex
	current   *App
	previous  = map[*App]*App{}
)

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "pushhub",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision sets the app up.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.ctx = ctx
	a.endpoints = make(map[*hub.Hub][]*hub.Endpoint)
	a.clusters = make(map[*hub.Hub]*redisbroker.Config)
	return nil
}

// appOf returns the pushhub app of the configuration being provisioned.
// A context made outside a configuration (caddy.NewContext on its own) has
// none, and Caddy's App panics on it: that is answered as an error.
func appOf(ctx caddy.Context) (app *App, err error) {
	defer func() {
		if recover() != nil {
			app, err = nil, errors.New("push_hub and push_api must be provisioned as part of a Caddy configuration")
		}
	}()
	v, err := ctx.App("pushhub")
	if err != nil {
		return nil, err
	}
	return v.(*App), nil
}

// takeHub is how a handler's Provision gets its hub: it finds the app of
// the configuration being provisioned and takes the named hub from the
// pool (the handler's Cleanup releases it). The handler then tells the app
// how it uses the hub (hold, stage).
func takeHub(ctx caddy.Context, name string, log *zap.Logger) (*App, *hub.Hub, error) {
	app, err := appOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	h, err := acquireHub(name, log)
	if err != nil {
		return nil, nil, err
	}
	return app, h, nil
}

// stage records an endpoint of this configuration and the cluster it names.
// Endpoints of one hub that share a key share their settings, so they must
// agree; and the cluster belongs to the hub, so all its endpoints must name
// the same one.
func (a *App) stage(h *hub.Hub, ep *hub.Endpoint, cluster *redisbroker.Config, hooks string) error {
	eps, known := a.endpoints[h]
	if len(eps) > 0 && !sameCluster(a.clusters[h], cluster) {
		return fmt.Errorf("push_hub: the endpoints of hub %q name different clusters; "+
			"the cluster belongs to the hub, so every push_hub of one hub must have the same cluster setting (or none)", h.Name())
	}
	a.clusters[h] = cluster
	if a.hooks == nil {
		a.hooks = map[*hub.Endpoint]string{}
	}
	a.hooks[ep] = hooks
	for _, other := range eps {
		if other.Key() == ep.Key() && (other.Staged() != ep.Staged() || a.hooks[other] != hooks) {
			return fmt.Errorf("push_hub: two endpoints of hub %q speak %s and differ in their settings; "+
				"endpoints of one hub with the same protocol and auth mode share their settings, so give them the same settings or different hubs",
				h.Name(), ep.Key())
		}
	}
	a.endpoints[h] = append(eps, ep)
	if !known {
		a.order = append(a.order, h)
	}
	return nil
}

// hold records that this configuration uses hub h (a push_api handler).
func (a *App) hold(h *hub.Hub) {
	if _, known := a.endpoints[h]; !known {
		a.endpoints[h] = nil
		a.order = append(a.order, h)
	}
}

// Start runs once every app of the configuration has been provisioned and
// validated: it makes the staged settings live.
func (a *App) Start() error {
	for _, h := range a.order {
		if len(a.endpoints[h]) > 0 {
			undo, err := useCluster(h, a.clusters[h], a.logger)
			if err != nil {
				a.rollback()
				return fmt.Errorf("hub %q: %v", h.Name(), err)
			}
			a.undo = append(a.undo, undo)
		}
		a.undo = append(a.undo, h.Apply(a.endpoints[h]...))
		oldLogger := h.SetLogger(a.logger)
		a.undo = append(a.undo, func() { h.SetLogger(oldLogger) })
	}
	currentMu.Lock()
	previous[a] = current
	current = a
	currentMu.Unlock()
	return nil
}

// Stop runs when the configuration stops: when a newer one has taken over
// (nothing to do: its Start has applied its settings), when the server
// stops (nothing to do: the hubs close), or when another app of this same
// configuration failed to start after this one had started. In the last
// case this configuration never ran: Caddy only makes a configuration the
// active one once all its apps have started, so what Start applied is put
// back.
func (a *App) Stop() error {
	currentMu.Lock()
	neverRan := current == a && caddy.ActiveContext().Context != a.ctx.Context
	if current == a {
		current = previous[a]
	}
	delete(previous, a)
	currentMu.Unlock()
	if neverRan {
		a.rollback()
	}
	return nil
}

// rollback puts back what Start applied.
func (a *App) rollback() {
	for i := len(a.undo) - 1; i >= 0; i-- {
		a.undo[i]()
	}
	a.undo = nil
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)

// nodeName names this instance in event batches: host and process.
func nodeName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}
