package pat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/users"
)

// This file holds the service tests and the helpers shared with
// http_test.go.

const (
	testCost = 4
	goodPass = "correct horse"
)

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a real embedded store with three users: alice and bob may use
// tokens, carol (token_login off) may not.
type env struct {
	st    *boltstore.Store
	clk   *clock
	uses  *lastuse.Recorder
	users *users.Service
	svc   *pat.Service
}

func newEnv(t testing.TB, limit int) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	e := &env{st: st, clk: clk, uses: lastuse.New(st), users: users.NewService(st, testCost, clk.Now)}
	e.svc = pat.NewService(st, e.uses, limit, clk.Now)
	for _, u := range []users.NewUser{
		{Name: "alice", Password: goodPass, TokenLogin: true},
		{Name: "bob", Password: goodPass, TokenLogin: true},
		{Name: "carol", Password: goodPass},
	} {
		if _, err := e.users.Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) create(t testing.TB, owner string, req pat.CreateRequest) pat.Created {
	t.Helper()
	c, err := e.svc.Create(context.Background(), owner, req)
	if err != nil {
		t.Fatalf("Create(%s, %+v): %v", owner, req, err)
	}
	return c
}

func (e *env) list(t *testing.T, owner string) []pat.View {
	t.Helper()
	vs, err := e.svc.List(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// view returns owner's token id as List shows it.
func (e *env) view(t *testing.T, owner, id string) pat.View {
	t.Helper()
	for _, v := range e.list(t, owner) {
		if v.ID == id {
			return v
		}
	}
	t.Fatalf("%s has no token %s", owner, id)
	return pat.View{}
}

// wantProblem checks that err maps to status, and names field / code when
// those are not empty.
func wantProblem(t *testing.T, err error, status int, field, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want status %d", status)
	}
	p := apierr.For(err)
	if p.Status != status {
		t.Fatalf("status = %d (%v), want %d", p.Status, err, status)
	}
	if field != "" && p.Field != field {
		t.Fatalf("field = %q, want %q", p.Field, field)
	}
	if code != "" && p.Code != code {
		t.Fatalf("code = %q, want %q", p.Code, code)
	}
}

func ptr[T any](v T) *T { return &v }

func TestCreateReturnsSecretOnce(t *testing.T) {
	e := newEnv(t, 0)
	c := e.create(t, "alice", pat.CreateRequest{Label: "deploy"})

	if !strings.HasPrefix(c.Token, token.PATPrefix) || token.Classify(c.Token) != token.PAT {
		t.Fatalf("token %q is not a valid PAT", c.Token)
	}
	if c.ID == "" || c.Label != "deploy" || !c.Enabled || c.ExpiresAt != nil || c.LastUsedAt != nil ||
		c.Scopes == nil || c.AllowedIPs == nil || !c.CreatedAt.Equal(e.clk.Now()) {
		t.Fatalf("created view = %+v", c.View)
	}

	// The store keeps only the hash.
	stored, err := e.st.GetToken(context.Background(), "alice", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Hash != store.TokenHash(token.Hash(c.Token)) || stored.Kind != store.KindPAT {
		t.Fatalf("stored token = %+v", stored)
	}
	rec, _ := json.Marshal(stored)
	if strings.Contains(string(rec), c.Token) {
		t.Fatal("the store record holds the secret")
	}

	// Later views never show the secret or its hash.
	b, err := json.Marshal(e.list(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{c.Token, c.Token[len(token.PATPrefix):], stored.Hash.String(), `"token"`, `"hash"`} {
		if strings.Contains(string(b), secret) {
			t.Errorf("list view contains %q: %s", secret, b)
		}
	}
	if !strings.Contains(string(b), c.ID) {
		t.Fatalf("list view lacks the token: %s", b)
	}

	// Each create issues a new secret.
	c2 := e.create(t, "alice", pat.CreateRequest{Label: "other"})
	if c2.Token == c.Token || c2.ID == c.ID {
		t.Fatal("two creates returned the same token or id")
	}
}

func TestCreateLabel(t *testing.T) {
	tests := []struct {
		name, label, want string
		ok                bool
	}{
		{"plain", "deploy", "deploy", true},
		{"trimmed", "  CI runner \t", "CI runner", true},
		{"20 ascii", strings.Repeat("a", 20), strings.Repeat("a", 20), true},
		{"20 cyrillic", strings.Repeat("ж", 20), strings.Repeat("ж", 20), true},
		{"empty", "", "", false},
		{"blank", "   ", "", false},
		{"21 ascii", strings.Repeat("a", 21), "", false},
		{"21 cyrillic", strings.Repeat("ж", 21), "", false},
		{"control character", "dep\x07loy", "", false},
		{"invalid utf-8", "dep\xffloy", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			c, err := e.svc.Create(context.Background(), "alice", pat.CreateRequest{Label: tt.label})
			if !tt.ok {
				wantProblem(t, err, http.StatusBadRequest, "label", "invalid_request")
				if n := len(e.list(t, "alice")); n != 0 {
					t.Fatalf("refused create stored %d token(s)", n)
				}
				return
			}
			if err != nil || c.Label != tt.want {
				t.Fatalf("Create = %q, %v; want label %q", c.Label, err, tt.want)
			}
		})
	}
}

func TestCreateDuplicateLabel(t *testing.T) {
	e := newEnv(t, 0)
	e.create(t, "alice", pat.CreateRequest{Label: "Deploy"})
	for _, dup := range []string{"Deploy", "deploy", "DEPLOY", " deploy "} {
		t.Run(dup, func(t *testing.T) {
			_, err := e.svc.Create(context.Background(), "alice", pat.CreateRequest{Label: dup})
			wantProblem(t, err, http.StatusConflict, "label", "conflict")
			if n := len(e.list(t, "alice")); n != 1 {
				t.Fatalf("alice has %d tokens after a refused create, want 1", n)
			}
		})
	}
	t.Run("other user may use it", func(t *testing.T) {
		e.create(t, "bob", pat.CreateRequest{Label: "deploy"})
	})
}

func TestCreateScopes(t *testing.T) {
	tooMany := make([]string, 33)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("s%d", i)
	}
	tests := []struct {
		name   string
		scopes []string
		want   []string
		ok     bool
	}{
		{"none", nil, []string{}, true},
		{"sorted and deduplicated", []string{"write", "read", "write"}, []string{"read", "write"}, true},
		{"punctuation", []string{"repo:read", "api/v1"}, []string{"api/v1", "repo:read"}, true},
		{"empty scope", []string{""}, nil, false},
		{"space", []string{"read write"}, nil, false},
		{"quote", []string{`re"ad`}, nil, false},
		{"backslash", []string{`re\ad`}, nil, false},
		{"non-ascii", []string{"lесen"}, nil, false},
		{"too long", []string{strings.Repeat("s", 65)}, nil, false},
		{"too many", tooMany, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			c, err := e.svc.Create(context.Background(), "alice", pat.CreateRequest{Label: "x", Scopes: tt.scopes})
			if !tt.ok {
				wantProblem(t, err, http.StatusBadRequest, "scopes", "")
				return
			}
			if err != nil || !slices.Equal(c.Scopes, tt.want) {
				t.Fatalf("scopes = %q, %v; want %q", c.Scopes, err, tt.want)
			}
		})
	}
}

func TestCreateExpiresIn(t *testing.T) {
	maxSecs := int64(pat.MaxLifetime / time.Second)
	tests := []struct {
		name string
		in   *int64
		want time.Duration // 0: never expires
		ok   bool
	}{
		{"absent", nil, 0, true},
		{"one hour", ptr[int64](3600), time.Hour, true},
		{"one second", ptr[int64](1), time.Second, true},
		{"maximum", ptr(maxSecs), pat.MaxLifetime, true},
		{"zero", ptr[int64](0), 0, false},
		{"negative", ptr[int64](-60), 0, false},
		{"too large", ptr(maxSecs + 1), 0, false},
		{"overflowing", ptr[int64](1 << 62), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			c, err := e.svc.Create(context.Background(), "alice", pat.CreateRequest{Label: "x", ExpiresIn: tt.in})
			if !tt.ok {
				wantProblem(t, err, http.StatusBadRequest, "expires_in", "")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == 0 && c.ExpiresAt != nil:
				t.Fatalf("expires_at = %v, want none", *c.ExpiresAt)
			case tt.want != 0 && (c.ExpiresAt == nil || !c.ExpiresAt.Equal(e.clk.Now().Add(tt.want))):
				t.Fatalf("expires_at = %v, want %v", c.ExpiresAt, e.clk.Now().Add(tt.want))
			}
		})
	}
}

