// Package caddymodule is tokengate's face to Caddy: the "tokengate" app
// (global options, shared state), the http.handlers.tokengate handler (site
// directive), Caddyfile parsing, admin API routes and CLI commands. The
// logic lives in the internal packages; this package wires them together.
package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/assertion"
	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/breaker"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/failrate"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/leak"
	"github.com/tokengate/tokengate/internal/legacy"
	"github.com/tokengate/tokengate/internal/login"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/oauth"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/store/backend"
	"github.com/tokengate/tokengate/internal/store/redisstore"
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

	// InvalidationPing is how often each node publishes a ping of its own
	// on the Redis invalidation channel. A subscription that hears nothing
	// (not even that ping) for two intervals after a ping went out is
	// taken as broken: it is made again on a new connection, the cache is
	// emptied, and both are logged. So a change made on another node while
	// the subscription was silently broken is seen here within about four
	// intervals rather than cache_ttl. The embedded store ignores it.
	// Default: 2s.
	InvalidationPing caddy.Duration `json:"invalidation_ping,omitempty"`

	// CacheSize bounds the number of cached decisions. Default: 100000.
	CacheSize int `json:"cache_size,omitempty"`

	// MaxTokensPerUser caps the personal access tokens one user may hold.
	// Legacy tokens from /rest/token do not count (see
	// MaxLegacyTokensPerUser). Default: 50; -1: no limit.
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

	// LoginFailureWindow is how long failures count. Default: 15m. The
	// same limits apply to OAuth client secrets at the token endpoint (per
	// client id and per address).
	LoginFailureWindow caddy.Duration `json:"login_failure_window,omitempty"`

	// TokenFailuresPerAddress is how many failed token look-ups (well-formed
	// tokens that miss the cache and turn out unknown or forged, each a
	// store round trip or a signature check) one client address may cause
	// per TokenFailureWindow on this node; past it, such requests get 429
	// with Retry-After before any look-up. IPv6 addresses count per /64.
	// Cached tokens are never limited. Default: 100; -1: no limit.
	TokenFailuresPerAddress int64 `json:"token_failures_per_address,omitempty"`

	// TokenFailureWindow is the window of TokenFailuresPerAddress; the
	// allowance refills evenly over it. Default: 1m.
	TokenFailureWindow caddy.Duration `json:"token_failure_window,omitempty"`

	// Signing is the algorithm of the first signing key: HS256 (the
	// default), RS256, ES256 or EdDSA. It is used only when the store has
	// no keyring yet; afterwards the algorithm is changed through the
	// admin API (`tokengate oauth signing set`), so all nodes agree.
	Signing string `json:"signing,omitempty"`

	// AccessTokenTTL is the lifetime of access tokens when the keyring is
	// created (later: the admin API). Default: 1h.
	AccessTokenTTL caddy.Duration `json:"access_token_ttl,omitempty"`

	// Issuer is the "iss" of access tokens. Default: "tokengate".
	Issuer string `json:"issuer,omitempty"`

	// Audience is the "aud" of access tokens and what the edge requires.
	// Default: "tokengate".
	Audience string `json:"audience,omitempty"`

	// JWKSMaxAge is the Cache-Control max-age of the JWKS, and so how long
	// a new RS256/ES256/EdDSA key is published before it signs in a grace
	// key change (an immediate one signs with fresh keys at once).
	// Default: 5m.
	JWKSMaxAge caddy.Duration `json:"jwks_max_age,omitempty"`

	// AuditLog is the directory of the token request log: one JSON line per
	// request to the token endpoint in <dir>/auth/oauth/<YYYY-MM-DD>.
	// Default: tokengate/log under Caddy's data directory; "off" disables
	// the files (the records still go to the "tokengate.audit" logger).
	AuditLog string `json:"audit_log,omitempty"`

	// AuditLogTimeZone is the time zone in which the audit log's days
	// begin (the <YYYY-MM-DD> of its file names): an IANA name such as
	// "Europe/Berlin", "UTC", or "Local" (the default: the server's zone,
	// from TZ or /etc/localtime).
	AuditLogTimeZone string `json:"audit_log_time_zone,omitempty"`

	// LegacyTokenTTL is the lifetime of tokens from /rest/token. Default:
	// 100 years, the legacy platform's, so old clients keep working.
	LegacyTokenTTL caddy.Duration `json:"legacy_token_ttl,omitempty"`

	// MaxLegacyTokensPerUser caps the legacy tokens (from /rest/token) one
	// user may hold, separately from MaxTokensPerUser. Default: 50; -1: no
	// limit.
	MaxLegacyTokensPerUser int `json:"max_legacy_tokens_per_user,omitempty"`

	// LegacyTokenCapPolicy is what /rest/token does for a user who already
	// holds MaxLegacyTokensPerUser legacy tokens: "revoke_oldest" (the
	// default) revokes that user's oldest legacy token on every node and
	// logs it; "refuse" answers 409 token_limit.
	LegacyTokenCapPolicy string `json:"legacy_token_cap_policy,omitempty"`

	// IdentitySource is where passwords are checked when the client does
	// not say (auth-user-type): "local" (the gateway's users, the default)
	// or "backend" (IdentityBackend).
	IdentitySource string `json:"identity_source,omitempty"`

	// IdentityBackend is a URL of the legacy backend that answers 2xx to a
	// GET with valid HTTP Basic credentials (and 401/403 otherwise). It
	// enables the "backend" identity source: its users get tokens without
	// being copied (a user record without password is made on first login).
	IdentityBackend string `json:"identity_backend,omitempty"`

	// BackendRoles are the roles of users provisioned through the backend.
	BackendRoles []string `json:"backend_roles,omitempty"`

	// StoreBreaker is the circuit breaker in front of the store: once the
	// store is known to be down, what needs it is answered 503 with
	// Retry-After at once instead of after a timeout. Default: on, with
	// the defaults of StoreBreaker's fields.
	StoreBreaker *StoreBreaker `json:"store_breaker,omitempty"`

	// StoreDurability says how many Redis replicas must have a write
	// before it is answered as done, so that a failover cannot undo it:
	// a revocation, a switch-off, a deletion, a deny-listed jti, a new or
	// reset signing key, but also a created token or user. A write whose
	// replicas do not acknowledge it within the timeout is answered 503
	// with Retry-After (it is on the primary, and the client's retry is
	// safe). Default: for a redis-sentinel:// store, 1 replica within 1s;
	// for a redis-cluster:// store, 1 replica (on every primary) within 1s
	// if every primary has a replica at start-up, else none, with a Warn
	// line; for a single server (redis://) and the embedded store, none.
	StoreDurability *StoreDurability `json:"store_durability,omitempty"`

	// SecretsKey encrypts the private signing keys and HS256 secrets in
	// the store (AES-256-GCM), so that a copy of the store (a Redis dump,
	// the bbolt file) does not let anyone sign access tokens: 32 random
	// bytes in base64 (standard or URL alphabet, padded or not), as
	// `tokengate secrets-key generate` prints them. Give it as a
	// placeholder, {env.TOKENGATE_SECRETS_KEY}: it is resolved at
	// provisioning, never written into adapted JSON, and a placeholder that
	// resolves to nothing is an error. Every node sharing a store needs the
	// same key. A keyring kept in clear is encrypted at start; a keyring
	// encrypted with another key stops the start (or, with a Redis that
	// answers later, makes the token endpoint, the JWKS and access token
	// checks answer 503). Default: none, keys in clear (with a warning).
	SecretsKey string `json:"secrets_key,omitempty"`

	// SecretsKeyPrevious is the key SecretsKey replaces, during a
	// rotation: the keyring is still opened with it, and encrypted again
	// with SecretsKey at start. Remove it once every node runs with the
	// new SecretsKey. Needs SecretsKey. Default: none.
	SecretsKeyPrevious string `json:"secrets_key_previous,omitempty"`

	// Events sends lifecycle events (token created, revoked, about to
	// expire...) to a webhook, signed. Default: none.
	Events *Events `json:"events,omitempty"`

	// TokenPolicy sets the longest lifetimes of tokens, a required expiry
	// and the dormancy rule (tokens unused for a while are warned, then
	// switched off). Default: none.
	TokenPolicy *TokenPolicy `json:"token_policy,omitempty"`

	breaker   breaker.Options
	stale     time.Duration
	state     *sharedState
	poolKey   string
	logger    *zap.Logger
	users     *users.Service
	auth      *users.Authenticator
	pats      *pat.Service
	clients   *oauthclient.Clients
	tokens    *accesstoken.Tokens
	audit     *audit.Log
	limiter   *bruteforce.Limiter
	checker   *gate.Checker
	logins    *login.Sources
	legacy    *legacy.Service
	storeName string
	auditDir  string
	ctx       caddy.Context
	// secretsKey and secretsKeyPrevious are SecretsKey and
	// SecretsKeyPrevious with their placeholders resolved.
	secretsKey, secretsKeyPrevious string
}

