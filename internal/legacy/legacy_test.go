package legacy_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/legacy"
	"github.com/tokengate/tokengate/internal/login"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/users"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const password = "Tr0ub4dor&3-horse"

var (
	t0        = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	legacyHex = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// env is a legacy token service on a real embedded store, with its ACL,
// a last-use recorder and the local identity source.
type env struct {
	st    *boltstore.Store
	users *users.Service
	acl   *acl.ACL
	uses  *lastuse.Recorder
	svc   *legacy.Service
}

func newEnv(t testing.TB, limit int, lifetime time.Duration) *env {
	t.Helper()
	return openEnv(t, legacy.Cap{Max: limit}, lifetime, func() time.Time { return t0 }, nil)
}

// newCappedEnv is newEnv with a cap policy, a logger (nil: none) and a
// clock that moves on a second at every read, so tokens have distinct
// creation times and "oldest" is well defined.
func newCappedEnv(t *testing.T, c legacy.Cap, log *zap.Logger) *env {
	t.Helper()
	var mu sync.Mutex
	clock := t0
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	return openEnv(t, c, 0, now, log)
}

func openEnv(t testing.TB, c legacy.Cap, lifetime time.Duration, now func() time.Time, log *zap.Logger) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, users: users.NewService(st, 4, now), acl: acl.New(st), uses: lastuse.New(st)}
	e.svc = legacy.NewService(st, e.uses, e.acl, c, lifetime, now, log)
	return e
}

// user creates a user and returns its stored record.
func (e *env) user(t testing.TB, name string, tokenLogin bool, roles ...string) store.User {
	t.Helper()
	ctx := context.Background()
	if _, err := e.users.Create(ctx, users.NewUser{Name: name, Password: password, Roles: roles, TokenLogin: tokenLogin}); err != nil {
		t.Fatal(err)
	}
	u, err := e.st.GetUser(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *env) grant(t testing.TB, g acl.Grant) {
	t.Helper()
	g.Action, g.Resource = legacy.Action, legacy.Resource
	if _, err := e.acl.Grant(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

// allowedUser is a user with token login and a user grant.
func (e *env) allowedUser(t testing.TB, name string) store.User {
	t.Helper()
	u := e.user(t, name, true)
	e.grant(t, acl.Grant{User: name})
	return u
}

func (e *env) issue(t *testing.T, u store.User) legacy.Issued {
	t.Helper()
	is, err := e.svc.Issue(context.Background(), u)
	if err != nil {
		t.Fatalf("Issue(%s): %v", u.Name, err)
	}
	return is
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want status %d", status)
	}
	if p := apierr.For(err); p.Status != status {
		t.Fatalf("err = %v (status %d), want status %d", err, p.Status, status)
	}
}

func TestIssuePermission(t *testing.T) {
	tests := []struct {
		name       string
		tokenLogin bool
		roles      []string
		grant      *acl.Grant
		status     int // 0: issued
	}{
		{"no permission", true, []string{"dev"}, nil, http.StatusForbidden},
		{"permission on a role the user lacks", true, []string{"dev"}, &acl.Grant{Role: "ops"}, http.StatusForbidden},
		{"no token_login", false, nil, &acl.Grant{User: "u"}, http.StatusForbidden},
		{"admin without token_login", false, []string{acl.AdminRole}, nil, http.StatusForbidden},
		{"user grant", true, nil, &acl.Grant{User: "u"}, 0},
		{"role grant", true, []string{"dev"}, &acl.Grant{Role: "dev"}, 0},
		{"admin role", true, []string{acl.AdminRole}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0, 0)
			u := e.user(t, "u", tt.tokenLogin, tt.roles...)
			if tt.grant != nil {
				e.grant(t, *tt.grant)
			}
			is, err := e.svc.Issue(context.Background(), u)
			if tt.status != 0 {
				wantStatus(t, err, tt.status)
				if ts, _ := e.st.ListTokens(context.Background(), "u"); len(ts) != 0 {
					t.Fatalf("a refused Issue stored %d tokens", len(ts))
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !legacyHex.MatchString(is.Token) {
				t.Fatalf("token %q is not 40 lowercase hex", is.Token)
			}
		})
	}
}

func TestIssuedTokenIsStoredAsItsHash(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		want     time.Time
	}{
		{"default lifetime of 100 years", 0, t0.Add(100 * 365 * 24 * time.Hour)},
		{"configured lifetime", 90 * 24 * time.Hour, t0.Add(90 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0, tt.lifetime)
			is := e.issue(t, e.allowedUser(t, "alice"))
			if !legacyHex.MatchString(is.Token) {
				t.Fatalf("token %q is not 40 lowercase hex", is.Token)
			}
			if !is.ExpiresAt.Equal(tt.want) {
				t.Fatalf("Issued.ExpiresAt = %v, want %v", is.ExpiresAt, tt.want)
			}
			g, err := e.st.LookupToken(context.Background(), sha256.Sum256([]byte(is.Token)))
			if err != nil {
				t.Fatalf("no token stored under the SHA-256 of the secret: %v", err)
			}
			tok := g.Token
			if tok.ID != is.ID || tok.Owner != "alice" || tok.Kind != store.KindLegacy || !tok.Enabled {
				t.Fatalf("stored token = %+v", tok)
			}
			if !tok.CreatedAt.Equal(t0) || !tok.ExpiresAt.Equal(tt.want) {
				t.Fatalf("stored CreatedAt %v ExpiresAt %v, want %v and %v", tok.CreatedAt, tok.ExpiresAt, t0, tt.want)
			}
			b, err := json.Marshal(tok)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), is.Token) {
				t.Fatalf("the stored record holds the secret: %s", b)
			}
		})
	}
}

