package pushhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/pushhub/caddy-pushhub/hub"
	"github.com/pushhub/caddy-pushhub/hub/webhook"
)

// Events sends what happens on an endpoint's connections to the
// application, as signed JSON batches POSTed to URL: a uid's connection
// logged in, closed, or sent a message for the application.
type Events struct {
	// URL receives the batches. Required; placeholders such as
	// {env.APP_URL} are expanded when the config loads.
	URL string `json:"url,omitempty"`

	// Secret signs every batch: the X-PushHub-Signature header is
	// "sha256=" and the hex HMAC-SHA256 of the body with it. Placeholders
	// are expanded. Default: none (unsigned).
	Secret string `json:"secret,omitempty"`

	// Kinds narrows what is sent: "login", "close", "message". Default:
	// all of them.
	Kinds []string `json:"kinds,omitempty"`

	// TextMessages says what a text-protocol frame after login is: "route"
	// (the recipe's "<uid>:<message>", default) or "app" (a message event
	// for the application, which then decides).
	TextMessages string `json:"text_messages,omitempty"`

	// QueueSize is how many events may wait to be sent; past it they are
	// dropped, counted and logged, never blocking a socket or a push.
	// Default: 10000.
	QueueSize int `json:"queue_size,omitempty"`

	// Retries is how many times a failed batch is tried again, with backoff
	// and jitter, before it is given up (counted as failed); 0 gives up at
	// the first failure. Default (unset): 5.
	Retries *int `json:"retries,omitempty"`

	// Timeout bounds one POST. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// LoginHook asks the application about every login: a POST with the uid,
// the connection, the token's claims and the headers named here, answered
// {"allow": true|false, "reason": "...", "groups": [...]}. A refused login
// is closed with 4001 and the reason; the groups are joined before the
// welcome.
type LoginHook struct {
	// URL is asked. Required; placeholders are expanded.
	URL string `json:"url,omitempty"`

	// Secret signs every request as for events. Default: none.
	Secret string `json:"secret,omitempty"`

	// Timeout bounds one request. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// OnError is what a login gets when the application cannot answer
	// (down, too slow, an answer without "allow"): "refuse" (default) or
	// "allow".
	OnError string `json:"on_error,omitempty"`

	// Headers names the upgrade request's headers the application is told
	// of (e.g. User-Agent, X-Forwarded-For). Default: none.
	Headers []string `json:"headers,omitempty"`
}

// checkHooks validates the endpoint's events and login hook settings.
func (h *Handler) checkHooks() error {
	repl := caddy.NewReplacer()
	if e := h.Events; e != nil {
		if _, err := hookURL("events", repl.ReplaceKnown(e.URL, "")); err != nil {
			return err
		}
		for _, k := range e.Kinds {
			if !webhook.ValidKind(k) {
				return fmt.Errorf("events: unknown kind %q: want %s", k, strings.Join(webhook.KnownKinds, ", "))
			}
		}
		if e.TextMessages != "" && e.TextMessages != "route" && e.TextMessages != "app" {
			return fmt.Errorf(`events: text_messages %q: want "route" or "app"`, e.TextMessages)
		}
		if e.QueueSize < 0 || (e.Retries != nil && *e.Retries < 0) || e.Timeout < 0 {
			return errors.New("events: queue_size, retries and timeout must not be negative")
		}
	}
	if l := h.LoginHook; l != nil {
		if _, err := hookURL("login_hook", repl.ReplaceKnown(l.URL, "")); err != nil {
			return err
		}
		if l.OnError != "" && l.OnError != "refuse" && l.OnError != "allow" {
			return fmt.Errorf(`login_hook: on_error %q: want "refuse" or "allow"`, l.OnError)
		}
		if l.Timeout < 0 {
			return errors.New("login_hook: timeout must not be negative")
		}
	}
	return nil
}

// retries is the events' retries as webhook counts them: 0 for the
// default, negative for none.
func retries(n *int) int {
	switch {
	case n == nil:
		return 0
	case *n == 0:
		return -1
	}
	return *n
}

// provisionHooks makes the endpoint's event sink and login hook, once
// checkHooks has passed and the hub is known.
func (h *Handler) provisionHooks() hub.Hooks {
	var hk hub.Hooks
	repl := caddy.NewReplacer()
	if e := h.Events; e != nil {
		hk.TextToApp = e.TextMessages == "app"
		h.events = webhook.NewEvents(webhook.EventsConfig{
			URL: repl.ReplaceKnown(e.URL, ""), Secret: repl.ReplaceKnown(e.Secret, ""), Kinds: e.Kinds,
			Hub: h.Hub, Node: nodeName(), QueueSize: e.QueueSize, Retries: retries(e.Retries), Timeout: time.Duration(e.Timeout),
		}, h.hub.EventCounters(), h.logger)
		hk.Events = h.events
	}
	if l := h.LoginHook; l != nil {
		hk.Login = webhook.NewLogin(webhook.LoginConfig{
			URL: repl.ReplaceKnown(l.URL, ""), Secret: repl.ReplaceKnown(l.Secret, ""),
			Timeout: time.Duration(l.Timeout), AllowOnError: l.OnError == "allow",
		})
	}
	return hk
}

func hookURL(what, s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s: %q is not an http:// or https:// URL", what, s)
	}
	return s, nil
}

// hookHeaders picks the request headers the login hook is told of.
func (h *Handler) hookHeaders(r *http.Request) map[string]string {
	if h.LoginHook == nil || len(h.LoginHook.Headers) == 0 {
		return nil
	}
	out := make(map[string]string, len(h.LoginHook.Headers))
	for _, name := range h.LoginHook.Headers {
		if v := r.Header.Values(name); len(v) > 0 {
			out[http.CanonicalHeaderKey(name)] = strings.Join(v, ", ")
		}
	}
	return out
}

// closeHooks stops the endpoint's event sink, sending what is queued.
func (h *Handler) closeHooks() {
	if h.events != nil {
		h.events.Close()
	}
}

// hooksKey sums up an endpoint's events and login hook, so that endpoints
// sharing their settings can be checked to agree on them too.
func hooksKey(e *Events, l *LoginHook) string {
	b, _ := json.Marshal([]any{e, l})
	return string(b)
}
