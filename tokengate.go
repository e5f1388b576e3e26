// Package tokengate is an authentication gateway for Caddy v2: it checks
// bearer tokens at the edge and tells legacy upstreams who the caller is.
//
// Importing this package registers the Caddy modules, so a custom build is
// `xcaddy build --with github.com/tokengate/tokengate`. The modules live in
// package caddymodule; the ready build is cmd/tokengate.
package tokengate

import (
	// Register the tokengate Caddy modules, directives and commands.
	_ "github.com/tokengate/tokengate/caddymodule"
)