func TestIssueRefusePolicy(t *testing.T) {
	e := newCappedEnv(t, legacy.Cap{Max: 1, Policy: legacy.Refuse}, nil)
	alice := e.allowedUser(t, "alice")
	e.issue(t, alice)
	_, err := e.svc.Issue(context.Background(), alice)
	wantStatus(t, err, http.StatusConflict)
	if !errors.Is(err, store.ErrTokenLimit) {
		t.Fatalf("err = %v, want ErrTokenLimit", err)
	}
	if p := apierr.For(err); p.Code != "token_limit" || !strings.Contains(p.Description, "revoke one") {
		t.Fatalf("problem = %+v, want token_limit saying what to do", p)
	}
}

// TestIssueRevokesOldestAtCap: with the default policy a legacy client
// that asks on every run is never locked out; each new token past the cap
// revokes the oldest one (logged by id, never by secret) and the count
// stays at the cap.
func TestIssueRevokesOldestAtCap(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	e := newCappedEnv(t, legacy.Cap{Max: 3}, zap.New(core))
	ctx := context.Background()
	alice := e.allowedUser(t, "alice")
	var issued []legacy.Issued
	for range 5 {
		issued = append(issued, e.issue(t, alice))
	}
	ts, err := e.st.ListTokens(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tok := range ts {
		ids = append(ids, tok.ID)
	}
	want := []string{issued[2].ID, issued[3].ID, issued[4].ID}
	if !slices.Equal(ids, want) {
		t.Fatalf("tokens = %v, want the 3 newest %v", ids, want)
	}
	for _, old := range issued[:2] {
		if _, err := e.st.LookupToken(ctx, sha256.Sum256([]byte(old.Token))); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked token still looks up: %v", err)
		}
	}
	entries := logs.FilterMessageSnippet("revoked the oldest legacy token").All()
	if len(entries) != 2 {
		t.Fatalf("%d eviction log lines, want 2", len(entries))
	}
	for i, en := range entries {
		f := en.ContextMap()
		if f["user"] != "alice" || f["token_id"] != issued[i].ID {
			t.Errorf("log %d fields = %v, want user alice and token_id %s", i, f, issued[i].ID)
		}
		for _, is := range issued {
			if strings.Contains(fmt.Sprint(f), is.Token) {
				t.Errorf("log %d holds a token secret", i)
			}
		}
	}
}