// StoreBreaker configures the store's circuit breaker. It counts the
// store calls that fail because the store cannot be reached (timeouts,
// refused or broken connections; never answers such as "not found") and
// opens after Failures of them in a row, or after one failed probe (a
// PING, or a read transaction of the embedded store, every
// ProbeInterval). While it is open every call to the store fails at once
// (503 with Retry-After), nothing but the probe reaches the store, and
// decisions in the cache keep working until their cache_ttl (StaleWindow:
// a little longer); the first successful probe closes it. Opening and
// closing are logged once each.
type StoreBreaker struct {
	// Failures is how many consecutive failures open the breaker.
	// Default: 3.
	Failures int `json:"failures,omitempty"`

	// ProbeInterval is how often the store is probed, and how long a
	// probe may take before it counts as failed. Default: 1s.
	ProbeInterval caddy.Duration `json:"probe_interval,omitempty"`

	// RetryAfter is the Retry-After of every 503 caused by the store.
	// Default: ProbeInterval rounded up to whole seconds, at least 1s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`

	// StaleWindow: while the breaker is open, a cached decision that
	// accepted a token may still be used for this long after its
	// cache_ttl ran out. Only decisions that accepted a token: an unknown,
	// revoked or switched-off token is never let through, and expiry still
	// applies. The price is that a change made meanwhile through another
	// node (one that still reaches the store) is noticed here up to
	// cache_ttl + stale_window late. Default: 0, the secure default: fail
	// closed as soon as cache_ttl ran out.
	StaleWindow caddy.Duration `json:"stale_window,omitempty"`
}

