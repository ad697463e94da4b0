package pushhub

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/pushhub/caddy-pushhub/hub"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("push_hub", parseHandler)
	httpcaddyfile.RegisterDirectiveOrder("push_hub", httpcaddyfile.Before, "encode")
	httpcaddyfile.RegisterHandlerDirective("push_api", parseAPI)
	httpcaddyfile.RegisterDirectiveOrder("push_api", httpcaddyfile.Before, "encode")
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var hh Handler
	err := hh.UnmarshalCaddyfile(h.Dispenser)
	return &hh, err
}

func parseAPI(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var a API
	err := a.UnmarshalCaddyfile(h.Dispenser)
	return &a, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	push_hub [<matcher>] {
//		hub                     <name>
//		protocol                json|text
//		auth                    jwt <secret> | jwt_key <pem file> | placeholder <placeholder> | first_message {
//			uid_claim <claim>   # jwt and jwt_key only
//			issuer    <iss>
//			audience  <aud>
//			cookie    <name>  # a cookie that carries the token
//		}
//		origins                 <origin...>
//		ping_interval           <duration>
//		pong_timeout            <duration>
//		write_timeout           <duration>
//		auth_timeout            <duration>
//		max_message_size        <size>
//		send_queue              <frames>
//		max_connections_per_uid <n>
//		max_uid_length          <bytes>
//		allow_client_publish
//		allow_client_groups
//		max_groups_per_uid      <n>
//		max_groups              <n>
//		max_stored_per_client   <size>
//		history                 <size> <ttl> [<max total size>]
//		rate_limit              <frames per second> [<burst>]
//		reconnect_jitter        <duration>
//		events                  <url> {
//			secret        <key>
//			kinds         login|close|message...
//			text_messages route|app
//			queue_size    <n>
//			retries       <n>
//			timeout       <duration>
//		}
//		login_hook              <url> {
//			secret   <key>
//			timeout  <duration>
//			on_error refuse|allow
//			headers  <header name...>
//		}
//		cluster                 <redis url...> {
//			password      <password>
//			master        <sentinel master name>
//			prefix        <key prefix>
//			lease         <duration>
//			reply_timeout <duration>
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return directiveBlock(d, func(sub string) (err error) {
		switch sub {
		case "hub":
			err = oneArg(d, &h.Hub)
		case "protocol":
			err = oneArg(d, &h.Protocol)
			if err == nil && !hub.KnownProtocol(h.Protocol) {
				err = d.Errf("protocol must be one of %s, not %q", strings.Join(hub.ProtocolNames(), ", "), h.Protocol)
			}
		case "auth":
			h.Auth, err = parseAuth(d)
		case "origins":
			h.Origins = append(h.Origins, d.RemainingArgs()...)
			if len(h.Origins) == 0 {
				err = d.ArgErr()
			}
		case "ping_interval":
			err = durationArg(d, &h.PingInterval)
		case "pong_timeout":
			err = durationArg(d, &h.PongTimeout)
		case "write_timeout":
			err = durationArg(d, &h.WriteTimeout)
		case "auth_timeout":
			err = durationArg(d, &h.AuthTimeout)
		case "max_message_size":
			err = sizeArg(d, &h.MaxMessageSize)
		case "send_queue":
			err = intArg(d, &h.SendQueue)
		case "max_connections_per_uid":
			err = intArg(d, &h.MaxConnectionsPerUID)
		case "max_uid_length":
			err = intArg(d, &h.MaxUIDLength)
		case "allow_client_publish":
			err = flag(d, &h.AllowClientPublish)
		case "allow_client_groups":
			err = flag(d, &h.AllowClientGroups)
		case "max_groups_per_uid":
			err = intArg(d, &h.MaxGroupsPerUID)
		case "max_groups":
			err = intArg(d, &h.MaxGroups)
		case "max_stored_per_client":
			err = sizeArg(d, &h.MaxStoredPerClient)
		case "history":
			err = parseHistory(d, h)
		case "rate_limit":
			err = parseRateLimit(d, h)
		case "reconnect_jitter":
			err = durationArg(d, &h.ReconnectJitter)
		case "cluster":
			h.Cluster, err = parseCluster(d)
		case "events":
			h.Events, err = parseEvents(d)
		case "login_hook":
			h.LoginHook, err = parseLoginHook(d)
		default:
			err = d.Errf("unrecognized subdirective %s", sub)
		}
		return err
	})
}

// directiveBlock reads a directive that takes no arguments and calls sub
// for each subdirective of its block; an error from sub stops it.
func directiveBlock(d *caddyfile.Dispenser, sub func(name string) error) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	return eachSubdirective(d, sub)
}

