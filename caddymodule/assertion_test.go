package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/tokengate/internal/jwt"
)

func TestIdentityAssertionValidate(t *testing.T) {
	secret := strings.Repeat("s", 32)
	tests := []struct {
		name    string
		ia      IdentityAssertion
		wantErr string
	}{
		{"ok", IdentityAssertion{Audience: "up"}, ""},
		{"ok HS256", IdentityAssertion{Audience: "up", Algorithm: "HS256", HS256Secret: "{env.S}"}, ""},
		{"no audience", IdentityAssertion{}, "audience is required"},
		{"HS256 without secret", IdentityAssertion{Audience: "up", Algorithm: "HS256"}, "HS256 needs the site's own hs256_secret"},
		{"secret without HS256", IdentityAssertion{Audience: "up", HS256Secret: secret}, "only for algorithm HS256"},
		{"unknown algorithm", IdentityAssertion{Audience: "up", Algorithm: "none"}, "not one of"},
		{"lifetime zero is the default", IdentityAssertion{Audience: "up", Lifetime: 0}, ""},
		{"lifetime negative", IdentityAssertion{Audience: "up", Lifetime: caddy.Duration(-time.Second)}, "lifetime must be between"},
		{"lifetime too short", IdentityAssertion{Audience: "up", Lifetime: caddy.Duration(time.Second)}, "lifetime must be between"},
		{"lifetime too long", IdentityAssertion{Audience: "up", Lifetime: caddy.Duration(2 * time.Hour)}, "lifetime must be between"},
		{"bad header", IdentityAssertion{Audience: "up", Header: "X Bad"}, "not a valid header field name"},
		{"Authorization", IdentityAssertion{Audience: "up", Header: "authorization"}, "gives a meaning"},
		{"hop-by-hop header", IdentityAssertion{Audience: "up", Header: "Connection"}, "gives a meaning"},
		{"bad path", IdentityAssertion{Audience: "up", JWKSPath: "keys/"}, "jwks_path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Handler{IdentityAssertion: &tt.ia}.Validate()
			if tt.name == "ok" {
				clash := Handler{IdentityAssertion: &IdentityAssertion{Audience: "up", JWKSPath: DefaultJWKSPath}}
				if err := clash.Validate(); err == nil || !strings.Contains(err.Error(), "already one of") {
					t.Errorf("jwks_path on the OAuth JWKS route: %v", err)
				}
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestIdentityAssertionCaddyfileErrors(t *testing.T) {
	tests := []struct{ name, input, wantErr string }{
		{"unknown", "tokengate {\n identity_assertion {\n audence x\n }\n}", `identity_assertion: unrecognized subdirective "audence"`},
		{"duplicate", "tokengate {\n identity_assertion {\n audience a\n audience b\n }\n}", `identity_assertion: duplicate "audience"`},
		{"twice", "tokengate {\n identity_assertion {\n audience a\n }\n identity_assertion {\n audience a\n }\n}", `duplicate subdirective "identity_assertion"`},
		{"plain_headers", "tokengate {\n identity_assertion {\n audience a\n plain_headers maybe\n }\n}", "on or off"},
		{"no audience", "tokengate {\n identity_assertion\n}", "audience is required"},
		{"lifetime", "tokengate {\n identity_assertion {\n audience a\n lifetime 2h\n }\n}", "lifetime must be between"},
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

// assertionOf runs one request with a valid token and returns what the
// next handler got.
func assertionOf(t *testing.T, h *Handler, secret string, extra map[string]string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	for k, v := range extra {
		r.Header[k] = []string{v}
	}
	w, seen, _ := serve(t, h, r)
	if seen == nil {
		t.Fatalf("refused: %d %s", w.Code, w.Body)
	}
	return seen
}

func TestIdentityAssertionHS256AndStripping(t *testing.T) {
	a := testApp(t)
	const secret = "0123456789abcdef0123456789abcdef-site"
	t.Setenv("TG_ASSERTION_SECRET", secret)
	h := testHandler(t, a, Handler{IdentityAssertion: &IdentityAssertion{
		Audience: "up", Algorithm: "HS256", HS256Secret: "{env.TG_ASSERTION_SECRET}", Header: "X-Gw-Assertion",
		PlainHeaders: new(false),
	}})
	tok, _ := newToken(t, a, "read")
	seen := assertionOf(t, h, tok, map[string]string{"X-Gw-Assertion": "forged", "X_Auth_Assertion": "forged"})
	if got := seen.Header.Values("X-Gw-Assertion"); len(got) != 1 || got[0] == "forged" {
		t.Fatalf("assertion header %q", got)
	}
	for k := range seen.Header {
		if n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); n == "x-auth-assertion" || n == "x-auth-user" {
			t.Errorf("%s reached the upstream (plain_headers off, default assertion name guarded)", k)
		}
	}
	p, err := jwt.Parse(seen.Header.Get("X-Gw-Assertion"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwt.FromPublic("hs256", jwt.HS256, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(k); err != nil || p.Header.Alg != "HS256" {
		t.Fatalf("HS256 assertion: %v %v", err, p.Header)
	}
	// No key set is published for a site's own HS256 secret.
	r := httptest.NewRequest(http.MethodGet, DefaultAssertionJWKSPath, nil)
	if w, seen, _ := serve(t, h, r); seen == nil && w.Code == http.StatusOK {
		t.Errorf("an HS256 site published a key set: %s", w.Body)
	}

	// A site without the option removes a client's assertion too.
	off := testHandler(t, a, Handler{})
	seen = assertionOf(t, off, tok, map[string]string{"X-Auth-Assertion": "forged", "x_auth_assertion": "forged"})
	for k := range seen.Header {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "x-auth-assertion") {
			t.Errorf("%s reached the upstream of a site without identity_assertion", k)
		}
	}
}

func TestIdentityAssertionHS256SecretUnset(t *testing.T) {
	a := testApp(t)
	h := Handler{IdentityAssertion: &IdentityAssertion{Audience: "up", Algorithm: "HS256", HS256Secret: "{env.TG_UNSET_SECRET_X}"}}
	h.logger = testHandler(t, a, Handler{}).logger
	if err := h.setup(a); err == nil || !strings.Contains(err.Error(), "resolves to nothing") {
		t.Fatalf("err = %v", err)
	}
}