// StoreDurability configures what a write to Redis waits for: after the
// write, WAIT for Replicas replicas within Timeout (see the README's
// "Durability and failover").
type StoreDurability struct {
	// Replicas is how many replicas must acknowledge every write (on a
	// Redis Cluster: on every primary); 0 turns the wait off. Default: 1
	// for a redis-sentinel:// store; for a redis-cluster:// store 1 if
	// every primary has a replica, else 0 (with a Warn at start-up); else
	// 0.
	Replicas *int `json:"replicas,omitempty"`

	// Timeout bounds the wait; a write not acknowledged in time is
	// answered 503. Default: 1s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// durability returns the store's durability (nil: the store's default).
func (d *StoreDurability) durability() *redisstore.Durability {
	if d == nil || d.Replicas == nil {
		return nil // validate refuses a timeout without replicas
	}
	return &redisstore.Durability{Replicas: *d.Replicas, Timeout: time.Duration(d.Timeout)}
}

// options returns the breaker's options (zero values: the defaults).
func (b *StoreBreaker) options(logger *zap.Logger) breaker.Options {
	o := breaker.Options{Name: "store", Logger: logger}
	if b != nil {
		o.Failures, o.ProbeInterval, o.RetryAfter = b.Failures, time.Duration(b.ProbeInterval), time.Duration(b.RetryAfter)
	}
	return o
}

// validate checks the fields without changing them.
func (d *StoreDurability) validate() error {
	switch {
	case d == nil:
		return nil
	case d.Replicas != nil && *d.Replicas < 0:
		return fmt.Errorf("store_durability: replicas must not be negative")
	case d.Timeout < 0:
		return fmt.Errorf("store_durability: timeout must not be negative")
	case d.Replicas == nil && d.Timeout != 0:
		return fmt.Errorf("store_durability: a timeout needs replicas <n>")
	}
	return nil
}

// validate checks the fields without changing them.
func (b *StoreBreaker) validate() error {
	switch {
	case b == nil:
		return nil
	case b.Failures < 0:
		return fmt.Errorf("store_breaker: failures must be positive")
	case b.ProbeInterval < 0 || b.RetryAfter < 0 || b.StaleWindow < 0:
		return fmt.Errorf("store_breaker: durations must not be negative")
	}
	return nil
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision builds the services on the shared state (reused across
// reloads). It opens, locks and creates nothing, so that `tokengate
// validate` can run beside a running gateway: the store is opened in Start
// and the audit directory made on the first write.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx, a.logger = ctx, ctx.Logger()
	a.setDefaults()
	repl := caddy.NewReplacer()
	if err := a.resolveSecrets(repl); err != nil {
		return err
	}
	if err := a.Events.provision(repl); err != nil {
		return err
	}
	storeURL := repl.ReplaceKnown(a.Store, "")
	if storeURL == "" {
		storeURL = defaultStorePath()
	}
	loc, err := backend.Parse(storeURL)
	if err != nil {
		return fmt.Errorf("store: %v", err)
	}
	if err := a.StoreDurability.validate(); err != nil {
		return err
	}
	if loc, err = loc.WithDurability(a.StoreDurability.durability()); err != nil {
		return fmt.Errorf("store_durability: %v", err)
	}
	a.poolKey, a.storeName = loc.PoolKey(), loc.String()
	val, _, err := statePool.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		return newSharedState(loc)
	})
	if err != nil {
		return fmt.Errorf("store %s: %v", a.storeName, err)
	}
	a.state = val.(*sharedState)
	a.breaker = a.StoreBreaker.options(a.logger)
	if a.StoreBreaker != nil {
		a.stale = time.Duration(a.StoreBreaker.StaleWindow)
	}
	a.auditDir = repl.ReplaceKnown(a.AuditLog, "")
	switch a.auditDir {
	case "off":
		a.auditDir = ""
	case "":
		a.auditDir = filepath.Join(caddy.AppDataDir(), "tokengate", "log")
	}
	zone, err := audit.LoadLocation(repl.ReplaceKnown(a.AuditLogTimeZone, ""))
	if err != nil {
		return fmt.Errorf("audit_log_time_zone: %v", err)
	}
	a.audit = audit.New(audit.Options{
		Dir: a.auditDir, Records: a.logger.Named("audit"), Errors: a.logger, Location: zone,
	})
	if err := a.registerMetrics(ctx); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	return a.wire()
}