// eachSubdirective calls sub for each subdirective of the block that
// follows; an error from sub stops it.
func eachSubdirective(d *caddyfile.Dispenser, sub func(name string) error) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := sub(d.Val()); err != nil {
			return err
		}
	}
	return nil
}

func parseAuth(d *caddyfile.Dispenser) (*Auth, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	a := &Auth{}
	switch mode := d.Val(); mode {
	case "jwt", "jwt_key":
		a.Mode = AuthJWT
		if !d.NextArg() {
			return nil, d.Errf("auth %s needs a %s", mode, map[string]string{"jwt": "secret", "jwt_key": "public key file"}[mode])
		}
		if mode == "jwt" {
			a.Secret = d.Val()
		} else {
			a.KeyFile = d.Val()
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		err := eachSubdirective(d, func(sub string) error {
			switch sub {
			case "uid_claim":
				return oneArg(d, &a.UIDClaim)
			case "issuer":
				return oneArg(d, &a.Issuer)
			case "audience":
				return oneArg(d, &a.Audience)
			case "cookie":
				return oneArg(d, &a.Cookie)
			}
			return d.Errf("unrecognized auth subdirective %s", sub)
		})
		if err != nil {
			return nil, err
		}
	case "placeholder":
		a.Mode = AuthPlaceholder
		if err := oneArg(d, &a.Placeholder); err != nil {
			return nil, err
		}
	case "first_message":
		a.Mode = AuthFirstMessage
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	default:
		return nil, d.Errf("unknown auth mode %q: want jwt, jwt_key, placeholder or first_message", mode)
	}
	return a, nil
}

// parseEvents reads "events <url> [{ ... }]".
func parseEvents(d *caddyfile.Dispenser) (*Events, error) {
	e := &Events{}
	if err := oneArg(d, &e.URL); err != nil {
		return nil, err
	}
	err := eachSubdirective(d, func(sub string) error {
		switch sub {
		case "secret":
			return oneArg(d, &e.Secret)
		case "kinds":
			e.Kinds = d.RemainingArgs()
			if len(e.Kinds) == 0 {
				return d.ArgErr()
			}
			return nil
		case "text_messages":
			return oneArg(d, &e.TextMessages)
		case "queue_size":
			return intArg(d, &e.QueueSize)
		case "retries":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return d.Errf("bad number %q: want 0 or a positive whole number", s)
			}
			e.Retries = &n
			return nil
		case "timeout":
			return durationArg(d, &e.Timeout)
		}
		return d.Errf("unrecognized events subdirective %s", sub)
	})
	return e, err
}

// parseLoginHook reads "login_hook <url> [{ ... }]".
func parseLoginHook(d *caddyfile.Dispenser) (*LoginHook, error) {
	l := &LoginHook{}
	if err := oneArg(d, &l.URL); err != nil {
		return nil, err
	}
	err := eachSubdirective(d, func(sub string) error {
		switch sub {
		case "secret":
			return oneArg(d, &l.Secret)
		case "timeout":
			return durationArg(d, &l.Timeout)
		case "on_error":
			return oneArg(d, &l.OnError)
		case "headers":
			l.Headers = d.RemainingArgs()
			if len(l.Headers) == 0 {
				return d.ArgErr()
			}
			return nil
		}
		return d.Errf("unrecognized login_hook subdirective %s", sub)
	})
	return l, err
}