func TestCreateAllowedIPs(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
		ok   bool
	}{
		{"none", nil, []string{}, true},
		{"canonical", []string{"10.1.2.3/8", " 192.0.2.7 ", "2001:db8::/32", "::ffff:198.51.100.1"},
			[]string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "198.51.100.1/32"}, true},
		{"prefix too long", []string{"10.0.0.0/33"}, nil, false},
		{"garbage", []string{"not-an-ip"}, nil, false},
		{"garbage cidr", []string{"10.0.0/8"}, nil, false},
		{"zone", []string{"fe80::1%eth0"}, nil, false},
		{"empty entry", []string{""}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			c, err := e.svc.Create(context.Background(), "alice", pat.CreateRequest{Label: "x", AllowedIPs: tt.in})
			if !tt.ok {
				wantProblem(t, err, http.StatusBadRequest, "allowed_ips", "")
				return
			}
			if err != nil || !slices.Equal(c.AllowedIPs, tt.want) {
				t.Fatalf("allowed_ips = %q, %v; want %q", c.AllowedIPs, err, tt.want)
			}
		})
	}
}

func TestCreateUnknownOwner(t *testing.T) {
	e := newEnv(t, 0)
	_, err := e.svc.Create(context.Background(), "nobody", pat.CreateRequest{Label: "x"})
	wantProblem(t, err, http.StatusNotFound, "", "")
}

