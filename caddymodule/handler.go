package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/assertion"
	"github.com/tokengate/tokengate/internal/breaker"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/leak"
	"github.com/tokengate/tokengate/internal/legacy"
	"github.com/tokengate/tokengate/internal/oauth"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/scope"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/web"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Default routes.
const (
	DefaultTokensPath     = "/api-user/tokens"
	DefaultOAuthTokenPath = "/api-user/oauth/token"
	DefaultIntrospectPath = "/api-user/oauth/introspect"
	DefaultRevokePath     = "/api-user/oauth/revoke"
	DefaultJWKSPath       = "/.well-known/jwks.json"
	DefaultLegacyPath     = "/rest/token"
)

// Handler guards a site: it serves tokengate's own routes (the personal
// access token API) and lets any other request through only with a valid
// bearer token, telling the next handler who the caller is.
//
// On success it sets these headers for the upstream (names configurable;
// client-sent copies, in any spelling of case and '_'/'-', are always
// removed first) and placeholders:
//
//	X-Auth-User        {http.auth.user.id}           user name, or OAuth client id
//	X-Auth-Token-Type  {http.auth.user.token_type}   pat, legacy, oauth, jwt
//	X-Auth-Token-Id    {http.auth.user.token_id}     the token's public id
//	X-Auth-Scopes      {http.auth.user.scopes}       space-separated scopes
//
// With IdentityAssertion it also sets X-Auth-Assertion, a short-lived JWT
// signed by the gateway that says the same (see package assertion), or
// only that with plain_headers off (the placeholders are set either way).
//
// Failures are answered here with a JSON body and, for 401, a
// WWW-Authenticate challenge (RFC 6750); they never reach the next handler.
type Handler struct {
	// Realm is the realm of WWW-Authenticate challenges. Default: "tokengate".
	Realm string `json:"realm,omitempty"`

	// RequireScopes lists scopes every token must carry on this route;
	// a token lacking one gets 403 insufficient_scope.
	RequireScopes []string `json:"require_scopes,omitempty"`

	// TokensPath is where the personal access token API is served.
	// Default: /api-user/tokens.
	TokensPath string `json:"tokens_path,omitempty"`

	// DisableTokensAPI turns the token API off on this route (for sites
	// that only check tokens).
	DisableTokensAPI bool `json:"disable_tokens_api,omitempty"`

	// OAuthTokenPath is the OAuth token endpoint (client credentials).
	// Default: /api-user/oauth/token.
	OAuthTokenPath string `json:"oauth_token_path,omitempty"`

	// IntrospectPath is the RFC 7662 introspection endpoint. Default:
	// /api-user/oauth/introspect.
	IntrospectPath string `json:"introspect_path,omitempty"`

	// RevokePath is the RFC 7009 revocation endpoint. Default:
	// /api-user/oauth/revoke.
	RevokePath string `json:"revoke_path,omitempty"`

	// JWKSPath is where the public signing keys are published. Default:
	// /.well-known/jwks.json.
	JWKSPath string `json:"jwks_path,omitempty"`

	// DisableOAuthAPI turns the token, introspection, revocation and JWKS
	// routes off on this route.
	DisableOAuthAPI bool `json:"disable_oauth_api,omitempty"`

	// LegacyTokenPath is the legacy token service (seed 004). Default:
	// /rest/token.
	LegacyTokenPath string `json:"legacy_token_path,omitempty"`

	// DisableLegacyAPI turns the legacy token service off on this route.
	DisableLegacyAPI bool `json:"disable_legacy_api,omitempty"`

	// LegacyTokenHeader is a request header from which legacy clients'
	// tokens are also accepted (e.g. X-Auth-Token). Off by default. Only
	// legacy (40 hex) tokens are accepted there; the header is removed
	// before the request goes on.
	LegacyTokenHeader string `json:"legacy_token_header,omitempty"`

	// LegacyTokenQuery is a query parameter from which legacy tokens are
	// also accepted (e.g. token). Off by default. It is removed from the
	// URL before the request goes on (and before it is logged).
	LegacyTokenQuery string `json:"legacy_token_query,omitempty"`

	// ExternalIssuers are other issuers whose JWTs this route accepts.
	ExternalIssuers []ExternalIssuer `json:"external_issuers,omitempty"`

	// Headers names the identity headers. Defaults: X-Auth-User,
	// X-Auth-Token-Type, X-Auth-Token-Id, X-Auth-Scopes, X-Auth-Issuer
	// (an external issuer's "iss", or the app's issuer for our tokens).
	// Client-sent copies of the default names are removed even when they
	// are renamed (an upstream may still read them).
	Headers identity.Headers `json:"headers,omitzero"`

	// KeepAuthorization passes the Authorization header on to the next
	// handler. By default the consumed credential is removed so that it
	// never reaches the upstream or its logs.
	KeepAuthorization bool `json:"keep_authorization,omitempty"`

	// HealthPath, when set, is a route of this site that tells a load
	// balancer whether this node can reach its store: 200
	// {"store":"ok"}, or 503 {"store":"unavailable"} with Retry-After
	// while the store is not open or its circuit breaker is open (see
	// store_breaker: the breaker's probe pings the store every
	// probe_interval, so the answer costs no store call). GET and HEAD
	// only; it is answered here, never proxied, needs no credential and
	// says nothing else. Off by default.
	HealthPath string `json:"health_path,omitempty"`

	// IdentityAssertion sends the upstream a signed JWT that says who the
	// caller is (Caddyfile: an identity_assertion block). Off by default;
	// a client's copy of its header (X-Auth-Assertion) is removed anyway.
	IdentityAssertion *IdentityAssertion `json:"identity_assertion,omitempty"`

	// LeakReportPath, when set, is a public route of this site that takes
	// reports of leaked secrets in the shape of GitHub's secret scanning
	// partner program: POST a JSON array of {"token", "type", "url",
	// "source"}. A reported personal access token or legacy token that is
	// live is revoked, an access token of ours denied until it expires,
	// an OAuth key whose secret it is switched off; the owner is told
	// through the audit log and the token.reported_leaked event. Every
	// report is answered the same way (200, one {"token_hash",
	// "token_type", "label": "received"} per entry) whether the token
	// existed or not. Needs no credential; it is answered here, never
	// proxied. Off by default.
	LeakReportPath string `json:"leak_report_path,omitempty"`

	// LeakReportRate is how many requests one client address (IPv6: its
	// /64) may send to LeakReportPath per minute, on each node; more get
	// 429 with Retry-After. Default: 10; -1: no limit.
	LeakReportRate int `json:"leak_report_rate,omitempty"`

	// LeakReportKeys, when set, is a PEM file of ECDSA public keys (as
	// GitHub publishes its secret scanning keys at
	// https://api.github.com/meta/public_keys/secret_scanning): only
	// reports signed by one of them (Github-Public-Key-Signature) are
	// taken, others get 401. Read when the config loads. Default: none,
	// every report is taken.
	LeakReportKeys string `json:"leak_report_keys,omitempty"`

	// UI turns on the web pages (sign-in, token management, the
	// administrator's pages) under a prefix of this site. Off by default.
	UI *UIConfig `json:"ui,omitempty"`

	app         *App
	api         *pat.API
	legacy      *legacy.API
	jwks        *oauth.JWKS
	leaks       *leak.Responder
	ui          *web.UI
	credentials gate.Credentials
	external    []gate.External
	// ours are the identity header names; consumed adds the /rest/token
	// credential headers and the legacy token header, removed from every
	// request that goes on.
	ours, consumed []string
	routes         map[string]func(http.ResponseWriter, *http.Request, oauth.Request)
	headers        identity.Headers
	// required is RequireScopes normalized; scope the same joined.
	required []string
	scope    string
	logger   *zap.Logger

	// assertion signs the identity assertions (nil: off), sent in
	// assertionHeader; assertionJWKS publishes their keys.
	assertion       *assertion.Signer
	assertionHeader string
	assertionJWKS   *oauth.JWKS
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tokengate",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision gets the tokengate app and sets defaults.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appIface, err := ctx.App("tokengate")
	if err != nil {
		return fmt.Errorf("getting tokengate app: %v", err)
	}
	app, ok := appIface.(*App)
	if !ok {
		return fmt.Errorf("tokengate app has unexpected type %T", appIface)
	}
	return h.setup(app)
}