// parseCluster reads "cluster <url...> [{ ... }]".
func parseCluster(d *caddyfile.Dispenser) (*Cluster, error) {
	c := &Cluster{URLs: d.RemainingArgs()}
	if len(c.URLs) == 0 {
		return nil, d.Errf("cluster needs a Redis URL, e.g. redis://127.0.0.1:6379/0")
	}
	err := eachSubdirective(d, func(sub string) error {
		switch sub {
		case "password":
			return oneArg(d, &c.Password)
		case "master":
			return oneArg(d, &c.MasterName)
		case "prefix":
			return oneArg(d, &c.Prefix)
		case "lease":
			return durationArg(d, &c.Lease)
		case "reply_timeout":
			return durationArg(d, &c.ReplyTimeout)
		}
		return d.Errf("unrecognized cluster subdirective %s", sub)
	})
	return c, err
}

// parseHistory reads "history <size> <ttl> [<max total size>]".
func parseHistory(d *caddyfile.Dispenser, h *Handler) error {
	args := d.RemainingArgs()
	if len(args) < 2 || len(args) > 3 {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n <= 0 || n > 100000 {
		return d.Errf("history size %q: want a number of messages from 1 to 100000", args[0])
	}
	ttl, err := caddy.ParseDuration(args[1])
	if err != nil || ttl <= 0 {
		return d.Errf("history ttl %q: want a positive duration such as 2m", args[1])
	}
	h.HistorySize, h.HistoryTTL = n, caddy.Duration(ttl)
	if len(args) == 3 {
		v, err := humanize.ParseBytes(args[2])
		if err != nil || v == 0 || v > 1<<40 {
			return d.Errf("history max size %q: want a size such as 64MiB", args[2])
		}
		h.HistoryMaxBytes = int64(v)
	}
	return nil
}

// parseRateLimit reads "rate_limit <frames per second> [<burst>]".
func parseRateLimit(d *caddyfile.Dispenser, h *Handler) error {
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return d.ArgErr()
	}
	r, err := strconv.ParseFloat(args[0], 64)
	if err != nil || !(r > 0 && r <= 1e6) { // written so that NaN fails too
		return d.Errf("rate_limit %q: want frames per second, e.g. 100", args[0])
	}
	h.RateLimit = r
	if len(args) == 2 {
		b, err := strconv.Atoi(args[1])
		if err != nil || b <= 0 {
			return d.Errf("rate_limit burst %q: want a positive whole number", args[1])
		}
		h.RateBurst = b
	}
	return nil
}

// UnmarshalCaddyfile sets up the API from Caddyfile tokens. Syntax:
//
//	push_api [<matcher>] {
//		hub                <name>
//		key                <bearer key>
//		max_body_size      <size>
//		idempotency_window <duration>
//	}
func (a *API) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return directiveBlock(d, func(sub string) error {
		switch sub {
		case "hub":
			return oneArg(d, &a.Hub)
		case "key":
			return oneArg(d, &a.Key)
		case "max_body_size":
			return sizeArg(d, &a.MaxBodySize)
		case "idempotency_window":
			return durationArg(d, &a.IdempotencyWindow)
		}
		return d.Errf("unrecognized subdirective %s", sub)
	})
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func flag(d *caddyfile.Dispenser, dst *bool) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	*dst = true
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: bad duration %q: %v", name, s, err)
	}
	if v <= 0 {
		return d.Errf("%s must be positive, not %s", name, s)
	}
	*dst = caddy.Duration(v)
	return nil
}

func sizeArg(d *caddyfile.Dispenser, dst *int64) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := humanize.ParseBytes(s)
	if err != nil || v == 0 || v > 1<<40 {
		return d.Errf("bad size %q: want a positive size such as 65536, 64KiB or 1MB", s)
	}
	*dst = int64(v)
	return nil
}

func intArg(d *caddyfile.Dispenser, dst *int) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		return d.Errf("bad number %q: want a positive whole number", s)
	}
	*dst = v
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*API)(nil)
)
