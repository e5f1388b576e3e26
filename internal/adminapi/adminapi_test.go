package adminapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/adminapi"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/users"
)

const goodPass = "correct horse"

type env struct {
	st   *boltstore.Store
	api  *adminapi.API
	pats *pat.Service
	// secrets are strings no response may contain (PAT secrets issued).
	secrets []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := func() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }
	e := &env{st: st, pats: pat.NewService(st, lastuse.New(st), 0, now)}
	e.api = &adminapi.API{Users: users.NewService(st, 4, now), Tokens: e.pats, Store: st}
	return e
}

// do sends one admin request. Errors returned by ServeHTTP are answered
// with apierr, as a JSON problem. Every response is checked for secrets.
func (e *env) do(t *testing.T, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	if err := e.api.ServeHTTP(w, r); err != nil {
		apierr.Write(w, apierr.For(err), apierr.Challenge{})
	}
	resp := w.Body.String()
	for _, bad := range append([]string{"password_hash", "$2", goodPass}, e.secrets...) {
		if strings.Contains(resp, bad) {
			t.Fatalf("%s %s: response contains %q: %s", method, path, bad, resp)
		}
	}
	return w
}

// want checks the status and decodes the JSON body into a map (nil for
// an empty body).
func want(t *testing.T, w *httptest.ResponseRecorder, status int) map[string]any {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if w.Body.Len() == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, w.Body)
	}
	return m
}

// wantField checks a 400 (or 409) that names field.
func wantField(t *testing.T, w *httptest.ResponseRecorder, status int, field string) {
	t.Helper()
	m := want(t, w, status)
	if m["field"] != field || m["error"] == nil || m["error_description"] == nil {
		t.Fatalf("problem = %v, want field %q", m, field)
	}
}

func (e *env) createUser(t *testing.T, name string, tokenLogin bool) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "password": goodPass, "token_login": tokenLogin})
	want(t, e.do(t, http.MethodPost, "/tokengate/users", string(body)), http.StatusCreated)
}

func (e *env) createToken(t *testing.T, owner, label string) pat.Created {
	t.Helper()
	c, err := e.pats.Create(context.Background(), owner, pat.CreateRequest{Label: label})
	if err != nil {
		t.Fatal(err)
	}
	e.secrets = append(e.secrets, c.Token)
	return c
}

func TestUsersLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	m := want(t, e.do(t, http.MethodPost, "/tokengate/users", `{"name":"Alice","password":"`+goodPass+`","roles":["admin"]}`), http.StatusCreated)
	if m["name"] != "alice" || m["token_login"] != false || m["disabled"] != false {
		t.Fatalf("created = %v", m)
	}
	if _, ok := m["password"]; ok {
		t.Fatalf("created view has a password: %v", m)
	}
	e.createUser(t, "bob", true)

	m = want(t, e.do(t, http.MethodGet, "/tokengate/users", ""), http.StatusOK)
	list, _ := m["users"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["name"] != "alice" || list[1].(map[string]any)["name"] != "bob" {
		t.Fatalf("list = %v", m)
	}

	for _, path := range []string{"/tokengate/users/alice", "/tokengate/users/ALICE", "/tokengate/users/alice/"} {
		m = want(t, e.do(t, http.MethodGet, path, ""), http.StatusOK)
		if m["name"] != "alice" || m["roles"].([]any)[0] != "admin" {
			t.Fatalf("GET %s = %v", path, m)
		}
	}

	before, _ := e.st.GetUser(ctx, "alice")
	m = want(t, e.do(t, http.MethodPatch, "/tokengate/users/alice", `{"token_login":true}`), http.StatusOK)
	if m["token_login"] != true || m["roles"].([]any)[0] != "admin" {
		t.Fatalf("patched = %v", m)
	}
	after, _ := e.st.GetUser(ctx, "alice")
	if after.PasswordHash != before.PasswordHash || !after.TokenLogin {
		t.Fatalf("token_login patch: stored %+v", after)
	}

	want(t, e.do(t, http.MethodPatch, "/tokengate/users/alice", `{"password":"a new password","disabled":true}`), http.StatusOK)
	after, _ = e.st.GetUser(ctx, "alice")
	if bcrypt.CompareHashAndPassword([]byte(after.PasswordHash), []byte("a new password")) != nil || !after.Disabled {
		t.Fatalf("password patch not applied: %+v", after)
	}

	e.createToken(t, "alice", "deploy")
	if w := e.do(t, http.MethodDelete, "/tokengate/users/alice", ""); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	want(t, e.do(t, http.MethodGet, "/tokengate/users/alice", ""), http.StatusNotFound)
	want(t, e.do(t, http.MethodGet, "/tokengate/users/alice/tokens", ""), http.StatusNotFound)
	want(t, e.do(t, http.MethodDelete, "/tokengate/users/alice", ""), http.StatusNotFound)
	m = want(t, e.do(t, http.MethodGet, "/tokengate/users", ""), http.StatusOK)
	if list, _ := m["users"].([]any); len(list) != 1 {
		t.Fatalf("list after delete = %v", m)
	}
}

