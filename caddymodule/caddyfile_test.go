package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/tokengate/internal/identity"
)

func TestHandlerCaddyfileErrors(t *testing.T) {
	tests := []caddyfileError{
		{"unknown", "tokengate {\n bogus 1\n}", `unrecognized subdirective "bogus"`},
		{"duplicate", "tokengate {\n realm a\n realm b\n}", `duplicate subdirective "realm"`},
		{"inline arg", "tokengate foo", "wrong argument count"},
		{"realm two args", "tokengate {\n realm a b\n}", "wrong argument count"},
		{"scope none", "tokengate {\n require_scope\n}", "wrong argument count"},
		{"tokens_api on", "tokengate {\n tokens_api on\n}", `only value is "off"`},
		{"keep_authorization arg", "tokengate {\n keep_authorization yes\n}", "wrong argument count"},
	}
	wantCaddyfileErrors(t, tests, func(d *caddyfile.Dispenser) error { var h Handler; return h.UnmarshalCaddyfile(d) })
}

func TestAppCaddyfileErrors(t *testing.T) {
	tests := []caddyfileError{
		{"unknown", "tokengate {\n stor x\n}", `unrecognized subdirective "stor"`},
		{"duplicate", "tokengate {\n store a\n store b\n}", `duplicate subdirective "store"`},
		{"bad duration", "tokengate {\n cache_ttl soon\n}", `cache_ttl: invalid duration "soon"`},
		{"negative duration", "tokengate {\n cache_ttl -1s\n}", "invalid duration"},
		{"bad size", "tokengate {\n cache_size 0\n}", "cache_size"},
		{"zero ping", "tokengate {\n invalidation_ping 0\n}", `invalidation_ping: invalid duration "0"`},
		{"zero tokens", "tokengate {\n max_tokens_per_user 0\n}", "max_tokens_per_user"},
		{"zero legacy tokens", "tokengate {\n max_legacy_tokens_per_user 0\n}", "max_legacy_tokens_per_user must be"},
		{"bcrypt low", "tokengate {\n bcrypt_cost 3\n}", "bcrypt_cost"},
		{"login limits count", "tokengate {\n login_limits 5 10\n}", "login_limits takes"},
		{"login limits values", "tokengate {\n login_limits 0 10 1m\n}", "login_limits: invalid"},
		{"token failure limit count", "tokengate {\n token_failure_limit 5\n}", "token_failure_limit takes"},
		{"token failure limit values", "tokengate {\n token_failure_limit 0 1m\n}", "token_failure_limit: invalid"},
		{"breaker unknown", "tokengate {\n store_breaker {\n failure 3\n }\n}", `store_breaker: unrecognized subdirective "failure"`},
		{"breaker duplicate", "tokengate {\n store_breaker {\n failures 3\n failures 4\n }\n}", `store_breaker: duplicate "failures"`},
		{"breaker zero failures", "tokengate {\n store_breaker {\n failures 0\n }\n}", "failures"},
		{"breaker zero interval", "tokengate {\n store_breaker {\n probe_interval 0\n }\n}", "probe_interval: invalid duration"},
		{"breaker negative window", "tokengate {\n store_breaker {\n stale_window -1s\n }\n}", "stale_window: invalid duration"},
		{"breaker inline arg", "tokengate {\n store_breaker on\n}", "wrong argument count"},
		{"durability unknown", "tokengate {\n store_durability {\n replica 1\n }\n}", `store_durability: unrecognized subdirective "replica"`},
		{"durability duplicate", "tokengate {\n store_durability {\n replicas 1\n replicas 2\n }\n}", `store_durability: duplicate "replicas"`},
		{"durability negative", "tokengate {\n store_durability {\n replicas -1\n }\n}", "replicas"},
		{"durability no replicas", "tokengate {\n store_durability {\n timeout 1s\n }\n}", "replicas <n> is required"},
		{"durability zero timeout", "tokengate {\n store_durability {\n replicas 1\n timeout 0\n }\n}", "timeout: invalid duration"},
	}
	wantCaddyfileErrors(t, tests, unmarshalApp)
}

