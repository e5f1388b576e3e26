package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store/backend"
	"github.com/tokengate/tokengate/internal/users"
)

// testApp wires an App on a real embedded store, as Provision does.
func testApp(t testing.TB) *App {
	t.Helper()
	loc, err := backend.Parse(filepath.Join(t.TempDir(), "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := newSharedState(loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Destruct() })
	if err := st.start(time.Hour, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	a := &App{BcryptCost: 4, MaxTokensPerUser: 50, state: st, logger: zap.NewNop()}
	a.setDefaults()
	if err := a.wire(); err != nil {
		t.Fatal(err)
	}
	return a
}

func testHandler(t testing.TB, a *App, h Handler) *Handler {
	t.Helper()
	h.logger = zap.NewNop()
	if err := h.setup(a); err != nil {
		t.Fatal(err)
	}
	return &h
}

// newToken creates alice (with token_login) and a PAT for her.
func newToken(t testing.TB, a *App, scopes ...string) (secret, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.users.Create(ctx, users.NewUser{Name: "alice", Password: "password1", TokenLogin: true}); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatal(err)
	}
	c, err := a.pats.Create(ctx, "alice", pat.CreateRequest{Label: "t" + time.Now().Format("150405.000000"), Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return c.Token, c.ID
}

// serve runs one request through h with Caddy's request preparation (so
// the replacer and the client IP variable are there) and a next handler
// that records what it got.
func serve(t *testing.T, h *Handler, r *http.Request) (*httptest.ResponseRecorder, *http.Request, *caddy.Replacer) {
	t.Helper()
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, nil, &caddyhttp.Server{})
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, "192.0.2.10")
	w := httptest.NewRecorder()
	var seen *http.Request
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r
		w.WriteHeader(http.StatusOK)
		return nil
	})
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return w, seen, repl
}

func TestHandlerStripsSmuggledIdentityHeaders(t *testing.T) {
	a := testApp(t)
	h := testHandler(t, a, Handler{})
	secret, id := newToken(t, a, "read")
	for _, withToken := range []bool{true, false} {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		for _, k := range []string{"X-Auth-User", "X_Auth_User", "x_auth_user", "X-AUTH-TOKEN-ID", "X_Auth_Scopes", "x-auth-token_type", "x_auth_issuer"} {
			r.Header[k] = []string{"admin"}
		}
		if withToken {
			r.Header.Set("Authorization", "Bearer "+secret)
		}
		w, seen, repl := serve(t, h, r)
		if !withToken {
			if seen != nil || w.Code != http.StatusUnauthorized {
				t.Fatalf("without token: code %d, next called %v", w.Code, seen != nil)
			}
			for k := range r.Header {
				if strings.Contains(strings.ToLower(k), "auth_") || strings.HasPrefix(strings.ToLower(k), "x-auth") {
					t.Errorf("header %q survived on a refused request", k)
				}
			}
			continue
		}
		if seen == nil {
			t.Fatalf("valid token refused: %d %s", w.Code, w.Body)
		}
		want := map[string]string{"X-Auth-User": "alice", "X-Auth-Token-Type": "pat", "X-Auth-Token-Id": id, "X-Auth-Scopes": "read", "X-Auth-Issuer": "tokengate"}
		count := 0
		for k, v := range seen.Header {
			if strings.Contains(strings.ToLower(strings.ReplaceAll(k, "_", "-")), "x-auth-") {
				count++
				if len(v) != 1 || want[k] != v[0] {
					t.Errorf("next handler saw %s: %q", k, v)
				}
			}
		}
		if count != len(want) {
			t.Errorf("next handler saw %d identity headers, want %d: %v", count, len(want), seen.Header)
		}
		if seen.Header.Get("Authorization") != "" {
			t.Error("Authorization reached the next handler")
		}
		if got, _ := repl.GetString("http.auth.user.id"); got != "alice" {
			t.Errorf("{http.auth.user.id} = %q", got)
		}
		if got, _ := repl.GetString("http.auth.user.token_id"); got != id {
			t.Errorf("{http.auth.user.token_id} = %q", got)
		}
	}
}