// TestLegacyCapIsSeparateFromPATs: legacy tokens do not use up the PAT
// cap and PATs are never evicted to make room for legacy tokens.
func TestLegacyCapIsSeparateFromPATs(t *testing.T) {
	e := newCappedEnv(t, legacy.Cap{Max: 2}, nil)
	ctx := context.Background()
	alice := e.allowedUser(t, "alice")
	pat := store.Token{ID: "pat1", Owner: "alice", Kind: store.KindPAT, Hash: sha256.Sum256([]byte("pat1")), Enabled: true, CreatedAt: t0}
	if err := e.st.CreateToken(ctx, pat, 2); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		e.issue(t, alice)
	}
	if _, err := e.st.GetToken(ctx, "alice", "pat1"); err != nil {
		t.Fatalf("the PAT was evicted: %v", err)
	}
	pat2 := store.Token{ID: "pat2", Owner: "alice", Kind: store.KindPAT, Hash: sha256.Sum256([]byte("pat2")), Enabled: true, CreatedAt: t0}
	if err := e.st.CreateToken(ctx, pat2, 2); err != nil {
		t.Fatalf("legacy tokens used up the PAT cap: %v", err)
	}
}

// TestIssueConcurrentAtCap: concurrent requests at the cap all get a
// token and never leave more than the cap.
func TestIssueConcurrentAtCap(t *testing.T) {
	e := newCappedEnv(t, legacy.Cap{Max: 3}, nil)
	alice := e.allowedUser(t, "alice")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.Issue(context.Background(), alice)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Issue: %v", err)
		}
	}
	ts, err := e.st.ListTokens(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 3 {
		t.Fatalf("alice holds %d legacy tokens, want the cap 3", len(ts))
	}
}

func TestUsages(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	alice, bob := e.allowedUser(t, "alice"), e.allowedUser(t, "bob")
	stored, pending, unused := e.issue(t, alice), e.issue(t, alice), e.issue(t, bob)
	// A PAT is not a legacy token and must not be listed.
	if err := e.st.CreateToken(ctx, store.Token{ID: "pat1", Owner: "alice", Kind: store.KindPAT, Hash: sha256.Sum256([]byte("pat1")), Enabled: true, CreatedAt: t0}, 0); err != nil {
		t.Fatal(err)
	}
	storedUse := store.LastUse{Owner: "alice", TokenID: stored.ID, At: t0.Add(time.Hour), IP: "192.0.2.1", Host: "old.example"}
	if err := e.st.RecordLastUse(ctx, []store.LastUse{storedUse}); err != nil {
		t.Fatal(err)
	}
	pendingUse := store.LastUse{Owner: "alice", TokenID: pending.ID, At: t0.Add(2 * time.Hour), IP: "2001:db8::1", Host: "new.example"}
	e.uses.Record(pendingUse) // not yet written to the store

	rows, err := e.svc.Usages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]legacy.Usage{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	if len(rows) != 3 || len(byID) != 3 {
		t.Fatalf("Usages = %+v, want the 3 legacy tokens only", rows)
	}
	tests := []struct {
		name  string
		id    string
		owner string
		use   *store.LastUse
	}{
		{"stored use", stored.ID, "alice", &storedUse},
		{"pending use", pending.ID, "alice", &pendingUse},
		{"never used", unused.ID, "bob", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := byID[tt.id]
			if !ok {
				t.Fatalf("token %s not listed", tt.id)
			}
			if r.Owner != tt.owner || !r.Enabled || !r.CreatedAt.Equal(t0) || !r.ExpiresAt.Equal(t0.Add(legacy.DefaultLifetime)) {
				t.Fatalf("row = %+v", r)
			}
			if tt.use == nil {
				if r.LastUsedAt != nil || r.LastUsedIP != "" || r.LastUsedHost != "" {
					t.Fatalf("unused token shows a use: %+v", r)
				}
				return
			}
			if r.LastUsedAt == nil || !r.LastUsedAt.Equal(tt.use.At) || r.LastUsedIP != tt.use.IP || r.LastUsedHost != tt.use.Host {
				t.Fatalf("row = %+v, want last use %+v", r, *tt.use)
			}
		})
	}
}

