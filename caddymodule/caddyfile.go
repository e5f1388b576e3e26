package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("tokengate", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("tokengate", parseHandlerDirective)
	// Right after basic_auth: before handle, route and reverse_proxy, so a
	// site that proxies inside `handle /api/* { reverse_proxy ... }` is
	// still guarded (ordered before reverse_proxy, it would not be).
	httpcaddyfile.RegisterDirectiveOrder("tokengate", httpcaddyfile.After, "basic_auth")
}

func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the tokengate global option may be given only once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "tokengate", Value: caddyconfig.JSON(app, nil)}, nil
}

func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens. Syntax:
//
//	tokengate {
//		store <file path | redis URL>
//		cache_ttl <duration>
//		invalidation_ping <duration>
//		cache_size <entries>
//		max_tokens_per_user <n | -1>
//		last_access_flush <duration>
//		bcrypt_cost <4-31>
//		login_limits <per_account> <per_address> <window>
//		token_failure_limit <per_address> <window> | off
//		signing <HS256|RS256|ES256|EdDSA>
//		access_token_ttl <duration>
//		issuer <iss>
//		audience <aud>
//		jwks_max_age <duration>
//		audit_log <dir | off>
//		audit_log_time_zone <IANA name | Local | UTC>
//		legacy_token_ttl <duration>
//		max_legacy_tokens_per_user <n | -1>
//		legacy_token_cap_policy <revoke_oldest | refuse>
//		identity_source <local | backend>
//		identity_backend <url>
//		backend_roles <role...>
//		store_breaker {
//			failures <n>
//			probe_interval <duration>
//			retry_after <duration>
//			stale_window <duration | 0>
//		}
//		store_durability {
//			replicas <n>
//			timeout <duration>
//		}
//		secrets_key <base64 key>
//		secrets_key_previous <base64 key>
//		events {
//			webhook <url>
//			secret <secret>
//			expiry_warnings <duration...> | off
//			expiry_scan_interval <duration>
//			address_memory <duration>
//			queue_size <n>
//			timeout <duration>
//			attempts <n>
//			backoff <first> [<max>]
//		}
//		token_policy {
//			pat_max_lifetime <duration>
//			legacy_max_lifetime <duration>
//			require_expiry
//			dormant_after <duration>
//			dormancy_warning <duration>
//			scan_interval <duration>
//		}
//	}
//
// Values are kept as written (placeholders too): secrets such as
// {env.REDIS_URL} are resolved at provisioning, never into adapted JSON.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return eachSubdirective(d, func(sub string) (err error) {
		switch sub {
		case "store":
			a.Store, err = oneArg(d)
		case "cache_ttl":
			a.CacheTTL, err = durationArg(d)
		case "invalidation_ping":
			a.InvalidationPing, err = durationArg(d)
		case "cache_size":
			a.CacheSize, err = intArg(d, 1)
		case "max_tokens_per_user":
			a.MaxTokensPerUser, err = capArg(d)
		case "max_legacy_tokens_per_user":
			a.MaxLegacyTokensPerUser, err = capArg(d)
		case "legacy_token_cap_policy":
			a.LegacyTokenCapPolicy, err = oneArg(d)
		case "last_access_flush":
			a.LastAccessFlush, err = durationArg(d)
		case "bcrypt_cost":
			a.BcryptCost, err = intArg(d, 4)
		case "login_limits":
			err = a.parseLoginLimits(d)
		case "token_failure_limit":
			err = a.parseTokenFailureLimit(d)
		case "signing":
			a.Signing, err = oneArg(d)
		case "access_token_ttl":
			a.AccessTokenTTL, err = durationArg(d)
		case "issuer":
			a.Issuer, err = oneArg(d)
		case "audience":
			a.Audience, err = oneArg(d)
		case "jwks_max_age":
			a.JWKSMaxAge, err = durationArg(d)
		case "audit_log":
			a.AuditLog, err = oneArg(d)
		case "audit_log_time_zone":
			a.AuditLogTimeZone, err = oneArg(d)
		case "legacy_token_ttl":
			a.LegacyTokenTTL, err = durationArg(d)
		case "identity_source":
			a.IdentitySource, err = oneArg(d)
		case "identity_backend":
			a.IdentityBackend, err = oneArg(d)
		case "store_breaker":
			a.StoreBreaker, err = parseStoreBreaker(d)
		case "store_durability":
			a.StoreDurability, err = parseStoreDurability(d)
		case "secrets_key":
			a.SecretsKey, err = oneArg(d)
		case "secrets_key_previous":
			a.SecretsKeyPrevious, err = oneArg(d)
		case "events":
			a.Events, err = parseEvents(d)
		case "token_policy":
			a.TokenPolicy, err = parseTokenPolicy(d)
		case "backend_roles":
			a.BackendRoles = d.RemainingArgs()
			if len(a.BackendRoles) == 0 {
				err = d.ArgErr()
			}
		default:
			err = d.Errf("unrecognized subdirective %q", sub)
		}
		return err
	})
}

