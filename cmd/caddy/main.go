// Command caddy is Caddy with its standard modules plus caddy-pushhub's
// push_hub and push_api handlers.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pushhub/caddy-pushhub"
)

func main() {
	caddycmd.Main()
}
