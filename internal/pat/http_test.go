package pat_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/users"
)

const prefix = "/api-user/tokens"

// newHandler serves the API the way the Caddy handler does: errors are
// written by apierr with a Basic challenge.
func newHandler(t testing.TB, e *env) http.Handler {
	t.Helper()
	auth, err := users.NewAuthenticator(e.st, bruteforce.New(e.st, bruteforce.Limits{}), testCost)
	if err != nil {
		t.Fatal(err)
	}
	api := &pat.API{Service: e.svc, Auth: auth, Prefix: prefix}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !api.Matches(r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		if err := api.Serve(w, r, "192.0.2.10"); err != nil {
			apierr.Write(w, apierr.For(err), apierr.Challenge{Scheme: "Basic", Realm: "tokengate"})
		}
	})
}

// req describes one request; by default it authenticates as alice and a
// non-empty body is sent as application/json.
type req struct {
	method, path, body string
	user, password     string
	noAuth             bool
	contentType        string
	edit               func(*http.Request)
}

func serve(h http.Handler, rq req) *httptest.ResponseRecorder {
	r := httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
	if !rq.noAuth {
		user, pw := rq.user, rq.password
		if user == "" {
			user, pw = "alice", goodPass
		}
		r.SetBasicAuth(user, pw)
	}
	switch {
	case rq.contentType != "":
		r.Header.Set("Content-Type", rq.contentType)
	case rq.body != "":
		r.Header.Set("Content-Type", "application/json")
	}
	if rq.edit != nil {
		rq.edit(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// wantError checks an error answer: status, a JSON body with "error" (and
// code, if given) and "error_description", and field if given.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code, field string) map[string]string {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body is not a JSON object of strings: %v: %s", err, w.Body)
	}
	if body["error"] == "" || body["error_description"] == "" {
		t.Fatalf("body lacks error or error_description: %s", w.Body)
	}
	if code != "" && body["error"] != code {
		t.Fatalf("error = %q, want %q", body["error"], code)
	}
	if field != "" && body["field"] != field {
		t.Fatalf("field = %q, want %q", body["field"], field)
	}
	return body
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	return v
}

func TestAPIAuthentication(t *testing.T) {
	tests := []struct {
		name      string
		rq        req
		status    int
		code      string
		challenge bool
	}{
		{"no credentials", req{noAuth: true}, http.StatusUnauthorized, "unauthorized", true},
		{"bearer instead of basic", req{noAuth: true, edit: func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 40))
		}}, http.StatusUnauthorized, "unauthorized", true},
		{"wrong password", req{user: "alice", password: "wrong password"}, http.StatusUnauthorized, "invalid_credentials", true},
		{"unknown user", req{user: "mallory", password: goodPass}, http.StatusUnauthorized, "invalid_credentials", true},
		{"no token_login", req{user: "carol", password: goodPass}, http.StatusForbidden, "forbidden", false},
		{"several authorization headers", req{edit: func(r *http.Request) {
			r.Header.Add("Authorization", "Basic Ym9iOmNvcnJlY3QgaG9yc2U=")
		}}, http.StatusBadRequest, "invalid_request", false},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				e := newEnv(t, 0)
				h := newHandler(t, e)
				rq := tt.rq
				rq.method, rq.path = method, prefix
				if method == http.MethodPost {
					rq.body = `{"label":"x"}`
				}
				w := serve(h, rq)
				wantError(t, w, tt.status, tt.code, "")
				got := w.Header().Get("WWW-Authenticate")
				if tt.challenge != strings.HasPrefix(got, `Basic realm="tokengate"`) {
					t.Fatalf("WWW-Authenticate = %q, challenge wanted: %v", got, tt.challenge)
				}
				if n := len(e.list(t, "alice")); n != 0 {
					t.Fatalf("refused request stored %d token(s)", n)
				}
			})
		}
	}
}