func TestUserTokens(t *testing.T) {
	e := newEnv(t)
	e.createUser(t, "alice", true)
	e.createUser(t, "bob", true)
	deploy := e.createToken(t, "alice", "deploy")
	ci := e.createToken(t, "alice", "ci")
	bobs := e.createToken(t, "bob", "bobs")

	m := want(t, e.do(t, http.MethodGet, "/tokengate/users/Alice/tokens", ""), http.StatusOK)
	tokens, _ := m["tokens"].([]any)
	if len(tokens) != 2 {
		t.Fatalf("tokens = %v", m)
	}
	for _, tok := range tokens {
		if _, ok := tok.(map[string]any)["token"]; ok {
			t.Fatalf("listed token carries its secret: %v", tok)
		}
	}

	// Another user's token id is not found under alice.
	want(t, e.do(t, http.MethodDelete, "/tokengate/users/alice/tokens/"+bobs.ID, ""), http.StatusNotFound)
	want(t, e.do(t, http.MethodDelete, "/tokengate/users/nobody/tokens/"+deploy.ID, ""), http.StatusNotFound)

	m = want(t, e.do(t, http.MethodPatch, "/tokengate/users/alice/tokens/"+ci.ID, `{"enabled":false}`), http.StatusOK)
	if m["enabled"] != false || m["id"] != ci.ID {
		t.Fatalf("patched token = %v", m)
	}

	if w := e.do(t, http.MethodDelete, "/tokengate/users/alice/tokens/"+deploy.ID, ""); w.Code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	want(t, e.do(t, http.MethodDelete, "/tokengate/users/alice/tokens/"+deploy.ID, ""), http.StatusNotFound)
	m = want(t, e.do(t, http.MethodGet, "/tokengate/users/alice/tokens", ""), http.StatusOK)
	if tokens, _ := m["tokens"].([]any); len(tokens) != 1 || tokens[0].(map[string]any)["id"] != ci.ID {
		t.Fatalf("tokens after revoke = %v", m)
	}
	m = want(t, e.do(t, http.MethodGet, "/tokengate/users/bob/tokens", ""), http.StatusOK)
	if tokens, _ := m["tokens"].([]any); len(tokens) != 1 {
		t.Fatalf("bob's tokens = %v", m)
	}
}