// setup sets defaults and builds what the handler needs from the app.
func (h *Handler) setup(app *App) error {
	h.app = app
	if h.Realm == "" {
		h.Realm = "tokengate"
	}
	if h.TokensPath == "" {
		h.TokensPath = DefaultTokensPath
	}
	h.routes = map[string]func(http.ResponseWriter, *http.Request, oauth.Request){}
	h.headers = h.Headers.WithDefaults()
	h.ours = h.headers.Guarded()
	if ia := h.IdentityAssertion; ia != nil && ia.Header != "" {
		h.ours = append(h.ours, http.CanonicalHeaderKey(ia.Header))
	}
	h.consumed = append(slices.Clip(h.ours), legacy.LoginHeaders...)
	if h.LegacyTokenHeader != "" {
		h.consumed = append(h.consumed, h.LegacyTokenHeader)
	}
	h.credentials = gate.Credentials{LegacyHeader: h.LegacyTokenHeader, LegacyQuery: h.LegacyTokenQuery}
	if !h.DisableTokensAPI {
		h.api = &pat.API{Service: app.pats, Auth: app.logins.Default(), Prefix: h.TokensPath, Metrics: app.state.metrics,
			Self: h.presented}
	}
	if !h.DisableLegacyAPI {
		h.legacy = &legacy.API{Service: app.legacy, Logins: app.logins, Path: orDefault(h.LegacyTokenPath, DefaultLegacyPath),
			Metrics: app.state.metrics, Tokens: app.pats}
		h.routes[h.legacy.Path] = h.serveLegacy
		h.routes[h.legacy.Path+legacy.RotateSuffix] = h.serveLegacyRotate
	}
	if err := h.setupExternal(); err != nil {
		return err
	}
	if h.LegacyTokenHeader != "" || h.LegacyTokenQuery != "" {
		// Caddy's access log records the request before any handler runs,
		// so removing the token here cannot keep it out of that log.
		h.logger.Warn("legacy token sources are on: if this site has an access log, filter them out of it "+
			"(log { format filter { request>headers>"+http.CanonicalHeaderKey(orDefault(h.LegacyTokenHeader, "X-Auth-Token"))+
			" delete; request>uri query { delete "+orDefault(h.LegacyTokenQuery, "token")+" } } }), see the README",
			zap.String("header", h.LegacyTokenHeader), zap.String("query", h.LegacyTokenQuery))
	}
	if h.HealthPath != "" {
		h.routes[h.HealthPath] = h.serveHealth
	}
	if err := h.setupAssertion(); err != nil {
		return err
	}
	if h.LeakReportPath != "" {
		h.leaks = app.leakResponder(h.LeakReportRate)
		if h.LeakReportKeys != "" {
			pemData, err := os.ReadFile(h.LeakReportKeys)
			if err != nil {
				return fmt.Errorf("leak_report_keys: %v", err)
			}
			if h.leaks.Keys, err = leak.ParsePublicKeys(pemData); err != nil {
				return fmt.Errorf("leak_report_keys %s: %v", h.LeakReportKeys, err)
			}
		}
		h.routes[h.LeakReportPath] = h.serveLeakReport
	}
	if !h.DisableOAuthAPI {
		ep := app.endpoint(h.Realm)
		h.routes[orDefault(h.OAuthTokenPath, DefaultOAuthTokenPath)] = ep.ServeToken
		h.routes[orDefault(h.IntrospectPath, DefaultIntrospectPath)] = ep.ServeIntrospect
		h.routes[orDefault(h.RevokePath, DefaultRevokePath)] = ep.ServeRevoke
		h.jwks = app.jwks()
		h.routes[orDefault(h.JWKSPath, DefaultJWKSPath)] = h.serveJWKS
	}
	scopes, err := scope.Normalize(h.RequireScopes)
	if err != nil {
		return fmt.Errorf("require_scope: %v", err)
	}
	if h.UI != nil {
		if err := h.UI.validate(); err != nil {
			return err
		}
		if h.ui, err = h.UI.build(app, h); err != nil {
			return err
		}
	}
	h.required = scopes
	h.scope = strings.Join(scopes, " ")
	return nil
}