// eachSubdirective reads a block without inline arguments and calls fn
// for each subdirective (with the dispenser on its name), refusing
// duplicates of all but external_jwt, which may repeat.
func eachSubdirective(d *caddyfile.Dispenser, fn func(sub string) error) error {
	d.Next() // the option or directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		sub := d.Val()
		if seen[sub] && sub != "external_jwt" {
			return d.Errf("duplicate subdirective %q", sub)
		}
		seen[sub] = true
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}

// eachNested calls fn for each subdirective of the block the dispenser is
// in (with the dispenser on its name), refusing an argument left on the
// block's own line and a subdirective given twice in the block named name.
func eachNested(d *caddyfile.Dispenser, name string, fn func(sub string) error) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return d.Errf("%s: duplicate %q", name, sub)
		}
		seen[sub] = true
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}

func (a *App) parseLoginLimits(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 3 {
		return d.Err("login_limits takes <per_account> <per_address> <window>")
	}
	perAccount, err1 := strconv.ParseInt(args[0], 10, 64)
	perAddress, err2 := strconv.ParseInt(args[1], 10, 64)
	window, err3 := caddy.ParseDuration(args[2])
	if err1 != nil || err2 != nil || err3 != nil || perAccount < 1 || perAddress < 1 || window <= 0 {
		return d.Errf("login_limits: invalid values %q", args)
	}
	a.LoginFailuresPerAccount, a.LoginFailuresPerAddress = perAccount, perAddress
	a.LoginFailureWindow = caddy.Duration(window)
	return nil
}

func (a *App) parseTokenFailureLimit(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) == 1 && args[0] == "off" {
		a.TokenFailuresPerAddress = -1
		return nil
	}
	if len(args) != 2 {
		return d.Err("token_failure_limit takes <per_address> <window>, or off")
	}
	n, err1 := strconv.ParseInt(args[0], 10, 64)
	window, err2 := caddy.ParseDuration(args[1])
	if err1 != nil || err2 != nil || n < 1 || window <= 0 {
		return d.Errf("token_failure_limit: invalid values %q", args)
	}
	a.TokenFailuresPerAddress, a.TokenFailureWindow = n, caddy.Duration(window)
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	tokengate {
//		realm <name>
//		require_scope <scope...>
//		tokens_path <path>
//		tokens_api off
//		oauth_token_path <path>
//		introspect_path <path>
//		revoke_path <path>
//		jwks_path <path>
//		oauth_api off
//		legacy_token_path <path>
//		legacy_api off
//		legacy_token_header <name>
//		legacy_token_query <name>
//		health_path <path>
//		leak_report_path <path>
//		leak_report_rate <requests per minute | -1>
//		leak_report_keys <PEM file>
//		external_jwt {
//			issuer <iss>
//			audience <aud>
//			jwks_url <url> | hs256_secret <secret>
//			user_claim <claim>
//			scope_claim <claim>
//			refresh_floor <duration>
//			accept_typ <typ...>
//			allow_http_loopback
//		}
//		header_user <name>
//		header_token_type <name>
//		header_token_id <name>
//		header_scopes <name>
//		header_issuer <name>
//		keep_authorization
//		identity_assertion {
//			audience <aud>
//			header <name>
//			issuer <iss>
//			lifetime <duration>
//			algorithm <ES256|RS256|EdDSA|HS256>
//			hs256_secret <secret>
//			plain_headers <on|off>
//			jwks_path <path>
//		}
//		ui [<prefix>] {
//			scopes <scope...>
//			session_idle <duration>
//			session_lifetime <duration>
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return eachSubdirective(d, func(sub string) (err error) {
		switch sub {
		case "realm":
			h.Realm, err = oneArg(d)
		case "require_scope":
			h.RequireScopes = d.RemainingArgs()
			if len(h.RequireScopes) == 0 {
				err = d.ArgErr()
			}
		case "tokens_path":
			h.TokensPath, err = oneArg(d)
		case "tokens_api":
			h.DisableTokensAPI, err = offArg(d)
		case "oauth_api":
			h.DisableOAuthAPI, err = offArg(d)
		case "oauth_token_path":
			h.OAuthTokenPath, err = oneArg(d)
		case "introspect_path":
			h.IntrospectPath, err = oneArg(d)
		case "revoke_path":
			h.RevokePath, err = oneArg(d)
		case "jwks_path":
			h.JWKSPath, err = oneArg(d)
		case "legacy_token_path":
			h.LegacyTokenPath, err = oneArg(d)
		case "legacy_api":
			h.DisableLegacyAPI, err = offArg(d)
		case "legacy_token_header":
			h.LegacyTokenHeader, err = oneArg(d)
		case "legacy_token_query":
			h.LegacyTokenQuery, err = oneArg(d)
		case "external_jwt":
			var x ExternalIssuer
			if x, err = parseExternalIssuer(d); err == nil {
				h.ExternalIssuers = append(h.ExternalIssuers, x)
			}
		case "header_user":
			h.Headers.User, err = oneArg(d)
		case "header_token_type":
			h.Headers.TokenType, err = oneArg(d)
		case "header_token_id":
			h.Headers.TokenID, err = oneArg(d)
		case "header_scopes":
			h.Headers.Scopes, err = oneArg(d)
		case "header_issuer":
			h.Headers.Issuer, err = oneArg(d)
		case "keep_authorization":
			h.KeepAuthorization, err = flagArg(d)
		case "health_path":
			h.HealthPath, err = oneArg(d)
		case "identity_assertion":
			h.IdentityAssertion, err = parseIdentityAssertion(d)
		case "leak_report_path":
			h.LeakReportPath, err = oneArg(d)
		case "leak_report_rate":
			h.LeakReportRate, err = intArg(d, -1)
		case "leak_report_keys":
			h.LeakReportKeys, err = oneArg(d)
		case "ui":
			if h.UI != nil {
				return d.Err("ui: given twice")
			}
			h.UI, err = parseUI(d)
		default:
			err = d.Errf("unrecognized subdirective %q", sub)
		}
		return err
	})
}

