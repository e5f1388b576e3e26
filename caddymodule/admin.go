package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/adminapi"
	"github.com/tokengate/tokengate/internal/apierr"
)

func init() {
	caddy.RegisterModule(AdminRoutes{})
}

// AdminRoutes mounts tokengate's administration API (users and their
// tokens, OAuth keys, signing settings, permissions, the legacy migration
// view, store checks and stats, export and import; see package adminapi) under /tokengate/ on
// Caddy's admin endpoint. That endpoint
// has no authentication of its own: keep it on a unix socket or loopback,
// or use Caddy's mTLS remote admin.
type AdminRoutes struct {
	ctx caddy.Context
}

// CaddyModule returns the Caddy module information.
func (AdminRoutes) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.tokengate",
		New: func() caddy.Module { return new(AdminRoutes) },
	}
}

// Provision keeps the context; the app is looked up per request because
// the admin endpoint is provisioned before the apps are.
func (ar *AdminRoutes) Provision(ctx caddy.Context) error {
	ar.ctx = ctx
	return nil
}

// Routes returns the admin routes.
func (ar *AdminRoutes) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: adminapi.Prefix,
		Handler: caddy.AdminHandlerFunc(ar.serve),
	}}
}

func (ar *AdminRoutes) serve(w http.ResponseWriter, r *http.Request) error {
	appIface, err := ar.ctx.AppIfConfigured("tokengate")
	if err != nil {
		// Neither the global option nor a site directive uses tokengate.
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("tokengate is not configured")}
	}
	app, ok := appIface.(*App)
	if !ok || app.state == nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("tokengate is not ready")}
	}
	api := adminapi.API{Users: app.users, Tokens: app.pats, Store: app.state.store, Clients: app.clients, Keys: app.state.keys,
		ACL: app.state.acl, Legacy: app.legacy, AuditFailures: app.audit.Failures,
		LastUseFailures: app.state.uses.Failures, Backup: app.state.store, AssertionKeys: app.state.assertionKeys,
		Uses: app.state.uses,
	}
	if err := api.ServeHTTP(w, r); err != nil {
		var (
			se *adminapi.StreamError
			oe *adminapi.OperatorError
		)
		switch {
		case errors.As(err, &se):
			// The status and part of the body are out: cut the connection
			// so that the client sees a truncated answer, not an error
			// appended to a complete-looking one.
			app.logger.Error("admin answer cut short", zap.String("path", r.URL.Path), zap.Error(se.Err))
			panic(http.ErrAbortHandler)
		case errors.As(err, &oe):
			if oe.Status >= 500 {
				app.logger.Error("admin request failed", zap.String("path", r.URL.Path), zap.Error(oe.Err))
			}
			return caddy.APIError{HTTPStatus: oe.Status, Err: oe.Err}
		}
		p := apierr.For(err)
		if p.Status >= 500 {
			app.logger.Error("admin request failed", zap.String("path", r.URL.Path), zap.Error(err))
		}
		return caddy.APIError{HTTPStatus: p.Status, Err: errors.New(describe(p))}
	}
	return nil
}

// describe renders a problem for Caddy's admin error body: the field,
// unless the description already starts with it ("expires_in must be at
// most ...", which the CLI reads as "--expires-in must be at most ...").
func describe(p apierr.Problem) string {
	if p.Field != "" && !strings.HasPrefix(p.Description, p.Field+" ") {
		return p.Field + ": " + p.Description
	}
	return p.Description
}

// Interface guards
var (
	_ caddy.Provisioner = (*AdminRoutes)(nil)
	_ caddy.AdminRouter = (*AdminRoutes)(nil)
)