// Validate checks the configuration without changing it.
func (h Handler) Validate() error {
	own := h.ownPaths()
	for i, a := range own {
		if a.path[0] != '/' || a.path[len(a.path)-1] == '/' {
			return fmt.Errorf("%s %q must start with / and not end with /", a.option, a.path)
		}
		for _, b := range own[:i] {
			if a.path == b.path {
				return fmt.Errorf("%s %q is already one of the gateway's own routes (%s)", a.option, a.path, b.option)
			}
		}
	}
	if h.LeakReportKeys != "" && h.LeakReportPath == "" {
		return fmt.Errorf("leak_report_keys needs leak_report_path")
	}
	if h.LeakReportRate < -1 {
		return fmt.Errorf("leak_report_rate must be -1 (no limit), 0 (the default) or positive")
	}
	if _, err := scope.Normalize(h.RequireScopes); err != nil {
		return fmt.Errorf("require_scope: %v", err)
	}
	if err := h.Headers.Check(); err != nil {
		return fmt.Errorf("headers: %v", err)
	}
	if h.LegacyTokenHeader != "" && http.CanonicalHeaderKey(h.LegacyTokenHeader) == "Authorization" {
		return fmt.Errorf("legacy_token_header must not be Authorization")
	}
	if h.IdentityAssertion != nil {
		if err := h.IdentityAssertion.validate(); err != nil {
			return err
		}
	}
	for _, x := range h.ExternalIssuers {
		if err := x.validate(); err != nil {
			return err
		}
	}
	if h.UI != nil {
		if err := h.UI.validate(); err != nil {
			return err
		}
		if p := h.UI.prefix(); h.clashesWithUI(p) {
			return fmt.Errorf("ui: prefix %q overlaps one of the gateway's own routes", p)
		}
	}
	return nil
}