func TestAPIMethodNotAllowed(t *testing.T) {
	tests := []struct {
		method, path, allow string
	}{
		{http.MethodPut, prefix, "GET, POST"},
		{http.MethodDelete, prefix, "GET, POST"},
		{http.MethodPatch, prefix, "GET, POST"},
		{http.MethodGet, prefix + "/abc", "PATCH, DELETE"},
		{http.MethodPost, prefix + "/abc", "PATCH, DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			h := newHandler(t, newEnv(t, 0))
			// Refused before any authentication: no credentials needed.
			for _, noAuth := range []bool{true, false} {
				w := serve(h, req{method: tt.method, path: tt.path, noAuth: noAuth})
				wantError(t, w, http.StatusMethodNotAllowed, "method_not_allowed", "")
				if got := w.Header().Get("Allow"); got != tt.allow {
					t.Fatalf("Allow = %q, want %q", got, tt.allow)
				}
			}
		})
	}
}

func TestAPIUnknownPaths(t *testing.T) {
	h := newHandler(t, newEnv(t, 0))
	for _, path := range []string{prefix + "/", prefix + "/a/b"} {
		t.Run(path, func(t *testing.T) {
			wantError(t, serve(h, req{method: http.MethodDelete, path: path}), http.StatusNotFound, "not_found", "")
		})
	}
}

func TestAPIBadBodies(t *testing.T) {
	tests := []struct {
		name, method, body, contentType string
		status                          int
		field                           string
	}{
		{"malformed json", http.MethodPost, `{"label":`, "", http.StatusBadRequest, ""},
		{"syntax error", http.MethodPost, `{label: "x"}`, "", http.StatusBadRequest, ""},
		{"empty body", http.MethodPost, "", "application/json", http.StatusBadRequest, ""},
		{"not an object", http.MethodPost, `["x"]`, "", http.StatusBadRequest, ""},
		{"trailing data", http.MethodPost, `{"label":"x"} {}`, "", http.StatusBadRequest, ""},
		{"unknown field", http.MethodPost, `{"label":"x","owner":"bob"}`, "", http.StatusBadRequest, "owner"},
		{"wrong type", http.MethodPost, `{"label":42}`, "", http.StatusBadRequest, "label"},
		{"text/plain", http.MethodPost, `{"label":"x"}`, "text/plain", http.StatusUnsupportedMediaType, ""},
		{"form", http.MethodPost, `label=x`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType, ""},
		{"json with charset is fine but label is bad", http.MethodPost, `{"label":""}`, "application/json; charset=utf-8", http.StatusBadRequest, "label"},
		{"over 64KiB", http.MethodPost, `{"label":"` + strings.Repeat("a", 64<<10) + `"}`, "", http.StatusRequestEntityTooLarge, ""},
		{"bad expires_in", http.MethodPost, `{"label":"x","expires_in":0}`, "", http.StatusBadRequest, "expires_in"},
		{"bad allowed_ips", http.MethodPost, `{"label":"x","allowed_ips":["10.0.0.0/40"]}`, "", http.StatusBadRequest, "allowed_ips"},
		{"bad scopes", http.MethodPost, `{"label":"x","scopes":["a b"]}`, "", http.StatusBadRequest, "scopes"},
		{"patch unknown field", http.MethodPatch, `{"scopes":["admin"]}`, "", http.StatusBadRequest, "scopes"},
		{"patch text/plain", http.MethodPatch, `{"enabled":false}`, "text/plain", http.StatusUnsupportedMediaType, ""},
		{"patch over 64KiB", http.MethodPatch, `{"label":"` + strings.Repeat("a", 64<<10) + `"}`, "", http.StatusRequestEntityTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			h := newHandler(t, e)
			path := prefix
			if tt.method == http.MethodPatch {
				path += "/" + e.create(t, "alice", pat.CreateRequest{Label: "existing"}).ID
			}
			before := len(e.list(t, "alice"))
			w := serve(h, req{method: tt.method, path: path, body: tt.body, contentType: tt.contentType})
			wantError(t, w, tt.status, "", tt.field)
			if strings.Contains(w.Body.String(), "aaaa") {
				t.Fatal("error echoes the request body")
			}
			l := e.list(t, "alice")
			if len(l) != before || (before == 1 && (l[0].Label != "existing" || !l[0].Enabled)) {
				t.Fatalf("refused request changed the tokens: %+v", l)
			}
		})
	}
}