func TestTokenLimit(t *testing.T) {
	e := newEnv(t, 2)
	first := e.create(t, "alice", pat.CreateRequest{Label: "one"})
	e.create(t, "alice", pat.CreateRequest{Label: "two"})

	_, err := e.svc.Create(context.Background(), "alice", pat.CreateRequest{Label: "three"})
	wantProblem(t, err, http.StatusConflict, "", "token_limit")
	if n := len(e.list(t, "alice")); n != 2 {
		t.Fatalf("alice has %d tokens, want 2", n)
	}
	// The limit is per user.
	e.create(t, "bob", pat.CreateRequest{Label: "three"})
	// Revoking one makes room again.
	if err := e.svc.Delete(context.Background(), "alice", first.ID); err != nil {
		t.Fatal(err)
	}
	e.create(t, "alice", pat.CreateRequest{Label: "three"})
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	// setup gives alice "Deploy" and "ci", and bob "bobs".
	setup := func(t *testing.T) (e *env, deploy, ci, bobs pat.Created) {
		e = newEnv(t, 0)
		return e, e.create(t, "alice", pat.CreateRequest{Label: "Deploy"}),
			e.create(t, "alice", pat.CreateRequest{Label: "ci"}),
			e.create(t, "bob", pat.CreateRequest{Label: "bobs"})
	}

	t.Run("rename", func(t *testing.T) {
		tests := []struct {
			name, label, want string
			status            int
		}{
			{"new label", "release", "release", 0},
			{"same label other case", "DEPLOY", "DEPLOY", 0},
			{"20 cyrillic", strings.Repeat("я", 20), strings.Repeat("я", 20), 0},
			{"empty", "", "", http.StatusBadRequest},
			{"21 chars", strings.Repeat("b", 21), "", http.StatusBadRequest},
			{"taken", "ci", "", http.StatusConflict},
			{"taken other case", "CI", "", http.StatusConflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e, deploy, _, _ := setup(t)
				v, err := e.svc.Update(ctx, "alice", deploy.ID, pat.UpdateRequest{Label: &tt.label})
				if tt.status != 0 {
					wantProblem(t, err, tt.status, "label", "")
					if got := e.view(t, "alice", deploy.ID).Label; got != "Deploy" {
						t.Fatalf("refused rename changed the label to %q", got)
					}
					return
				}
				if err != nil || v.Label != tt.want {
					t.Fatalf("Update = %q, %v; want %q", v.Label, err, tt.want)
				}
				if got := e.view(t, "alice", deploy.ID).Label; got != tt.want {
					t.Fatalf("stored label = %q, want %q", got, tt.want)
				}
			})
		}
	})

	t.Run("renamed away label is free again", func(t *testing.T) {
		e, deploy, _, _ := setup(t)
		if _, err := e.svc.Update(ctx, "alice", deploy.ID, pat.UpdateRequest{Label: ptr("prod")}); err != nil {
			t.Fatal(err)
		}
		e.create(t, "alice", pat.CreateRequest{Label: "deploy"})
	})

	t.Run("enabled toggle", func(t *testing.T) {
		e, deploy, _, _ := setup(t)
		for _, on := range []bool{false, true, false} {
			v, err := e.svc.Update(ctx, "alice", deploy.ID, pat.UpdateRequest{Enabled: ptr(on)})
			if err != nil || v.Enabled != on {
				t.Fatalf("Update(enabled=%v) = %+v, %v", on, v, err)
			}
			stored, _ := e.st.GetToken(ctx, "alice", deploy.ID)
			if stored.Enabled != on || stored.Label != "Deploy" {
				t.Fatalf("stored = %+v", stored)
			}
		}
	})

	t.Run("allowed ips", func(t *testing.T) {
		e, deploy, _, _ := setup(t)
		v, err := e.svc.Update(ctx, "alice", deploy.ID, pat.UpdateRequest{AllowedIPs: &[]string{"10.9.8.7/16"}})
		if err != nil || !slices.Equal(v.AllowedIPs, []string{"10.9.0.0/16"}) {
			t.Fatalf("Update = %+v, %v", v, err)
		}
		_, err = e.svc.Update(ctx, "alice", deploy.ID, pat.UpdateRequest{AllowedIPs: &[]string{"10.0.0.0/99"}})
		wantProblem(t, err, http.StatusBadRequest, "allowed_ips", "")
		v, err = e.svc.Update(ctx, "alice", deploy.ID, pat.UpdateRequest{AllowedIPs: &[]string{}})
		if err != nil || len(v.AllowedIPs) != 0 {
			t.Fatalf("clearing the list: %+v, %v", v, err)
		}
	})

	t.Run("unknown and foreign ids are 404", func(t *testing.T) {
		e, _, _, bobs := setup(t)
		for _, id := range []string{"0000000000000000", bobs.ID} {
			_, err := e.svc.Update(ctx, "alice", id, pat.UpdateRequest{Enabled: ptr(false)})
			wantProblem(t, err, http.StatusNotFound, "", "")
			wantProblem(t, e.svc.Delete(ctx, "alice", id), http.StatusNotFound, "", "")
		}
		stored, err := e.st.GetToken(ctx, "bob", bobs.ID)
		if err != nil || !stored.Enabled {
			t.Fatalf("bob's token was touched: %+v, %v", stored, err)
		}
	})
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 0)
	c := e.create(t, "alice", pat.CreateRequest{Label: "deploy"})
	keep := e.create(t, "alice", pat.CreateRequest{Label: "keep"})

	if err := e.svc.Delete(ctx, "alice", c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.LookupToken(ctx, store.TokenHash(token.Hash(c.Token))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked token still found by hash: %v", err)
	}
	wantProblem(t, e.svc.Delete(ctx, "alice", c.ID), http.StatusNotFound, "", "")
	_, err := e.svc.Update(ctx, "alice", c.ID, pat.UpdateRequest{Enabled: ptr(true)})
	wantProblem(t, err, http.StatusNotFound, "", "")
	if l := e.list(t, "alice"); len(l) != 1 || l[0].ID != keep.ID {
		t.Fatalf("list after delete = %+v", l)
	}
}