// ownPath is the path of one of the gateway's own routes and the option
// that sets it.
type ownPath struct{ option, path string }

// ownPaths lists the paths of the gateway's own routes on this site: the
// standard ones (with their defaults, served or turned off) and those of
// the optional routes that are on.
func (h Handler) ownPaths() []ownPath {
	legacyPath := orDefault(h.LegacyTokenPath, DefaultLegacyPath)
	paths := []ownPath{
		{"tokens_path", orDefault(h.TokensPath, DefaultTokensPath)},
		{"oauth_token_path", orDefault(h.OAuthTokenPath, DefaultOAuthTokenPath)},
		{"introspect_path", orDefault(h.IntrospectPath, DefaultIntrospectPath)},
		{"revoke_path", orDefault(h.RevokePath, DefaultRevokePath)},
		{"jwks_path", orDefault(h.JWKSPath, DefaultJWKSPath)},
		{"legacy_token_path", legacyPath},
		{"legacy_token_path (rotation)", legacyPath + legacy.RotateSuffix},
		{"health_path", h.HealthPath},
		{"leak_report_path", h.LeakReportPath},
		{"identity_assertion: jwks_path", h.assertionJWKSPath()},
	}
	return slices.DeleteFunc(paths, func(p ownPath) bool { return p.path == "" })
}