// registerMetrics registers tokengate's collectors in this config's
// Prometheus registry, which Caddy serves on the admin endpoint's /metrics
// (and the metrics handler). Caddy makes a registry per config load, so a
// reload registers again; the shared state's collectors are the same
// objects, so their counts go on. The audit log is this config's own.
func (a *App) registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil { // a context not made by Caddy (tests)
		return nil
	}
	if err := a.state.metrics.Register(reg); err != nil {
		return err
	}
	return metrics.Register(reg, metrics.AuditFailures(func() float64 { return float64(a.audit.Failures()) }))
}

// resolveSecrets resolves the placeholders of the secrets keys. One that
// is set but resolves to nothing (an unset environment variable) is an
// error: running on would keep the signing keys in clear. The errors
// never hold a value.
func (a *App) resolveSecrets(repl *caddy.Replacer) error {
	for _, f := range []struct {
		name     string
		raw      string
		resolved *string
	}{{"secrets_key", a.SecretsKey, &a.secretsKey}, {"secrets_key_previous", a.SecretsKeyPrevious, &a.secretsKeyPrevious}} {
		*f.resolved = repl.ReplaceKnown(f.raw, "")
		if f.raw != "" && *f.resolved == "" {
			return fmt.Errorf("%s is set but resolves to nothing (is its environment variable set?)", f.name)
		}
	}
	return nil
}

// setDefaults fills unset fields.
func (a *App) setDefaults() {
	if a.MaxTokensPerUser == 0 {
		a.MaxTokensPerUser = 50
	}
	if a.MaxLegacyTokensPerUser == 0 {
		a.MaxLegacyTokensPerUser = legacy.DefaultMax
	}
	if a.LastAccessFlush == 0 {
		a.LastAccessFlush = caddy.Duration(10 * time.Second)
	}
	if a.Issuer == "" {
		a.Issuer = "tokengate"
	}
	if a.Audience == "" {
		a.Audience = "tokengate"
	}
	if a.JWKSMaxAge == 0 {
		a.JWKSMaxAge = caddy.Duration(5 * time.Minute)
	}
	if a.TokenFailuresPerAddress == 0 {
		a.TokenFailuresPerAddress = 100
	}
}

