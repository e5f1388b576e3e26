// Command tokengate is Caddy with the standard modules and the tokengate
// authentication gateway built in: `tokengate run --config Caddyfile`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tokengate/tokengate/caddymodule"
)

func main() {
	caddycmd.Main()
}