// server serves the API as the Caddy handler does: an error is written by
// apierr with a Basic challenge.
func (e *env) server(t *testing.T) *httptest.Server {
	t.Helper()
	auth, err := users.NewAuthenticator(e.st, bruteforce.New(e.st, bruteforce.Limits{}), 4)
	if err != nil {
		t.Fatal(err)
	}
	sources, err := login.NewSources(login.Local, map[string]login.Authenticator{login.Local: auth})
	if err != nil {
		t.Fatal(err)
	}
	api := &legacy.API{Service: e.svc, Logins: sources, Path: "/rest/token"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := api.Serve(w, r, "192.0.2.7"); err != nil {
			apierr.Write(w, apierr.For(err), apierr.Challenge{Scheme: "Basic", Realm: "tokengate"})
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request to the API; set adds its headers.
func do(t *testing.T, srv *httptest.Server, method string, set func(http.Header)) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/rest/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(req.Header)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// basic is the Authorization header `curl -u user:pwd` sends.
func basic(user, pwd string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pwd))
}

// headers sets the auth-* headers (an empty value is left out).
func headers(user, pwd, kind string) func(http.Header) {
	return func(h http.Header) {
		for k, v := range map[string]string{"auth-user": user, "auth-pwd": pwd, "auth-user-type": kind} {
			if v != "" {
				h.Set(k, v)
			}
		}
	}
}

// wantIssued checks that body is a legacy token of alice in the store.
func (e *env) wantIssued(t *testing.T, tok string) store.Token {
	t.Helper()
	if !legacyHex.MatchString(tok) {
		t.Fatalf("body %q is not a bare 40-hex token", tok)
	}
	g, err := e.st.LookupToken(context.Background(), sha256.Sum256([]byte(tok)))
	if err != nil || g.Token.Owner != "alice" || g.Token.Kind != store.KindLegacy {
		t.Fatalf("issued token not stored for alice: %+v, %v", g.Token, err)
	}
	return g.Token
}

func TestServeIssues(t *testing.T) {
	tests := []struct {
		name string
		set  func(http.Header)
	}{
		{"HTTP Basic as curl -u sends it", func(h http.Header) {
			h.Set("Authorization", basic("alice", password))
			h.Set("User-Agent", "curl/8.5.0")
			h.Set("Accept", "*/*")
		}},
		{"auth-* headers", headers("alice", password, "local")},
		{"auth-* headers without a type", headers("alice", password, "")},
		{"user name in upper case", headers("ALICE", password, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0, 0)
			e.allowedUser(t, "alice")
			r := do(t, e.server(t), http.MethodGet, tt.set)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("Content-Type = %q, want text/plain", ct)
			}
			e.wantIssued(t, r.body)
		})
	}
}

func TestServeJSON(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.allowedUser(t, "alice")
	r := do(t, e.server(t), http.MethodPost, func(h http.Header) {
		h.Set("Authorization", basic("alice", password))
		h.Set("Accept", "text/html;q=0.5, application/json")
	})
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, Content-Type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	tokStr, _ := got["token"].(string)
	stored := e.wantIssued(t, tokStr)
	exp, _ := got["expires_at"].(string)
	at, err := time.Parse(time.RFC3339Nano, exp)
	if len(got) != 3 || got["id"] != stored.ID || err != nil || !at.Equal(stored.ExpiresAt) {
		t.Fatalf("JSON = %v, want token, id %s and expires_at %v", got, stored.ID, stored.ExpiresAt)
	}
}