func TestHandlerKeepAuthorizationAndCustomHeaders(t *testing.T) {
	a := testApp(t)
	h := testHandler(t, a, Handler{KeepAuthorization: true, Headers: identityHeaders("X-Remote-User")})
	secret, _ := newToken(t, a)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	r.Header["X_remote_user"] = []string{"root"}
	_, seen, _ := serve(t, h, r)
	if seen == nil {
		t.Fatal("refused")
	}
	if seen.Header.Get("Authorization") != "Bearer "+secret {
		t.Error("keep_authorization did not keep the header")
	}
	if seen.Header.Get("X-Remote-User") != "alice" || seen.Header["X_remote_user"] != nil {
		t.Errorf("custom user header: %v", seen.Header)
	}
}

func TestHandlerTokensAPIRouting(t *testing.T) {
	a := testApp(t)
	newToken(t, a)
	on := testHandler(t, a, Handler{TokensPath: "/me/tokens"})
	off := testHandler(t, a, Handler{DisableTokensAPI: true})

	r := httptest.NewRequest(http.MethodGet, "/me/tokens", nil)
	r.SetBasicAuth("alice", "password1")
	w, seen, _ := serve(t, on, r)
	if w.Code != http.StatusOK || seen != nil {
		t.Fatalf("token API: %d %s (next called: %v)", w.Code, w.Body, seen != nil)
	}
	var body struct {
		Tokens []map[string]any `json:"tokens"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Tokens) != 1 {
		t.Fatalf("list: %s", w.Body)
	}

	r = httptest.NewRequest(http.MethodGet, "/api-user/tokens", nil)
	r.SetBasicAuth("alice", "password1")
	w, seen, _ = serve(t, off, r)
	if w.Code != http.StatusUnauthorized || seen != nil {
		t.Fatalf("with tokens_api off the route must need a bearer token: %d", w.Code)
	}
	if ch := w.Header().Get("WWW-Authenticate"); ch != `Bearer realm="tokengate"` {
		t.Errorf("challenge %q", ch)
	}
}

func identityHeaders(user string) identity.Headers { return identity.Headers{User: user} }

// Credentials meant for /rest/token, and every spelling of the legacy
// token header, never reach the next handler.
func TestHandlerConsumesLegacyCredentials(t *testing.T) {
	a := testApp(t)
	h := testHandler(t, a, Handler{LegacyTokenHeader: "X-Auth-Token"})
	secret, _ := newToken(t, a)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	r.Header["Auth-User"] = []string{"alice"}
	r.Header["auth_pwd"] = []string{"password1"}
	r.Header["Auth-User-Type"] = []string{"local"}
	_, seen, _ := serve(t, h, r)
	if seen == nil {
		t.Fatal("refused")
	}
	for k := range seen.Header {
		if l := strings.ToLower(strings.ReplaceAll(k, "_", "-")); strings.HasPrefix(l, "auth-") {
			t.Errorf("%s reached the next handler", k)
		}
	}

	// A bearer token and the legacy header in another spelling: two
	// credentials.
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	r.Header["X_Auth_Token"] = []string{"e444c69894d2087696e0a6c6914788f67ebcf6ee"}
	w, seen, _ := serve(t, h, r)
	if seen != nil || w.Code != http.StatusBadRequest {
		t.Fatalf("two credentials: %d (next called: %v)", w.Code, seen != nil)
	}
}

// Identity headers sent as trailers are stripped too.
func TestHandlerStripsTrailers(t *testing.T) {
	a := testApp(t)
	h := testHandler(t, a, Handler{})
	secret, _ := newToken(t, a)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	r.Trailer = http.Header{"X-Auth-User": {"admin"}, "X_auth_user": {"admin"}}
	_, seen, _ := serve(t, h, r)
	if seen == nil {
		t.Fatal("a valid token was refused")
	}
	if len(seen.Trailer) != 0 {
		t.Fatalf("trailers after the handler: %v", seen.Trailer)
	}
}
