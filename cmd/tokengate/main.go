// Command tokengate is Caddy with the standard modules and the tokengate
// authentication gateway built in: `tokengate run --config Caddyfile`.
package main

import (
	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tokengate/tokengate/caddymodule"
)

// version is tokengate's version. Release builds set it with
// -ldflags "-X main.version=v1.2.3" (see the Makefile); otherwise it is
// read from the build information (the module version of `go install
// ...@v1.2.3`, or the VCS revision of a local build).
var version string

// description is the root command's help text.
const description = `tokengate is an authentication gateway built on Caddy: it validates
Bearer tokens (personal access tokens, OAuth2 access tokens, legacy
tokens and JWTs of other issuers) at the edge and proxies to upstreams
with identity headers.

Run it with:

	tokengate run --config Caddyfile

Manage users, tokens and keys with 'tokengate user', 'tokengate oauth',
'tokengate acl' and 'tokengate legacy' (they talk to the admin endpoint).
'tokengate version' prints tokengate's version and Caddy's.`

func main() {
	caddy.CustomBinaryName = "tokengate"
	caddy.CustomLongDescription = description
	// Caddy prepends CustomVersion to its own full version, so `tokengate
	// version` and `tokengate --version` print both.
	caddy.CustomVersion = versionPrefix(version)
	caddycmd.Main()
}