// wire builds the services on the shared state.
func (a *App) wire() error {
	a.state.cache.SetLimits(a.CacheSize, time.Duration(a.CacheTTL))
	a.state.setPingInterval(time.Duration(a.InvalidationPing))
	// Shared across reloads like the cache: the newest config's settings.
	a.state.store.Breaker().Configure(a.breaker)
	a.users = users.NewService(a.state.store, a.BcryptCost, nil)
	// Every change of a user (admin API, CLI, pages) that must end their
	// web sessions ends them, whether or not a site shows the pages.
	a.users.SetSessions(session.New(a.state.store, a.state.store, session.Options{Logger: a.logger.Named("session")}))
	a.users.SetEvents(a.state.webhook)
	a.limiter = bruteforce.New(a.state.store, bruteforce.Limits{
		PerAccount: a.LoginFailuresPerAccount,
		PerAddress: a.LoginFailuresPerAddress,
		Window:     time.Duration(a.LoginFailureWindow),
	})
	var err error
	a.auth, err = users.NewAuthenticator(a.state.store, a.limiter, a.BcryptCost)
	if err != nil {
		return fmt.Errorf("preparing password checks: %v", err)
	}
	a.pats = pat.NewService(a.state.store, a.state.uses, a.MaxTokensPerUser, nil)
	a.pats.SetEvents(a.state.webhook)
	a.pats.SetPolicy(a.TokenPolicy.policy())
	a.state.keys.Configure(keyring.Policy{PublishDelay: time.Duration(a.JWKSMaxAge)}, a.Signing, time.Duration(a.AccessTokenTTL))
	for alg, h := range a.state.assertionKeys {
		h.Configure(keyring.Policy{PublishDelay: time.Duration(a.JWKSMaxAge)}, alg, assertion.MaxLifetime)
	}
	a.clients = oauthclient.NewClients(a.state.store, a.state.clients, nil)
	a.clients.SetEvents(a.state.webhook)
	a.tokens = accesstoken.NewTokens(a.state.keys, a.state.clients, a.state.denied, a.Issuer, a.Audience, nil)
	a.checker = gate.New(a.state.store, a.state.cache, a.state.uses, gate.Options{
		AccessTokens: a.tokens,
		FailedLookups: failrate.New(failrate.Options{
			Limit: a.TokenFailuresPerAddress, Window: time.Duration(a.TokenFailureWindow),
		}),
		StaleWindow: a.stale,
		Metrics:     a.state.metrics,
	})
	a.legacy = legacy.NewService(a.state.store, a.state.uses, a.state.acl,
		legacy.Cap{Max: a.MaxLegacyTokensPerUser, Policy: a.LegacyTokenCapPolicy},
		a.legacyLifetime(), nil, a.logger.Named("legacy"))
	a.legacy.SetEvents(a.state.webhook)
	return a.wireLogins()
}

// wireLogins sets up the identity sources.
func (a *App) wireLogins() error {
	sources := map[string]login.Authenticator{login.Local: a.auth}
	if a.IdentityBackend != "" {
		sources[login.Backend] = &login.BackendSource{
			URL: a.IdentityBackend, Client: &http.Client{Timeout: 10 * time.Second}, Store: a.state.store,
			Limiter:      a.limiter,
			DefaultRoles: a.BackendRoles, Now: time.Now, Logger: a.logger.Named("identity_backend"),
		}
		if login.PlainRemote(a.IdentityBackend) {
			a.logger.Warn("identity_backend is plain http:// to a host that is not loopback: " +
				"users' passwords cross the network in clear text (HTTP Basic); use https://")
		}
	}
	var err error
	a.logins, err = login.NewSources(orDefault(a.IdentitySource, login.Local), sources)
	return err
}

// endpoint returns the OAuth endpoints for a site with realm.
func (a *App) endpoint(realm string) *oauth.Endpoint {
	return &oauth.Endpoint{
		Clients: a.clients, Tokens: a.tokens, Users: a.logins.Default(), Inspector: a.checker, Store: a.state.store,
		Limiter: a.limiter, Audit: a.audit, Realm: realm, Metrics: a.state.metrics, Events: a.state.webhook,
	}
}

