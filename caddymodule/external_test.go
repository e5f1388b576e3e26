package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/tokengate/internal/jwt"
)

const extSecret = "an-external-issuers-shared-secret-0123456789"

func TestExternalIssuerValidate(t *testing.T) {
	base := ExternalIssuer{Issuer: "https://idp.example.com", Audience: "api"}
	with := func(change func(x *ExternalIssuer)) ExternalIssuer { x := base; change(&x); return x }
	tests := []struct {
		name string
		x    ExternalIssuer
		want string // "": valid
	}{
		{"https", with(func(x *ExternalIssuer) { x.JWKSURL = "https://idp.example.com/jwks" }), ""},
		{"http", with(func(x *ExternalIssuer) { x.JWKSURL = "http://idp.example.com/jwks" }), "https://"},
		{"http with the loopback option", with(func(x *ExternalIssuer) {
			x.JWKSURL, x.AllowHTTPLoopback = "http://idp.example.com/jwks", true
		}), "only to a loopback host"},
		{"loopback http", with(func(x *ExternalIssuer) { x.JWKSURL = "http://127.0.0.1:9000/jwks" }), "allow_http_loopback"},
		{"loopback http with the option", with(func(x *ExternalIssuer) {
			x.JWKSURL, x.AllowHTTPLoopback = "http://127.0.0.1:9000/jwks", true
		}), ""},
		{"placeholder (checked at provisioning)", with(func(x *ExternalIssuer) { x.JWKSURL = "{env.JWKS_URL}" }), ""},
		{"accept_typ", with(func(x *ExternalIssuer) { x.HS256Secret, x.AcceptTyp = "s", []string{"at+jwt", "JWT", "none"} }), ""},
		{"bad accept_typ", with(func(x *ExternalIssuer) { x.HS256Secret, x.AcceptTyp = "s", []string{"at jwt"} }), "accept_typ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Handler{ExternalIssuers: []ExternalIssuer{tt.x}}.Validate()
			if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

// The URL is checked again once its placeholders are resolved.
func TestExternalIssuerProvisionChecksResolvedURL(t *testing.T) {
	a := testApp(t)
	tests := []struct {
		url      string
		loopback bool
		want     string // "": provisioned
	}{
		{"http://idp.example.com/jwks", false, "https://"},
		{"http://idp.example.com/jwks", true, "only to a loopback host"},
		{"http://127.0.0.1:9000/jwks", false, "allow_http_loopback"},
		{"http://127.0.0.1:9000/jwks", true, ""},
		{"https://idp.example.com/jwks", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Setenv("TG_TEST_JWKS_URL", tt.url)
			h := Handler{logger: a.logger, ExternalIssuers: []ExternalIssuer{{
				Issuer: "https://idp.example.com", Audience: "api", JWKSURL: "{env.TG_TEST_JWKS_URL}", AllowHTTPLoopback: tt.loopback,
			}}}
			if err := h.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			err := h.setup(a)
			if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("setup = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestExternalIssuerMustNotBeOurs(t *testing.T) {
	a := testApp(t)
	h := Handler{logger: a.logger, ExternalIssuers: []ExternalIssuer{{Issuer: a.Issuer, Audience: "api", HS256Secret: extSecret}}}
	if err := h.setup(a); err == nil || !strings.Contains(err.Error(), "own issuer") {
		t.Fatalf("setup = %v, want a refusal of our own issuer", err)
	}
}

// TestIssuerHeaderTellsUsersApart: an external "alice" and the gateway's
// own "alice" reach the upstream with the same X-Auth-User but different
// X-Auth-Issuer (and {http.auth.user.issuer}).
func TestIssuerHeaderTellsUsersApart(t *testing.T) {
	a := testApp(t)
	const extIss = "https://idp.example.com"
	h := testHandler(t, a, Handler{ExternalIssuers: []ExternalIssuer{{Issuer: extIss, Audience: "api", HS256Secret: extSecret}}})
	key, err := jwt.FromMaterial("", jwt.HS256, []byte(extSecret))
	if err != nil {
		t.Fatal(err)
	}
	external, err := jwt.Sign(key, "at+jwt", map[string]any{"iss": extIss, "aud": "api", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	own, _ := newToken(t, a)
	for tok, want := range map[string][2]string{own: {"pat", a.Issuer}, external: {"jwt", extIss}} {
		for range 2 { // the second time from the decision cache
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header["X_Auth_Issuer"] = []string{"forged"}
			_, seen, repl := serve(t, h, r)
			if seen == nil {
				t.Fatalf("%s token refused", want[0])
			}
			if seen.Header.Get("X-Auth-User") != "alice" || seen.Header.Get("X-Auth-Token-Type") != want[0] ||
				len(seen.Header["X-Auth-Issuer"]) != 1 || seen.Header.Get("X-Auth-Issuer") != want[1] || seen.Header["X_Auth_Issuer"] != nil {
				t.Fatalf("%s token: upstream saw %v", want[0], seen.Header)
			}
			if v, _ := repl.GetString("http.auth.user.issuer"); v != want[1] {
				t.Fatalf("%s token: {http.auth.user.issuer} = %q", want[0], v)
			}
		}
	}
}

func TestExternalJWTCaddyfileErrors(t *testing.T) {
	block := func(lines string) string {
		return "tokengate {\n external_jwt {\n issuer i\n audience a\n " + lines + "\n }\n}"
	}
	tests := []struct{ name, input, wantErr string }{
		{"allow_http_loopback with an argument", block("jwks_url http://127.0.0.1/j\n allow_http_loopback yes"), "wrong argument count"},
		{"accept_typ without a value", block("hs256_secret s\n accept_typ"), "wrong argument count"},
		{"http jwks_url", block("jwks_url http://idp.example.com/jwks"), "https://"},
		{"loopback http jwks_url without the option", block("jwks_url http://localhost:8080/jwks"), "allow_http_loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