func TestListShowsPendingLastUse(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 0)
	used := e.create(t, "alice", pat.CreateRequest{Label: "used"})
	unused := e.create(t, "alice", pat.CreateRequest{Label: "unused"})
	at := e.clk.Now().Add(time.Minute)
	e.uses.Record(store.LastUse{Owner: "alice", TokenID: used.ID, At: at, IP: "192.0.2.44"})

	check := func(stage string) {
		t.Helper()
		byID := map[string]pat.View{}
		for _, v := range e.list(t, "alice") {
			byID[v.ID] = v
		}
		u := byID[used.ID]
		if u.LastUsedAt == nil || !u.LastUsedAt.Equal(at) || u.LastUsedIP == nil || *u.LastUsedIP != "192.0.2.44" {
			t.Fatalf("%s: used token view = %+v", stage, u)
		}
		if n := byID[unused.ID]; n.LastUsedAt != nil || n.LastUsedIP != nil {
			t.Fatalf("%s: unused token shows a use: %+v", stage, n)
		}
	}

	check("pending")
	stored, _ := e.st.GetToken(ctx, "alice", used.ID)
	if !stored.LastUsedAt.IsZero() {
		t.Fatal("the use reached the store before any flush")
	}
	if err := e.uses.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check("flushed")

	// A pending use older than the stored one does not hide it.
	e.uses.Record(store.LastUse{Owner: "alice", TokenID: used.ID, At: at.Add(-time.Hour), IP: "203.0.113.1"})
	check("older pending")
}