// clashesWithUI reports whether one of the handler's own routes lies
// under the pages' prefix (or the prefix under the token API).
func (h Handler) clashesWithUI(prefix string) bool {
	under := func(p string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
	for _, p := range h.ownPaths() {
		if under(p.path) || strings.HasPrefix(prefix, p.path+"/") {
			return true
		}
	}
	return false
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	clientIP := clientIP(r)
	// Our identity headers are ours alone: client-sent copies go on every
	// request, whatever happens next, from headers, trailers (which arrive
	// after this handler ran) and Connection tokens (see identity.Strip).
	if h.ui != nil && h.ui.Matches(r.URL.Path) {
		// The pages are ours: answered here, never proxied.
		identity.Strip(r, h.consumed)
		h.ui.ServeHTTP(w, forwardedHTTPS(r), ipString(clientIP))
		return nil
	}
	if route := h.ownRoute(r.URL.Path); route != nil {
		identity.Strip(r, h.ours)
		route(w, r, oauth.Request{ClientIP: ipString(clientIP), Host: r.Host})
		return nil
	}
	cred, err := h.credentials.Take(r)
	// One pass: our headers, the /rest/token credentials and the legacy
	// token header, which have no business on other routes and never
	// travel on to the upstream. After Take took the legacy header from
	// the headers: a trailer copy (arriving after us) is only removed.
	identity.Strip(r, h.consumed)
	var (
		d      *decision.Decision
		signed string // the identity assertion
	)
	if err == nil {
		d, err = h.app.checker.Decide(r.Context(), gate.Request{
			Token: cred.Token, ClientIP: clientIP, Required: h.required, Host: r.Host, External: h.external, Legacy: cred.Legacy,
		})
		if err == nil && h.assertion != nil {
			if signed, err = h.assertion.Assert(r.Context(), d, clientIP); err != nil {
				err = apierr.FromStore(err)
			}
		}
	}
	if err != nil {
		h.fail(w, r, err, "Bearer")
		return nil
	}
	id := d.Identity()
	if !h.KeepAuthorization {
		delete(r.Header, "Authorization")
	}
	// The pages' session cookie is a credential for the pages only: the
	// upstream never sees it.
	session.StripCookie(r.Header)
	if id.Issuer == "" { // one of our own tokens: we are its issuer
		id.Issuer, id.Stable[4] = h.app.Issuer, &h.app.Issuer
	}
	if h.assertion == nil || h.IdentityAssertion.plain() {
		h.headers.Set(r.Header, id)
	}
	if h.assertion != nil {
		r.Header[h.assertionHeader] = []string{signed}
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		for i, name := range identity.PlaceholderNames {
			repl.Set(name, id.Placeholder(i))
		}
	}
	if h.ui != nil {
		// The pages share this site's origin with the upstream: its
		// answers must not set (toss) a session cookie.
		w = &sessionCookieGuard{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}} // one allocation
	}
	return next.ServeHTTP(w, r)
}

// sessionCookieGuard removes Set-Cookie lines for the session cookies from
// the upstream's answer before its header is written, by whichever path
// (WriteHeader, Write, ReadFrom) the header goes out.
type sessionCookieGuard struct {
	caddyhttp.ResponseWriterWrapper
	wrote bool
}

func (g *sessionCookieGuard) WriteHeader(status int) {
	if !g.wrote {
		session.StripSetCookie(g.Header())
		g.wrote = status >= 200 // 1xx headers go out, and more follow
	}
	g.ResponseWriterWrapper.WriteHeader(status)
}

func (g *sessionCookieGuard) Write(b []byte) (int, error) {
	if !g.wrote {
		g.WriteHeader(http.StatusOK)
	}
	return g.ResponseWriterWrapper.Write(b)
}

func (g *sessionCookieGuard) ReadFrom(r io.Reader) (int64, error) {
	if !g.wrote {
		g.WriteHeader(http.StatusOK)
	}
	return g.ResponseWriterWrapper.ReadFrom(r)
}

// assertionJWKSPath is the route of the assertion keys ("" when the
// site sends no assertions, or signs them with its own HS256 secret).
func (h Handler) assertionJWKSPath() string {
	ia := h.IdentityAssertion
	if ia == nil || ia.algorithm() == jwt.HS256 {
		return ""
	}
	return orDefault(ia.JWKSPath, DefaultAssertionJWKSPath)
}

// ownRoute returns the handler of one of the gateway's own routes, or nil.
func (h *Handler) ownRoute(path string) func(http.ResponseWriter, *http.Request, oauth.Request) {
	if route, ok := h.routes[path]; ok {
		return route
	}
	if h.api != nil && h.api.Matches(path) {
		return h.serveTokensAPI
	}
	return nil
}

// serveTokensAPI and serveLegacy answer routes authenticated by HTTP Basic
// (the self routes, by the token presented: a Bearer challenge).
func (h *Handler) serveTokensAPI(w http.ResponseWriter, r *http.Request, req oauth.Request) {
	if err := h.api.Serve(w, r, req.ClientIP); err != nil {
		challenge := "Basic"
		if h.api.IsSelf(r.URL.Path) {
			challenge = "Bearer"
		}
		h.fail(w, r, err, challenge)
	}
}