func TestStoreCheck(t *testing.T) {
	e := newEnv(t)
	e.createUser(t, "alice", true)
	e.createToken(t, "alice", "deploy")
	for _, path := range []string{"/tokengate/store/check", "/tokengate/store/check?repair=true"} {
		t.Run(path, func(t *testing.T) {
			w := e.do(t, http.MethodPost, path, "")
			want(t, w, http.StatusOK)
			if got := strings.TrimSpace(w.Body.String()); got != `{"problems":[],"repaired":0}` {
				t.Fatalf("body = %s", got)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t)
	e.createUser(t, "alice", true)
	tests := []struct{ method, path string }{
		{http.MethodGet, "/tokengate/"},
		{http.MethodGet, "/tokengate/nothing"},
		{http.MethodGet, "/tokengate/store"},
		{http.MethodPost, "/tokengate/store/check/now"},
		{http.MethodGet, "/tokengate/users/alice/keys"},
		{http.MethodGet, "/tokengate/users/alice/tokens/x/y"},
		{http.MethodGet, "/tokengate/users/nobody"},
		{http.MethodPatch, "/tokengate/users/nobody"},
		{http.MethodDelete, "/tokengate/users/nobody"},
		{http.MethodGet, "/tokengate/users/nobody/tokens"},
		{http.MethodDelete, "/tokengate/users/alice/tokens/0000000000000000"},
		{http.MethodPatch, "/tokengate/users/alice/tokens/0000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			body := ""
			if tt.method == http.MethodPatch {
				body = `{"disabled":true}`
				if strings.Contains(tt.path, "/tokens/") {
					body = `{"enabled":false}`
				}
			}
			m := want(t, e.do(t, tt.method, tt.path, body), http.StatusNotFound)
			if m["error"] != "not_found" {
				t.Fatalf("problem = %v", m)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	e.createUser(t, "alice", true)
	tests := []struct{ method, path, allow string }{
		{http.MethodPut, "/tokengate/users", "GET, POST"},
		{http.MethodDelete, "/tokengate/users", "GET, POST"},
		{http.MethodPost, "/tokengate/users/alice", "GET, PATCH, DELETE"},
		{http.MethodPut, "/tokengate/users/alice", "GET, PATCH, DELETE"},
		{http.MethodPost, "/tokengate/users/alice/tokens", "GET"},
		{http.MethodDelete, "/tokengate/users/alice/tokens", "GET"},
		{http.MethodGet, "/tokengate/users/alice/tokens/0000000000000000", "PATCH, DELETE"},
		{http.MethodGet, "/tokengate/store/check", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			w := e.do(t, tt.method, tt.path, "")
			if m := want(t, w, http.StatusMethodNotAllowed); m["error"] != "method_not_allowed" {
				t.Fatalf("problem = %v", m)
			}
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Fatalf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
	// Nothing was deleted by the refused requests.
	want(t, e.do(t, http.MethodGet, "/tokengate/users/alice", ""), http.StatusOK)
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"bad name", http.MethodPost, "/tokengate/users", `{"name":"bob smith","password":"` + goodPass + `"}`, http.StatusBadRequest, "name"},
		{"missing name", http.MethodPost, "/tokengate/users", `{"password":"` + goodPass + `"}`, http.StatusBadRequest, "name"},
		{"short password", http.MethodPost, "/tokengate/users", `{"name":"bob","password":"short"}`, http.StatusBadRequest, "password"},
		{"bad role", http.MethodPost, "/tokengate/users", `{"name":"bob","password":"` + goodPass + `","roles":["super user"]}`, http.StatusBadRequest, "roles"},
		{"unknown field", http.MethodPost, "/tokengate/users", `{"name":"bob","password":"` + goodPass + `","is_admin":true}`, http.StatusBadRequest, "is_admin"},
		{"wrong type", http.MethodPost, "/tokengate/users", `{"name":"bob","password":"` + goodPass + `","token_login":"yes"}`, http.StatusBadRequest, "token_login"},
		{"duplicate", http.MethodPost, "/tokengate/users", `{"name":"ALICE","password":"` + goodPass + `"}`, http.StatusConflict, "name"},
		{"patch short password", http.MethodPatch, "/tokengate/users/alice", `{"password":"short"}`, http.StatusBadRequest, "password"},
		{"patch bad role", http.MethodPatch, "/tokengate/users/alice", `{"roles":[""]}`, http.StatusBadRequest, "roles"},
		{"patch rename", http.MethodPatch, "/tokengate/users/alice", `{"name":"mallory"}`, http.StatusBadRequest, "name"},
		{"patch token bad ips", http.MethodPatch, "/tokengate/users/alice/tokens/{id}", `{"allowed_ips":["nope"]}`, http.StatusBadRequest, "allowed_ips"},
		{"patch token bad label", http.MethodPatch, "/tokengate/users/alice/tokens/{id}", `{"label":""}`, http.StatusBadRequest, "label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.createUser(t, "alice", true)
			c := e.createToken(t, "alice", "deploy")
			before, _ := e.st.GetUser(context.Background(), "alice")
			wantField(t, e.do(t, tt.method, strings.Replace(tt.path, "{id}", c.ID, 1), tt.body), tt.status, tt.field)

			after, _ := e.st.GetUser(context.Background(), "alice")
			if after.PasswordHash != before.PasswordHash || len(after.Roles) != 0 || after.Disabled {
				t.Fatalf("refused request changed alice: %+v", after)
			}
			if all, _ := e.st.ListUsers(context.Background()); len(all) != 1 {
				t.Fatalf("refused request changed the users: %d", len(all))
			}
			tok, _ := e.st.GetToken(context.Background(), "alice", c.ID)
			if tok.Label != "deploy" || len(tok.AllowedIPs) != 0 {
				t.Fatalf("refused request changed the token: %+v", tok)
			}
		})
	}

	t.Run("wrong content type", func(t *testing.T) {
		e := newEnv(t)
		r := httptest.NewRequest(http.MethodPost, "/tokengate/users", strings.NewReader(`{"name":"bob","password":"`+goodPass+`"}`))
		r.Header.Set("Content-Type", "text/plain")
		w := httptest.NewRecorder()
		err := e.api.ServeHTTP(w, r)
		if p := apierr.For(err); p.Status != http.StatusUnsupportedMediaType {
			t.Fatalf("status = %d (%v), want 415", p.Status, err)
		}
	})
}