func TestListUnknownOwner(t *testing.T) {
	e := newEnv(t, 0)
	_, err := e.svc.List(context.Background(), "nobody")
	wantProblem(t, err, http.StatusNotFound, "", "")
}

// TestUpdateExpiresIn: seed 002's "set expiry". The new expiry counts from
// now, is validated like at creation, is stored (so every node sees it),
// and a refused value changes nothing.
func TestUpdateExpiresIn(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	c := e.create(t, "alice", pat.CreateRequest{Label: "ci"})
	e.clk.Advance(time.Hour)
	v, err := e.svc.Update(ctx, "alice", c.ID, pat.UpdateRequest{ExpiresIn: ptr[int64](60)})
	if err != nil {
		t.Fatal(err)
	}
	want := e.clk.Now().Add(time.Minute)
	if v.ExpiresAt == nil || !v.ExpiresAt.Equal(want) {
		t.Fatalf("expires_at = %v, want %v", v.ExpiresAt, want)
	}
	stored, err := e.st.GetToken(ctx, "alice", c.ID)
	if err != nil || !stored.ExpiresAt.Equal(want) {
		t.Fatalf("stored expiry = %v, %v; want %v", stored.ExpiresAt, err, want)
	}
	for _, bad := range []int64{0, -1, int64(pat.MaxLifetime/time.Second) + 1} {
		_, err := e.svc.Update(ctx, "alice", c.ID, pat.UpdateRequest{ExpiresIn: ptr(bad), Label: ptr("renamed")})
		wantProblem(t, err, http.StatusBadRequest, "expires_in", "")
	}
	if got := e.view(t, "alice", c.ID); got.Label != "ci" || !got.ExpiresAt.Equal(want) {
		t.Fatalf("a refused change was written: %+v", got)
	}
	_, err = e.svc.Update(ctx, "bob", c.ID, pat.UpdateRequest{ExpiresIn: ptr[int64](60)})
	wantProblem(t, err, http.StatusNotFound, "", "")
	// Once expired, it stays expired.
	e.clk.Advance(2 * time.Minute)
	_, err = e.svc.Update(ctx, "alice", c.ID, pat.UpdateRequest{ExpiresIn: ptr[int64](3600)})
	wantProblem(t, err, http.StatusConflict, "expires_in", "")
	if got := e.view(t, "alice", c.ID); !got.ExpiresAt.Equal(want) {
		t.Fatalf("an expired token was extended: %+v", got)
	}
}