// leakResponder returns the leak report route's responder, limited to
// rate requests per address per minute (0: leak.DefaultRate, -1: none).
func (a *App) leakResponder(rate int) *leak.Responder {
	if rate == 0 {
		rate = leak.DefaultRate
	}
	return &leak.Responder{
		Inspector: a.checker, Store: a.state.store, Clients: a.clients, Audit: a.audit, Events: a.state.webhook,
		Limiter: failrate.New(failrate.Options{Limit: int64(rate), Window: time.Minute}),
	}
}

// jwks returns the JWKS route.
func (a *App) jwks() *oauth.JWKS {
	return &oauth.JWKS{Keys: a.state.keys, MaxAge: time.Duration(a.JWKSMaxAge)}
}

// Validate checks the configuration without changing anything: it reads
// the file system to tell that the audit directory could be made and
// written, but creates nothing (see audit.CheckDir).
func (a App) Validate() error {
	switch {
	case a.CacheTTL < 0:
		return fmt.Errorf("cache_ttl must not be negative")
	case a.InvalidationPing < 0:
		return fmt.Errorf("invalidation_ping must not be negative")
	case a.CacheSize < 0:
		return fmt.Errorf("cache_size must not be negative")
	case a.MaxTokensPerUser < -1:
		return fmt.Errorf("max_tokens_per_user must be -1 (no limit) or positive")
	case a.MaxLegacyTokensPerUser < -1:
		return fmt.Errorf("max_legacy_tokens_per_user must be -1 (no limit) or positive")
	case a.LegacyTokenCapPolicy != "" && a.LegacyTokenCapPolicy != legacy.RevokeOldest && a.LegacyTokenCapPolicy != legacy.Refuse:
		return fmt.Errorf("legacy_token_cap_policy must be %q or %q", legacy.RevokeOldest, legacy.Refuse)
	case a.LastAccessFlush < 0:
		return fmt.Errorf("last_access_flush must be positive")
	case a.BcryptCost != 0 && (a.BcryptCost < 4 || a.BcryptCost > 31):
		return fmt.Errorf("bcrypt_cost must be between 4 and 31")
	case a.LoginFailuresPerAccount < 0 || a.LoginFailuresPerAddress < 0 || a.LoginFailureWindow < 0:
		return fmt.Errorf("login failure limits must not be negative")
	case a.TokenFailuresPerAddress < -1 || a.TokenFailureWindow < 0:
		return fmt.Errorf("token_failures_per_address must be -1 (no limit) or positive, token_failure_window positive")
	case a.Signing != "" && !jwt.Supported(a.Signing):
		return fmt.Errorf("signing: unsupported algorithm %q (use HS256, RS256, ES256 or EdDSA)", a.Signing)
	case a.AccessTokenTTL != 0 && (time.Duration(a.AccessTokenTTL) < keyring.MinLifetime || time.Duration(a.AccessTokenTTL) > keyring.MaxLifetime):
		return fmt.Errorf("access_token_ttl must be between %v and %v", keyring.MinLifetime, keyring.MaxLifetime)
	case a.JWKSMaxAge < 0:
		return fmt.Errorf("jwks_max_age must not be negative")
	case a.LegacyTokenTTL < 0:
		return fmt.Errorf("legacy_token_ttl must be positive")
	case a.IdentitySource != "" && a.IdentitySource != login.Local && a.IdentitySource != login.Backend:
		return fmt.Errorf("identity_source must be %q or %q", login.Local, login.Backend)
	case a.IdentitySource == login.Backend && a.IdentityBackend == "":
		return fmt.Errorf("identity_source backend needs identity_backend <url>")
	}
	if err := a.StoreBreaker.validate(); err != nil {
		return err
	}
	if err := a.Events.validate(); err != nil {
		return err
	}
	if err := a.TokenPolicy.validate(time.Duration(a.LegacyTokenTTL)); err != nil {
		return err
	}
	if _, err := keyring.NewSecrets(a.secretsKey, a.secretsKeyPrevious); err != nil {
		return err
	}
	if err := audit.CheckDir(a.auditDir); err != nil {
		return fmt.Errorf("audit_log: %v", err)
	}
	if a.IdentityBackend != "" {
		if u, err := url.Parse(a.IdentityBackend); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return fmt.Errorf("identity_backend must be an http(s) URL without credentials")
		}
	}
	return nil
}