// parseStoreBreaker reads a store_breaker block.
func parseStoreBreaker(d *caddyfile.Dispenser) (*StoreBreaker, error) {
	b := new(StoreBreaker)
	err := eachNested(d, "store_breaker", func(sub string) (err error) {
		switch sub {
		case "failures":
			b.Failures, err = intArg(d, 1)
		case "probe_interval":
			b.ProbeInterval, err = durationArg(d)
		case "retry_after":
			b.RetryAfter, err = durationArg(d)
		case "stale_window":
			b.StaleWindow, err = durationOrZeroArg(d)
		default:
			err = d.Errf("store_breaker: unrecognized subdirective %q", sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// parseStoreDurability reads a store_durability block.
func parseStoreDurability(d *caddyfile.Dispenser) (*StoreDurability, error) {
	sd := new(StoreDurability)
	err := eachNested(d, "store_durability", func(sub string) (err error) {
		switch sub {
		case "replicas":
			var n int
			n, err = intArg(d, 0)
			sd.Replicas = &n
		case "timeout":
			sd.Timeout, err = durationArg(d)
		default:
			err = d.Errf("store_durability: unrecognized subdirective %q", sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if sd.Replicas == nil {
		return nil, d.Err("store_durability: replicas <n> is required")
	}
	return sd, nil
}

// parseExternalIssuer reads an external_jwt block.
func parseExternalIssuer(d *caddyfile.Dispenser) (ExternalIssuer, error) {
	var x ExternalIssuer
	err := eachNested(d, "external_jwt", func(sub string) (err error) {
		switch sub {
		case "issuer":
			x.Issuer, err = oneArg(d)
		case "audience":
			x.Audience, err = oneArg(d)
		case "jwks_url":
			x.JWKSURL, err = oneArg(d)
		case "hs256_secret":
			x.HS256Secret, err = oneArg(d)
		case "user_claim":
			x.UserClaim, err = oneArg(d)
		case "scope_claim":
			x.ScopeClaim, err = oneArg(d)
		case "refresh_floor":
			x.RefreshFloor, err = durationArg(d)
		case "accept_typ":
			if x.AcceptTyp = d.RemainingArgs(); len(x.AcceptTyp) == 0 {
				err = d.ArgErr()
			}
		case "allow_http_loopback":
			x.AllowHTTPLoopback, err = flagArg(d)
		default:
			err = d.Errf("external_jwt: unrecognized subdirective %q", sub)
		}
		return err
	})
	if err != nil {
		return x, err
	}
	if err := x.validate(); err != nil {
		return x, d.Err(err.Error())
	}
	return x, nil
}

// flagArg reads a subdirective that takes no argument: it is on.
func flagArg(d *caddyfile.Dispenser) (bool, error) {
	if d.NextArg() {
		return true, d.ArgErr()
	}
	return true, nil
}

// offArg reads the single argument "off".
func offArg(d *caddyfile.Dispenser) (bool, error) {
	name := d.Val()
	v, err := oneArg(d)
	if err == nil && v != "off" {
		err = d.Errf("%s: the only value is \"off\"", name)
	}
	return true, err
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	args := d.RemainingArgs()
	if len(args) != 1 {
		return "", d.ArgErr()
	}
	return args[0], nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, d.Errf("%s: invalid duration %q", name, s)
	}
	return caddy.Duration(v), nil
}

// durationOrZeroArg is durationArg that also takes 0 (off).
func durationOrZeroArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, d.Errf("%s: invalid duration %q", name, s)
	}
	return caddy.Duration(v), nil
}

func intArg(d *caddyfile.Dispenser, minimum int) (int, error) {
	name := d.Val()
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < minimum {
		return 0, d.Errf("%s: %q must be a whole number of at least %d", name, s, minimum)
	}
	return v, nil
}

// capArg reads a per-user token cap: a positive number or -1 (no limit).
func capArg(d *caddyfile.Dispenser) (int, error) {
	name := d.Val()
	v, err := intArg(d, -1)
	if err == nil && v == 0 {
		err = d.Errf("%s must be -1 (no limit) or positive", name)
	}
	return v, err
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