func TestServeRefusals(t *testing.T) {
	const wrong = "Wr0ng-horse-77"
	long := strings.Repeat("a", 2048)
	tests := []struct {
		name   string
		method string
		set    func(http.Header)
		status int
		field  string
	}{
		{"no credentials", http.MethodGet, nil, http.StatusUnauthorized, ""},
		{"only auth-user", http.MethodGet, headers("alice", "", ""), http.StatusBadRequest, "auth-pwd"},
		{"only auth-pwd", http.MethodGet, headers("", password, ""), http.StatusBadRequest, "auth-user"},
		{"Basic and headers", http.MethodGet, func(h http.Header) {
			headers("alice", password, "")(h)
			h.Set("Authorization", basic("alice", password))
		}, http.StatusBadRequest, ""},
		{"two Authorization headers", http.MethodGet, func(h http.Header) {
			h.Add("Authorization", basic("alice", password))
			h.Add("Authorization", basic("alice", password))
		}, http.StatusBadRequest, ""},
		{"repeated auth-user", http.MethodGet, func(h http.Header) {
			headers("alice", password, "")(h)
			h.Add("auth-user", "alice")
		}, http.StatusBadRequest, "auth-user"},
		{"auth-user-type ldap", http.MethodGet, headers("alice", password, "ldap"), http.StatusBadRequest, "auth-user-type"},
		{"non-UTF-8 auth-user", http.MethodGet, headers("alice\xff", password, ""), http.StatusBadRequest, "auth-user"},
		{"non-UTF-8 auth-pwd", http.MethodGet, headers("alice", password+"\xff", ""), http.StatusBadRequest, "auth-pwd"},
		{"over-long auth-user", http.MethodGet, headers(long, password, ""), http.StatusBadRequest, "auth-user"},
		{"over-long Basic user", http.MethodGet, func(h http.Header) { h.Set("Authorization", basic(long, password)) }, http.StatusBadRequest, ""},
		{"tab in auth-user", http.MethodGet, headers("ali\tce", password, ""), http.StatusBadRequest, "auth-user"},
		{"C1 control in auth-pwd", http.MethodGet, headers("alice", "Tr0ub4dor\u0085x", ""), http.StatusBadRequest, "auth-pwd"},
		{"control character in Basic", http.MethodGet, func(h http.Header) { h.Set("Authorization", basic("alice", "Tr0ub4dor\x01x")) }, http.StatusBadRequest, ""},
		{"wrong password, Basic", http.MethodGet, func(h http.Header) { h.Set("Authorization", basic("alice", wrong)) }, http.StatusUnauthorized, ""},
		{"wrong password, headers", http.MethodPost, headers("alice", wrong, "local"), http.StatusUnauthorized, ""},
		{"PUT", http.MethodPut, func(h http.Header) { h.Set("Authorization", basic("alice", password)) }, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0, 0)
			e.allowedUser(t, "alice")
			r := do(t, e.server(t), tt.method, tt.set)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			var p apierr.Problem
			var fields struct {
				Field string `json:"field"`
			}
			if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.Code == "" {
				t.Fatalf("body is not a problem: %q", r.body)
			}
			_ = json.Unmarshal([]byte(r.body), &fields)
			if fields.Field != tt.field {
				t.Fatalf("field = %q, want %q: %s", fields.Field, tt.field, r.body)
			}
			for _, secret := range []string{password, wrong, "Tr0ub4dor"} {
				if strings.Contains(r.body, secret) || strings.Contains(r.header.Get("WWW-Authenticate"), secret) {
					t.Fatalf("the answer contains the password %q: %s", secret, r.body)
				}
			}
			switch tt.status {
			case http.StatusUnauthorized:
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
					t.Fatalf("401 without a Basic challenge: %v", r.header)
				}
			case http.StatusMethodNotAllowed:
				if r.header.Get("Allow") != "GET, POST" {
					t.Fatalf("Allow = %q", r.header.Get("Allow"))
				}
			}
			if ts, _ := e.st.ListTokens(context.Background(), "alice"); len(ts) != 0 {
				t.Fatalf("a refused request stored %d tokens", len(ts))
			}
		})
	}
}