// Start opens the store, unless a previous config sharing it did (see
// sharedState.start). An embedded store that cannot be opened (its file is
// locked by another process) stops the start; an unreachable Redis does
// not: it is retried in the background while what needs it answers 503.
// A keyring that secrets_key does not open stops the start too, when the
// store answers (see useSecrets).
func (a *App) Start() error {
	secrets, err := keyring.NewSecrets(a.secretsKey, a.secretsKeyPrevious)
	if err != nil {
		return err
	}
	if a.state.store.Backend() == nil {
		// Before the store is attached, so that no request (the HTTP
		// server may already answer) reads or creates the keyring
		// without the key.
		a.setSecrets(secrets)
	}
	// Before start runs the worker: a reload's webhook and secret hold
	// from the next attempt, and no events turns delivery off.
	eventsLogger := a.logger.Named("events")
	a.state.webhook.Configure(a.Events.webhookConfig(eventsLogger))
	a.state.expiry.Configure(a.Events.warnings(), a.Events.scanInterval(), eventsLogger)
	a.state.addresses.SetMemory(a.Events.addressMemory())
	dormancy := a.TokenPolicy.policy()
	dormancy.UseDelay = 2 * time.Duration(a.LastAccessFlush) // uses reach the store in batches
	a.state.dormancy.Configure(dormancy, a.TokenPolicy.scanInterval(), a.logger.Named("token_policy"), a.audit)
	if err := a.state.start(time.Duration(a.LastAccessFlush), a.logger); err != nil {
		return fmt.Errorf("opening store %s: %v", a.storeName, err)
	}
	if err := a.useSecrets(secrets); err != nil {
		return fmt.Errorf("store %s: %v", a.storeName, err)
	}
	a.logger.Info("tokengate started", zap.String("store", a.storeName))
	return nil
}

// useSecrets gives the secrets key to the keyring. When the store answers
// now (the embedded store always, Redis if it is up), a keyring the key
// does not open stops the start (on a reload: before the key is given, so
// the running config keeps its own), and one in clear (or sealed with the
// previous key) is sealed with it; otherwise that is found out on the
// first use, whose 503s are explained by one log line.
func (a *App) useSecrets(secrets *keyring.Secrets) error {
	if secrets == nil {
		a.logger.Warn("signing keys are stored in clear: anyone with a copy of the store (a Redis dump, " +
			"the bbolt file) can sign access tokens; set secrets_key (make one with `tokengate secrets-key generate` " +
			"and give it as {env.TOKENGATE_SECRETS_KEY})")
	}
	if a.state.store.Backend() == nil {
		return nil // still not attached: Start gave the key (setSecrets) before
	}
	ctx, cancel := context.WithTimeout(a.ctx, startCheckTimeout)
	defer cancel()
	if err := a.state.keys.UseSecrets(ctx, secrets, a.logger.Named("keyring")); err != nil {
		return err
	}
	// The identity assertion keys are sealed like the keyring (each
	// algorithm's keyring is a document of its own).
	for alg, h := range a.state.assertionKeys {
		if err := h.UseSecrets(ctx, secrets, a.logger.Named("assertion_keys")); err != nil {
			return fmt.Errorf("identity assertion keys %s: %w", alg, err)
		}
	}
	return nil
}

// setSecrets gives the secrets key to the keyring and the identity
// assertion keyrings without reading the store (keyring.Holder.SetSecrets).
func (a *App) setSecrets(secrets *keyring.Secrets) {
	a.state.keys.SetSecrets(secrets, a.logger.Named("keyring"))
	for _, h := range a.state.assertionKeys {
		h.SetSecrets(secrets, a.logger.Named("assertion_keys"))
	}
}

// startCheckTimeout bounds the keyring check at start.
const startCheckTimeout = 10 * time.Second

// Stop is a no-op; see Cleanup.
func (a *App) Stop() error { return nil }

// Cleanup releases this config's hold on the shared state (the last
// holder's release closes the store) and closes the audit file.
func (a *App) Cleanup() error {
	if err := a.audit.Close(); err != nil {
		a.logger.Error("closing the audit log", zap.Error(err))
	}
	if a.state == nil {
		return nil
	}
	_, err := statePool.Delete(a.poolKey)
	return err
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
