package caddymodule

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/tokengate/internal/scope"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/web"
)

// Defaults of the web pages.
const (
	DefaultUIPrefix        = "/account"
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionLifetime = 12 * time.Hour
)

// UIConfig turns on the web pages on a site (Caddyfile: the `ui`
// sub-directive). Pages are answered by the gateway and never proxied.
type UIConfig struct {
	// Prefix is where the pages live. Default: /account.
	Prefix string `json:"prefix,omitempty"`
	// Scopes are offered as check boxes in the "Create token" dialog
	// (a token may get none of them); none offered by default.
	Scopes []string `json:"scopes,omitempty"`
	// SessionIdle ends a session after this long without a request.
	// Default: 30m.
	SessionIdle caddy.Duration `json:"session_idle,omitempty"`
	// SessionLifetime ends a session this long after sign-in, whatever
	// happens. Default: 12h.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`
}

func (c *UIConfig) prefix() string { return orDefault(c.Prefix, DefaultUIPrefix) }

// validate checks the pages' settings without changing them.
func (c *UIConfig) validate() error {
	p := c.prefix()
	if p == "/" || p[0] != '/' || strings.HasSuffix(p, "/") || strings.ContainsAny(p, " {}?#*") {
		return fmt.Errorf("ui: prefix %q must start with /, not end with / and not be / itself", p)
	}
	if _, err := scope.Normalize(c.Scopes); err != nil {
		return fmt.Errorf("ui: scopes: %v", err)
	}
	switch {
	case c.SessionIdle < 0 || c.SessionLifetime < 0:
		return fmt.Errorf("ui: session lifetimes must be positive")
	case c.SessionIdle != 0 && c.SessionLifetime != 0 && c.SessionIdle > c.SessionLifetime:
		return fmt.Errorf("ui: session_idle must not be longer than session_lifetime")
	}
	return nil
}

// build makes the pages on the app's services.
func (c *UIConfig) build(app *App, h *Handler) (*web.UI, error) {
	scopes, err := scope.Normalize(c.Scopes)
	if err != nil {
		return nil, fmt.Errorf("ui: scopes: %v", err)
	}
	idle := time.Duration(c.SessionIdle)
	if idle == 0 {
		idle = DefaultSessionIdle
	}
	lifetime := time.Duration(c.SessionLifetime)
	if lifetime == 0 {
		lifetime = DefaultSessionLifetime
	}
	return web.New(web.Options{
		Prefix:   c.prefix(),
		Sessions: app.sessions(idle, lifetime),
		Logins:   app.logins.Default(), Sources: app.logins,
		Users: app.users, Tokens: app.pats, Clients: app.clients, Keys: app.state.keys,
		ACL: app.state.acl, Audit: app.audit, Scopes: scopes,
		Logger: h.logger.Named("ui"), Metrics: app.state.metrics,
	})
}

// parseUI reads `ui [<prefix>] { scopes <scope...>; session_idle <d>;
// session_lifetime <d> }`.
func parseUI(d *caddyfile.Dispenser) (*UIConfig, error) {
	c := &UIConfig{}
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
	case 1:
		c.Prefix = args[0]
	default:
		return nil, d.ArgErr()
	}
	err := eachNested(d, "ui", func(sub string) (err error) {
		switch sub {
		case "scopes":
			if c.Scopes = d.RemainingArgs(); len(c.Scopes) == 0 {
				err = d.ArgErr()
			}
		case "session_idle":
			c.SessionIdle, err = durationArg(d)
		case "session_lifetime":
			c.SessionLifetime, err = durationArg(d)
		default:
			err = d.Errf("ui: unrecognized subdirective %q", sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, d.Err(err.Error())
	}
	return c, nil
}

// sessions returns the session manager for these lifetimes.
func (a *App) sessions(idle, lifetime time.Duration) *session.Manager {
	return session.New(a.state.store, a.state.store, session.Options{Idle: idle, Absolute: lifetime, Logger: a.logger.Named("session")})
}