func TestAPILifecycle(t *testing.T) {
	e := newEnv(t, 0)
	h := newHandler(t, e)

	// Create.
	w := serve(h, req{method: http.MethodPost, path: prefix, body: `{"label":"Deploy","scopes":["write","read"],"expires_in":3600,"allowed_ips":["10.0.0.0/8"]}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	created := decode[pat.Created](t, w)
	if !strings.HasPrefix(created.Token, token.PATPrefix) || token.Classify(created.Token) != token.PAT {
		t.Fatalf("created token = %q", created.Token)
	}
	if got := w.Header().Get("Location"); got != prefix+"/"+created.ID {
		t.Fatalf("Location = %q, want %q", got, prefix+"/"+created.ID)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Fatalf("Cache-Control = %q, want no-store", got)
	}
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Fatalf("Content-Type = %q", got)
	}
	if created.Label != "Deploy" || created.ExpiresAt == nil || strings.Join(created.Scopes, " ") != "read write" {
		t.Fatalf("created = %+v", created.View)
	}

	// Duplicate label (case-insensitively) is a 409 naming the field.
	w = serve(h, req{method: http.MethodPost, path: prefix, body: `{"label":"deploy"}`})
	wantError(t, w, http.StatusConflict, "conflict", "label")

	// List never shows the secret.
	w = serve(h, req{method: http.MethodGet, path: prefix})
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("list: %d %v", w.Code, w.Header())
	}
	if strings.Contains(w.Body.String(), created.Token) || strings.Contains(w.Body.String(), `"token"`) {
		t.Fatalf("list shows the secret: %s", w.Body)
	}
	list := decode[struct{ Tokens []pat.View }](t, w)
	if len(list.Tokens) != 1 || list.Tokens[0].ID != created.ID {
		t.Fatalf("list = %+v", list)
	}

	// Bob sees none of alice's tokens and cannot touch them.
	bob := req{user: "bob", password: goodPass}
	bob.method, bob.path = http.MethodGet, prefix
	if w = serve(h, bob); w.Code != http.StatusOK || strings.Contains(w.Body.String(), created.ID) {
		t.Fatalf("bob's list: %d %s", w.Code, w.Body)
	}
	bob.method, bob.path, bob.body = http.MethodPatch, prefix+"/"+created.ID, `{"enabled":false}`
	wantError(t, serve(h, bob), http.StatusNotFound, "not_found", "")
	bob.method, bob.body = http.MethodDelete, ""
	wantError(t, serve(h, bob), http.StatusNotFound, "not_found", "")

	// Rename and switch off.
	w = serve(h, req{method: http.MethodPatch, path: prefix + "/" + created.ID, body: `{"label":"release","enabled":false}`})
	if w.Code != http.StatusOK {
		t.Fatalf("patch: %d %s", w.Code, w.Body)
	}
	if v := decode[pat.View](t, w); v.Label != "release" || v.Enabled {
		t.Fatalf("patched = %+v", v)
	}

	// Revoke, then it is gone.
	w = serve(h, req{method: http.MethodDelete, path: prefix + "/" + created.ID})
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	wantError(t, serve(h, req{method: http.MethodDelete, path: prefix + "/" + created.ID}), http.StatusNotFound, "not_found", "")
	wantError(t, serve(h, req{method: http.MethodPatch, path: prefix + "/" + created.ID, body: `{"enabled":true}`}), http.StatusNotFound, "not_found", "")
	w = serve(h, req{method: http.MethodGet, path: prefix})
	if got := decode[struct{ Tokens []pat.View }](t, w); got.Tokens == nil || len(got.Tokens) != 0 {
		t.Fatalf("list after delete = %s", w.Body)
	}
}

func TestAPITokenLimit(t *testing.T) {
	e := newEnv(t, 2)
	h := newHandler(t, e)
	for i, label := range []string{"one", "two"} {
		if w := serve(h, req{method: http.MethodPost, path: prefix, body: `{"label":"` + label + `"}`}); w.Code != http.StatusCreated {
			t.Fatalf("create %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := serve(h, req{method: http.MethodPost, path: prefix, body: `{"label":"three"}`})
	wantError(t, w, http.StatusConflict, "token_limit", "")
}