// caddyfileError is a Caddyfile that must be refused, and a piece of the
// error that says why.
type caddyfileError struct{ name, input, wantErr string }

// wantCaddyfileErrors checks that unmarshal refuses each case's input
// with an error containing its wantErr.
func wantCaddyfileErrors(t *testing.T, cases []caddyfileError, unmarshal func(*caddyfile.Dispenser) error) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := unmarshal(caddyfile.NewTestDispenser(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// unmarshalApp reads a global tokengate block into a fresh App.
func unmarshalApp(d *caddyfile.Dispenser) error {
	var a App
	return a.UnmarshalCaddyfile(d)
}

func TestTokenFailureLimitOff(t *testing.T) {
	var a App
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tokengate {\n token_failure_limit off\n}")); err != nil || a.TokenFailuresPerAddress != -1 {
		t.Fatalf("off: %v, %d", err, a.TokenFailuresPerAddress)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
}

// stale_window 0 is the default written out; a zero-value block is the
// defaults.
func TestStoreBreakerCaddyfile(t *testing.T) {
	var a App
	in := "tokengate {\n store_breaker {\n failures 5\n probe_interval 500ms\n retry_after 2s\n stale_window 0\n }\n}"
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	b := a.StoreBreaker
	if b == nil || b.Failures != 5 || b.ProbeInterval != caddy.Duration(500*time.Millisecond) ||
		b.RetryAfter != caddy.Duration(2*time.Second) || b.StaleWindow != 0 {
		t.Fatalf("store_breaker = %+v", b)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	o := (*StoreBreaker)(nil).options(nil)
	if o.Failures != 0 || o.ProbeInterval != 0 || o.RetryAfter != 0 {
		t.Errorf("no store_breaker: %+v, want the breaker's defaults (zero values)", o)
	}
	if err := (App{StoreBreaker: &StoreBreaker{StaleWindow: -1}}).Validate(); err == nil {
		t.Error("a negative stale_window in JSON was accepted")
	}
}

func TestStoreDurabilityCaddyfile(t *testing.T) {
	var a App
	in := "tokengate {\n store_durability {\n replicas 0\n }\n}"
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	d := a.StoreDurability.durability()
	if d == nil || d.Replicas != 0 || d.Timeout != 0 {
		t.Fatalf("replicas 0: %+v, want an explicit 0 (no wait), not the default", d)
	}
	if (*StoreDurability)(nil).durability() != nil {
		t.Error("no store_durability: want nil, the store's default")
	}
	two := 2
	if d := (&StoreDurability{Replicas: &two, Timeout: caddy.Duration(time.Second)}).durability(); d.Replicas != 2 || d.Timeout != time.Second {
		t.Errorf("durability = %+v", d)
	}
	if err := (&StoreDurability{Timeout: caddy.Duration(time.Second)}).validate(); err == nil {
		t.Error("a timeout without replicas in JSON was accepted")
	}
}

func TestValidateHeaderNames(t *testing.T) {
	if err := (Handler{Headers: identity.Headers{User: "Connection"}}).Validate(); err == nil {
		t.Error("a hop-by-hop identity header name was accepted")
	}
}

func TestValidate(t *testing.T) {
	if err := (Handler{TokensPath: "api/tokens"}).Validate(); err == nil {
		t.Error("relative tokens_path accepted")
	}
	if err := (Handler{TokensPath: "/api/tokens/"}).Validate(); err == nil {
		t.Error("tokens_path with trailing slash accepted")
	}
	if err := (Handler{RequireScopes: []string{"a b"}}).Validate(); err == nil {
		t.Error("invalid scope accepted")
	}
	if err := (App{BcryptCost: 40}).Validate(); err == nil {
		t.Error("bcrypt_cost 40 accepted")
	}
	if err := (App{LegacyTokenCapPolicy: "drop"}).Validate(); err == nil {
		t.Error("legacy_token_cap_policy drop accepted")
	}
	if err := (App{}).Validate(); err != nil {
		t.Errorf("zero config rejected: %v", err)
	}
}
