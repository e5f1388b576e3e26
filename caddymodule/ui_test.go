package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUICaddyfile(t *testing.T) {
	var h Handler
	in := "tokengate {\n ui /portal {\n  scopes read write\n  session_idle 15m\n  session_lifetime 8h\n }\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	want := UIConfig{Prefix: "/portal", Scopes: []string{"read", "write"},
		SessionIdle: caddy.Duration(15 * time.Minute), SessionLifetime: caddy.Duration(8 * time.Hour)}
	if h.UI == nil || h.UI.Prefix != want.Prefix || strings.Join(h.UI.Scopes, " ") != "read write" ||
		h.UI.SessionIdle != want.SessionIdle || h.UI.SessionLifetime != want.SessionLifetime {
		t.Fatalf("ui = %+v", h.UI)
	}
	var bare Handler
	if err := bare.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tokengate {\n ui\n}")); err != nil || bare.UI == nil || bare.UI.prefix() != DefaultUIPrefix {
		t.Fatalf("bare ui: %v %+v", err, bare.UI)
	}
}

func TestUICaddyfileErrors(t *testing.T) {
	for name, c := range map[string]struct{ input, wantErr string }{
		"two prefixes":    {"tokengate {\n ui /a /b\n}", "wrong argument count"},
		"root prefix":     {"tokengate {\n ui /\n}", "must start with /"},
		"relative prefix": {"tokengate {\n ui account\n}", "must start with /"},
		"trailing slash":  {"tokengate {\n ui /account/\n}", "must start with /"},
		"unknown":         {"tokengate {\n ui {\n  theme dark\n }\n}", `ui: unrecognized subdirective "theme"`},
		"duplicate sub":   {"tokengate {\n ui {\n  scopes a\n  scopes b\n }\n}", `ui: duplicate "scopes"`},
		"bad scope":       {"tokengate {\n ui {\n  scopes \"a b\"\n }\n}", "ui: scopes"},
		"bad duration":    {"tokengate {\n ui {\n  session_idle soon\n }\n}", "invalid duration"},
		"idle past life":  {"tokengate {\n ui {\n  session_idle 2h\n  session_lifetime 1h\n }\n}", "session_idle must not be longer"},
		"twice":           {"tokengate {\n ui /a\n ui /b\n}", "duplicate"},
		"no scopes":       {"tokengate {\n ui {\n  scopes\n }\n}", "wrong argument count"},
	} {
		t.Run(name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

// A JSON config gets the same checks as the Caddyfile, in Validate.
func TestUIValidate(t *testing.T) {
	for name, h := range map[string]Handler{
		"clash with the token API": {UI: &UIConfig{Prefix: "/api-user"}},
		"clash with a route below": {UI: &UIConfig{Prefix: "/rest"}},
		"clash with a moved route": {TokensPath: "/account/tokens-api", UI: &UIConfig{}},
		"bad prefix":               {UI: &UIConfig{Prefix: "/a b"}},
		"negative idle":            {UI: &UIConfig{SessionIdle: -1}},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := (Handler{UI: &UIConfig{Prefix: "/account"}}).Validate(); err != nil {
		t.Errorf("a good ui: %v", err)
	}
}