// presented checks the stored token (a PAT or a legacy token) a request
// to a self route presents, as the edge checks any request (no scope is
// required), and names it.
func (h *Handler) presented(r *http.Request) (pat.Presented, error) {
	cred, err := h.credentials.Take(r)
	if err != nil {
		return pat.Presented{}, err
	}
	id, err := h.app.checker.Check(r.Context(), gate.Request{Token: cred.Token, ClientIP: clientIP(r), Host: r.Host, Legacy: cred.Legacy})
	if err != nil {
		return pat.Presented{}, err
	}
	if id.TokenType != store.KindPAT && id.TokenType != store.KindLegacy {
		return pat.Presented{}, apierr.BadRequest("only personal access tokens and legacy tokens are managed here")
	}
	return pat.Presented{Owner: id.User, ID: id.TokenID, Kind: id.TokenType, Hash: token.Hash(cred.Token)}, nil
}

// serveLegacyRotate answers POST {legacy path}/rotate: the legacy token
// presented gets a new secret (see legacy.API.ServeRotate).
func (h *Handler) serveLegacyRotate(w http.ResponseWriter, r *http.Request, _ oauth.Request) {
	if err := h.legacy.ServeRotate(w, r, h.presented); err != nil {
		h.fail(w, r, err, "Bearer")
	}
}

func (h *Handler) serveLegacy(w http.ResponseWriter, r *http.Request, req oauth.Request) {
	if err := h.legacy.Serve(w, r, req.ClientIP); err != nil {
		h.fail(w, r, err, "Basic")
	}
}

// serveJWKS publishes the public signing keys.
func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request, _ oauth.Request) {
	if err := h.jwks.Serve(w, r); err != nil {
		h.fail(w, r, err, "")
	}
}

// serveHealth tells a load balancer whether the store is reachable, from
// what this node already knows (attached, breaker closed): no store call.
func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request, _ oauth.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, apierr.ErrMethodNotAllowed, "")
		return
	}
	st := h.app.state.store
	status, body := http.StatusOK, `{"store":"ok"}`
	if st.Backend() == nil || st.Breaker().Open() {
		status, body = http.StatusServiceUnavailable, `{"store":"unavailable"}`
		apierr.SetRetryAfter(w.Header(), apierr.Problem{RetryAfter: st.Breaker().RetryAfter()})
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, body+"\n")
	}
}

// serveLeakReport takes reports of leaked secrets (see LeakReportPath).
// Its failures are logged like any refusal: never the body, which holds
// the reported tokens.
func (h *Handler) serveLeakReport(w http.ResponseWriter, r *http.Request, _ oauth.Request) {
	if err := h.leaks.Serve(w, r, leak.Request{ClientIP: clientIP(r), Host: r.Host}); err != nil {
		h.fail(w, r, err, "")
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// fail answers a refused request and logs why (never the credential).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error, scheme string) {
	p := apierr.For(err)
	if p.Code == "insufficient_scope" {
		p.Scope = h.scope
	}
	// Refusals are routine (Debug); a store outage or a bug is not, but
	// an outage the store's breaker knows of was logged once when it
	// opened: a line per request would flood the log.
	level := zapcore.DebugLevel
	if p.Status >= 500 && !errors.Is(err, breaker.ErrOpen) {
		level = zapcore.ErrorLevel
	}
	if ce := h.logger.Check(level, "request refused"); ce != nil {
		ce.Write(zap.Int("status", p.Status), zap.String("reason", err.Error()),
			zap.String("path", r.URL.Path), zap.String("client_ip", ipString(clientIP(r))))
	}
	apierr.Write(w, p, apierr.Challenge{Scheme: scheme, Realm: h.Realm})
}

// forwardedHTTPS marks r as HTTPS when TLS ended at a proxy in Caddy's
// trusted_proxies that says so (X-Forwarded-Proto); a header from anyone
// else is not believed.
func forwardedHTTPS(r *http.Request) *http.Request {
	if r.TLS != nil {
		return r
	}
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	if trusted && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return session.MarkHTTPS(r)
	}
	return r
}

// clientIP is the client address as Caddy computed it, which honours
// trusted_proxies only; X-Forwarded-For from an untrusted peer is ignored.
func clientIP(r *http.Request) netip.Addr {
	s, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
