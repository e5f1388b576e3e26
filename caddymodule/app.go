// Package caddymodule is tokengate's face to Caddy: the "tokengate" app
// (global options, shared state), the http.handlers.tokengate handler (site
// directive), Caddyfile parsing, admin API routes and CLI commands. The
// logic lives in the internal packages; this package wires them together.
package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/users"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the tokengate app: what every site guarded by tokengate shares
// (the store, the decision cache, users, tokens). It is configured with the
// `tokengate` global option; a site that uses the `tokengate` directive
// without it gets the defaults.
type App struct {
	// Store says where state is kept: a file path for the embedded store,
	// or a Redis URL: redis://, rediss://, redis-sentinel://host:port,...
	// ?master=NAME, redis-cluster://host:port,... Placeholders such as
	// {env.TOKENGATE_STORE} are resolved at provisioning. Default: the
	// embedded store in tokengate/tokengate.db under Caddy's data directory.
	Store string `json:"store,omitempty"`

	// CacheTTL is how long an edge decision is cached, and so the longest a
	// change can go unnoticed on a node that missed its invalidation
	// message. Default: 30s.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// CacheSize bounds the number of cached decisions. Default: 100000.
	CacheSize int `json:"cache_size,omitempty"`

	// MaxTokensPerUser caps the tokens one user may hold. Default: 50;
	// -1: no limit.
	MaxTokensPerUser int `json:"max_tokens_per_user,omitempty"`

	// LastAccessFlush is how often recorded token uses are written to the
	// store in one batch. Default: 10s.
	LastAccessFlush caddy.Duration `json:"last_access_flush,omitempty"`

	// BcryptCost is the cost of new password hashes. Default: 10.
	BcryptCost int `json:"bcrypt_cost,omitempty"`

	// LoginFailuresPerAccount failed password checks within
	// LoginFailureWindow lock an account name. Default: 10.
	LoginFailuresPerAccount int64 `json:"login_failures_per_account,omitempty"`

	// LoginFailuresPerAddress failed password checks within
	// LoginFailureWindow lock a client address. Default: 50.
	LoginFailuresPerAddress int64 `json:"login_failures_per_address,omitempty"`

	// LoginFailureWindow is how long failures count. Default: 15m.
	LoginFailureWindow caddy.Duration `json:"login_failure_window,omitempty"`

	state     *sharedState
	poolKey   string
	logger    *zap.Logger
	users     *users.Service
	auth      *users.Authenticator
	pats      *pat.Service
	storeName string
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens (or reuses across reloads) the store and cache and
// builds the services.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	storeURL := repl.ReplaceKnown(a.Store, "")
	if storeURL == "" {
		storeURL = defaultStorePath()
	}
	if a.MaxTokensPerUser == 0 {
		a.MaxTokensPerUser = 50
	}
	if a.LastAccessFlush == 0 {
		a.LastAccessFlush = caddy.Duration(10 * time.Second)
	}
	loc, err := parseStoreLocation(storeURL)
	if err != nil {
		return fmt.Errorf("store: %v", err)
	}
	a.poolKey, a.storeName = loc.poolKey(), loc.String()
	val, _, err := statePool.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		return newSharedState(loc, time.Duration(a.LastAccessFlush), a.logger)
	})
	if err != nil {
		return fmt.Errorf("opening store %s: %v", a.storeName, err)
	}
	a.state = val.(*sharedState)
	return a.wire()
}

// wire builds the services on the shared state.
func (a *App) wire() error {
	a.state.cache.SetLimits(a.CacheSize, time.Duration(a.CacheTTL))
	a.users = users.NewService(a.state.store, a.BcryptCost, nil)
	var err error
	a.auth, err = users.NewAuthenticator(a.state.store, users.Limits{
		PerAccount: a.LoginFailuresPerAccount,
		PerAddress: a.LoginFailuresPerAddress,
		Window:     time.Duration(a.LoginFailureWindow),
	}, a.BcryptCost)
	if err != nil {
		return fmt.Errorf("preparing password checks: %v", err)
	}
	a.pats = pat.NewService(a.state.store, a.state.uses, a.MaxTokensPerUser, nil)
	return nil
}

// Validate checks the configuration without changing it.
func (a App) Validate() error {
	switch {
	case a.CacheTTL < 0:
		return fmt.Errorf("cache_ttl must not be negative")
	case a.CacheSize < 0:
		return fmt.Errorf("cache_size must not be negative")
	case a.MaxTokensPerUser < -1:
		return fmt.Errorf("max_tokens_per_user must be -1 (no limit) or positive")
	case a.LastAccessFlush < 0:
		return fmt.Errorf("last_access_flush must be positive")
	case a.BcryptCost != 0 && (a.BcryptCost < 4 || a.BcryptCost > 31):
		return fmt.Errorf("bcrypt_cost must be between 4 and 31")
	case a.LoginFailuresPerAccount < 0 || a.LoginFailuresPerAddress < 0 || a.LoginFailureWindow < 0:
		return fmt.Errorf("login failure limits must not be negative")
	}
	return nil
}

// Start is a no-op: the store and its background work start with the
// shared state, which outlives config reloads.
func (a *App) Start() error {
	a.logger.Info("tokengate started", zap.String("store", a.storeName))
	return nil
}

// Stop is a no-op; see Cleanup.
func (a *App) Stop() error { return nil }

// Cleanup releases this config's hold on the shared state; the last
// holder's release closes the store.
func (a *App) Cleanup() error {
	if a.state == nil {
		return nil
	}
	_, err := statePool.Delete(a.poolKey)
	return err
}

// Checker returns the edge checker.
func (a *App) Checker() *gate.Checker { return a.state.checker }

// StoreBackend returns the store.
func (a *App) StoreBackend() store.Store { return a.state.store }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
