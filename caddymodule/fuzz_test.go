package caddymodule

import (
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// fuzzDispenser tokenises a fuzzed Caddyfile. caddyfile.NewTestDispenser
// would do, but it ends the process on a lexing error (log.Fatalf), so the
// fuzz targets tokenise first and skip what Caddy's lexer refuses.
func fuzzDispenser(input string) (*caddyfile.Dispenser, bool) {
	tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
	if err != nil {
		return nil, false
	}
	return caddyfile.NewDispenser(tokens), true
}

// roundTrip checks what a Caddyfile parse produced the way the adapter
// hands it on: as JSON. Marshalled and read back it is the same value,
// and Validate says the same of both (it never panics).
func roundTrip[T any](t *testing.T, v *T, validate func(T) error) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("accepted config does not marshal: %v", err)
	}
	var back T
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("adapted JSON %s does not unmarshal: %v", b, err)
	}
	b2, err := json.Marshal(&back)
	if err != nil || string(b2) != string(b) {
		t.Fatalf("JSON round trip changed the config:\n%s\n%s", b, b2)
	}
	errV, errBack := validate(*v), validate(back)
	if (errV == nil) != (errBack == nil) {
		t.Fatalf("Validate = %v, after the JSON round trip %v", errV, errBack)
	}
}

// FuzzHandlerCaddyfile: any tokengate directive block is refused with an
// error, or is a Handler that survives the adapter's JSON unchanged and
// that Validate accepts or refuses with an error, never a panic.
func FuzzHandlerCaddyfile(f *testing.F) {
	for _, s := range []string{
		fuzzFullHandler, "tokengate", "tokengate {\n}", "tokengate {\n realm a\n realm b\n}", "tokengate foo",
		"tokengate {\n tokens_api on\n}", "tokengate {\n tokens_path api\n}", "tokengate {\n ui\n}",
		"tokengate {\n ui /account {\n scopes read\n session_idle 0s\n }\n}", "tokengate {\n ui /api-user {\n }\n}",
		"tokengate {\n external_jwt {\n issuer x\n }\n}", "tokengate {\n require_scope \"a b\" c\"\n}",
		"tokengate {\n legacy_token_header authorization\n}", "tokengate {\n header_user Host\n}",
		"tokengate {\n external_jwt {\n issuer p\n audience a\n hs256_secret short\n jwks_url http://x\n }\n}",
		"tokengate {\n keep_authorization\n keep_authorization\n}", "tokengate {\n{\n}\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d, ok := fuzzDispenser(input)
		if !ok {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(d); err != nil {
			return
		}
		roundTrip(t, &h, Handler.Validate)
	})
}

// FuzzAppCaddyfile: any tokengate global option block is refused with an
// error, or is an App that survives the adapter's JSON unchanged and that
// Validate accepts or refuses with an error, never a panic.
func FuzzAppCaddyfile(f *testing.F) {
	for _, s := range []string{
		fuzzFullApp, "tokengate", "tokengate {\n}", "tokengate {\n store a\n store b\n}",
		"tokengate {\n cache_ttl -1s\n}", "tokengate {\n bcrypt_cost 32\n}", "tokengate {\n login_limits 1 1 0s\n}",
		"tokengate {\n token_failure_limit off\n}", "tokengate {\n max_tokens_per_user -2\n}",
		"tokengate {\n signing none\n}", "tokengate {\n access_token_ttl 1ns\n}",
		"tokengate {\n identity_source backend\n}", "tokengate {\n identity_backend https://u:p@x\n}",
		"tokengate {\n cache_size 99999999999999999999\n}", "tokengate {\n backend_roles\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d, ok := fuzzDispenser(input)
		if !ok {
			return
		}
		var a App
		if err := a.UnmarshalCaddyfile(d); err != nil {
			return
		}
		roundTrip(t, &a, App.Validate)
	})
}

// fuzzFullApp and fuzzFullHandler are the blocks of the adapt golden
// file testdata/adapt/full.txt: every option.
const fuzzFullApp = `
tokengate {
	store {env.TOKENGATE_STORE}
	cache_ttl 1m
	cache_size 5000
	max_tokens_per_user -1
	last_access_flush 5s
	bcrypt_cost 12
	login_limits 5 100 10m
	token_failure_limit 20 30s
	signing RS256
	access_token_ttl 30m
	issuer https://auth.example.com
	audience api.example.com
	jwks_max_age 10m
	audit_log /var/log/tokengate
	audit_log_time_zone Europe/Kyiv
	legacy_token_ttl 720h
	max_legacy_tokens_per_user 10
	legacy_token_cap_policy refuse
	identity_source backend
	identity_backend https://legacy.internal/auth/check
	backend_roles ws-users
}
`

const fuzzFullHandler = `
tokengate {
	realm api
	require_scope read write
	tokens_path /me/tokens
	header_user X-Remote-User
	header_token_type X-Remote-Token-Type
	header_token_id X-Remote-Token-Id
	header_scopes X-Remote-Scopes
	header_issuer X-Remote-Issuer
	keep_authorization
	ui /portal {
		scopes read write
		session_idle 15m
		session_lifetime 8h
	}
	oauth_token_path /oauth/token
	introspect_path /oauth/introspect
	revoke_path /oauth/revoke
	jwks_path /jwks.json
	legacy_token_path /legacy/token
	legacy_token_header X-Auth-Token
	legacy_token_query token
	leak_report_path /security/leaked-tokens
	leak_report_rate 20
	leak_report_keys /etc/caddy/github-secret-scanning.pem
	external_jwt {
		issuer https://idp.example.com
		audience api
		jwks_url https://idp.example.com/.well-known/jwks.json
		user_claim preferred_username
		scope_claim scp
		refresh_floor 1m
		accept_typ at+jwt JWT
	}
	external_jwt {
		issuer https://sidecar.internal
		audience api
		jwks_url http://127.0.0.1:8081/jwks
		allow_http_loopback
	}
	external_jwt {
		issuer partner
		audience api
		hs256_secret {env.PARTNER_SECRET}
	}
}
`
