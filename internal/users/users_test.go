package users_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/users"
)

const (
	testCost = 4
	goodPass = "correct horse"
)

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// openStore opens a real embedded store in a temporary directory.
func openStore(t *testing.T) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newService(t *testing.T) (*users.Service, *boltstore.Store) {
	st := openStore(t)
	return users.NewService(st, testCost, func() time.Time { return epoch }), st
}

func mustCreate(t *testing.T, s *users.Service, req users.NewUser) users.View {
	t.Helper()
	v, err := s.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("Create(%q): %v", req.Name, err)
	}
	return v
}

// wantProblem checks that err maps to status (and, if field is not empty,
// names that field).
func wantProblem(t *testing.T, err error, status int, field string) {
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
}

func ptr[T any](v T) *T { return &v }

func TestNormalizeName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice", "alice", true},
		{"ALICE.Smith+ops@Example-1_x", "alice.smith+ops@example-1_x", true},
		{"0", "0", true},
		{strings.Repeat("a", users.MaxNameLen), strings.Repeat("a", users.MaxNameLen), true},
		{strings.Repeat("A", users.MaxNameLen), strings.Repeat("a", users.MaxNameLen), true},
		{"", "", false},
		{".", "", false},
		{"..", "", false},
		{"a.", "a.", true},
		{strings.Repeat("a", users.MaxNameLen+1), "", false},
		{"al ice", "", false},
		{"al/ice", "", false},
		{"al:ice", "", false},
		{"al\x00ice", "", false},
		{"al\nice", "", false},
		{"élise", "", false},
		{"Ålice", "", false},
		// KELVIN SIGN lowercases to an ASCII "k": it must not slip in as
		// another spelling of "kelvin".
		{"\u212Aelvin", "", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := users.NormalizeName(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("NormalizeName = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("NormalizeName = %q, want an error", got)
			}
		})
	}
}

func TestCreateStoresBcryptNotClearText(t *testing.T) {
	s, st := newService(t)
	v := mustCreate(t, s, users.NewUser{Name: "Alice", Password: goodPass, Roles: []string{"Admin", "ops", "admin"}, TokenLogin: true})

	if v.Name != "alice" || !v.TokenLogin || v.Disabled || !v.CreatedAt.Equal(epoch) || !v.UpdatedAt.Equal(epoch) {
		t.Fatalf("view = %+v", v)
	}
	if want := []string{"admin", "ops"}; strings.Join(v.Roles, ",") != strings.Join(want, ",") {
		t.Fatalf("roles = %v, want %v", v.Roles, want)
	}

	raw, err := st.GetUser(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if raw.PasswordHash == goodPass || strings.Contains(raw.PasswordHash, goodPass) {
		t.Fatal("password stored in clear")
	}
	if err := bcrypt.CompareHashAndPassword([]byte(raw.PasswordHash), []byte(goodPass)); err != nil {
		t.Fatalf("stored hash does not verify the password: %v", err)
	}
	if cost, err := bcrypt.Cost([]byte(raw.PasswordHash)); err != nil || cost != testCost {
		t.Fatalf("bcrypt cost = %d, %v; want %d", cost, err, testCost)
	}

	// No view ever carries the hash.
	got, err := s.Get(context.Background(), "ALICE")
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, view := range map[string]any{"create": v, "get": got, "list": list} {
		b, err := json.Marshal(view)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "password") || strings.Contains(string(b), raw.PasswordHash) || strings.Contains(string(b), "$2") {
			t.Errorf("%s view leaks the password hash: %s", name, b)
		}
	}
	var keys map[string]any
	b, _ := json.Marshal(v)
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		if strings.Contains(k, "password") {
			t.Errorf("view has key %q", k)
		}
	}
}

func TestCreateDuplicateIsConflict(t *testing.T) {
	s, _ := newService(t)
	mustCreate(t, s, users.NewUser{Name: "alice", Password: goodPass})
	for _, name := range []string{"alice", "ALICE"} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Create(context.Background(), users.NewUser{Name: name, Password: "another password"})
			wantProblem(t, err, http.StatusConflict, "name")
		})
	}
}

func TestCreateRejectsBadInput(t *testing.T) {
	tooManyRoles := make([]string, 17)
	for i := range tooManyRoles {
		tooManyRoles[i] = fmt.Sprintf("role%d", i)
	}
	tests := []struct {
		name  string
		req   users.NewUser
		field string
	}{
		{"empty name", users.NewUser{Name: "", Password: goodPass}, "name"},
		{"bad name", users.NewUser{Name: "bob smith", Password: goodPass}, "name"},
		{"long name", users.NewUser{Name: strings.Repeat("b", 65), Password: goodPass}, "name"},
		{"short password", users.NewUser{Name: "bob", Password: "1234567"}, "password"},
		{"long password", users.NewUser{Name: "bob", Password: strings.Repeat("p", 73)}, "password"},
		{"empty role", users.NewUser{Name: "bob", Password: goodPass, Roles: []string{""}}, "roles"},
		{"bad role", users.NewUser{Name: "bob", Password: goodPass, Roles: []string{"ad min"}}, "roles"},
		{"too many roles", users.NewUser{Name: "bob", Password: goodPass, Roles: tooManyRoles}, "roles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st := newService(t)
			_, err := s.Create(context.Background(), tt.req)
			wantProblem(t, err, http.StatusBadRequest, tt.field)
			if all, err := st.ListUsers(context.Background()); err != nil || len(all) != 0 {
				t.Fatalf("users after refused create = %v, %v", all, err)
			}
		})
	}

	t.Run("password limits count characters and bytes", func(t *testing.T) {
		s, _ := newService(t)
		// 8 characters of 2 bytes: long enough; 72 bytes: not too long.
		mustCreate(t, s, users.NewUser{Name: "u1", Password: "éééééééé"})
		mustCreate(t, s, users.NewUser{Name: "u2", Password: strings.Repeat("p", 72)})
	})
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	newUser := func(t *testing.T) (*users.Service, *boltstore.Store, *users.Authenticator) {
		s, st := newService(t)
		mustCreate(t, s, users.NewUser{Name: "alice", Password: goodPass, Roles: []string{"ops"}})
		auth, err := users.NewAuthenticator(st, bruteforce.New(st, bruteforce.Limits{}), testCost)
		if err != nil {
			t.Fatal(err)
		}
		return s, st, auth
	}

	t.Run("token_login toggle leaves password and roles alone", func(t *testing.T) {
		s, st, auth := newUser(t)
		before, _ := st.GetUser(ctx, "alice")
		v, err := s.Update(ctx, "Alice", users.Changes{TokenLogin: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		if !v.TokenLogin || strings.Join(v.Roles, ",") != "ops" {
			t.Fatalf("view = %+v", v)
		}
		after, _ := st.GetUser(ctx, "alice")
		if after.PasswordHash != before.PasswordHash {
			t.Fatal("password hash changed by a token_login update")
		}
		if _, err := auth.Authenticate(ctx, "alice", goodPass, ""); err != nil {
			t.Fatalf("old password no longer works: %v", err)
		}
		v, err = s.Update(ctx, "alice", users.Changes{TokenLogin: ptr(false)})
		if err != nil || v.TokenLogin {
			t.Fatalf("toggle back: %+v, %v", v, err)
		}
	})

	t.Run("new password works and old fails", func(t *testing.T) {
		s, _, auth := newUser(t)
		if _, err := s.Update(ctx, "alice", users.Changes{Password: ptr("brand new secret")}); err != nil {
			t.Fatal(err)
		}
		if _, err := auth.Authenticate(ctx, "alice", "brand new secret", ""); err != nil {
			t.Fatalf("new password refused: %v", err)
		}
		if _, err := auth.Authenticate(ctx, "alice", goodPass, ""); !errors.Is(err, apierr.ErrBadCredentials) {
			t.Fatalf("old password: err = %v, want ErrBadCredentials", err)
		}
	})

	t.Run("roles and disabled", func(t *testing.T) {
		s, _, _ := newUser(t)
		v, err := s.Update(ctx, "alice", users.Changes{Roles: &[]string{}, Disabled: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Roles) != 0 || v.Roles == nil || !v.Disabled {
			t.Fatalf("view = %+v", v)
		}
	})

	t.Run("bad input is refused and changes nothing", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			c     users.Changes
			field string
		}{
			{"short password", users.Changes{Password: ptr("short"), TokenLogin: ptr(true)}, "password"},
			{"bad role", users.Changes{Roles: &[]string{"no way"}, TokenLogin: ptr(true)}, "roles"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, st, _ := newUser(t)
				before, _ := st.GetUser(ctx, "alice")
				_, err := s.Update(ctx, "alice", tc.c)
				wantProblem(t, err, http.StatusBadRequest, tc.field)
				after, _ := st.GetUser(ctx, "alice")
				if after.PasswordHash != before.PasswordHash || after.TokenLogin || strings.Join(after.Roles, ",") != "ops" {
					t.Fatalf("refused update changed the user: %+v", after)
				}
			})
		}
	})

	t.Run("unknown user is 404", func(t *testing.T) {
		s, _, _ := newUser(t)
		_, err := s.Update(ctx, "nobody", users.Changes{TokenLogin: ptr(true)})
		wantProblem(t, err, http.StatusNotFound, "")
	})
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	mustCreate(t, s, users.NewUser{Name: "alice", Password: goodPass})
	mustCreate(t, s, users.NewUser{Name: "bob", Password: goodPass})

	if err := s.Delete(ctx, "Alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("store still has the user: %v", err)
	}
	_, err := s.Get(ctx, "alice")
	wantProblem(t, err, http.StatusNotFound, "")
	wantProblem(t, s.Delete(ctx, "alice"), http.StatusNotFound, "")

	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "bob" {
		t.Fatalf("List = %+v, %v; want only bob", list, err)
	}
}

// ---- web sessions ----

// sessionEnv is a Service whose updates end web sessions kept by a real
// session.Manager on the same real store.
type sessionEnv struct {
	svc *users.Service
	st  *boltstore.Store
	m   *session.Manager
}

func newSessionEnv(t *testing.T) *sessionEnv {
	t.Helper()
	s, st := newService(t)
	m := session.New(st, st, session.Options{})
	s.SetSessions(m)
	mustCreate(t, s, users.NewUser{Name: "alice", Password: goodPass, TokenLogin: true})
	mustCreate(t, s, users.NewUser{Name: "bob", Password: goodPass})
	return &sessionEnv{svc: s, st: st, m: m}
}

// signIn starts a session for user and returns a request carrying it.
func (e *sessionEnv) signIn(t *testing.T, user string) *http.Request {
	t.Helper()
	u, err := e.st.GetUser(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	value, err := e.m.Start(context.Background(), u, "192.0.2.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.NewRequest(http.MethodGet, "http://gw.example/", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.AddCookie(&http.Cookie{Name: session.CookieNamePlain, Value: value})
	return r
}

// signedIn reports whether the request's session is still good.
func (e *sessionEnv) signedIn(t *testing.T, r *http.Request) bool {
	t.Helper()
	_, err := e.m.Load(context.Background(), r)
	if err != nil && !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("Load: %v", err)
	}
	return err == nil
}

func TestUpdateEndsWebSessions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		c     users.Changes
		ended bool
	}{
		{"new password", users.Changes{Password: ptr("brand new secret")}, true},
		{"disabled", users.Changes{Disabled: ptr(true)}, true},
		{"token_login off", users.Changes{TokenLogin: ptr(false)}, true},
		{"token_login stays on", users.Changes{TokenLogin: ptr(true)}, false},
		{"roles", users.Changes{Roles: &[]string{"ops"}}, false},
		{"enabled", users.Changes{Disabled: ptr(false)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSessionEnv(t)
			a1, a2, b := e.signIn(t, "alice"), e.signIn(t, "alice"), e.signIn(t, "bob")
			if _, err := e.svc.Update(ctx, "alice", tc.c); err != nil {
				t.Fatal(err)
			}
			// Gone from the store (not only refused by Load, which
			// would delete a disabled user's session itself).
			for _, r := range []*http.Request{a1, a2} {
				_, err := e.st.GetSession(ctx, sha256.Sum256([]byte(session.CookieValue(r))))
				if gone := errors.Is(err, store.ErrNotFound); gone != tc.ended {
					t.Fatalf("session in the store after the update: err %v, want gone %v", err, tc.ended)
				}
			}
			for _, r := range []*http.Request{a1, a2} {
				if got := e.signedIn(t, r); got == tc.ended {
					t.Fatalf("alice signed in after the update: %v, want %v", got, !tc.ended)
				}
			}
			if !e.signedIn(t, b) {
				t.Fatal("bob's session ended with alice's update")
			}
		})
	}
}

func TestTokenLoginOnDoesNotEndSessions(t *testing.T) {
	ctx := context.Background()
	e := newSessionEnv(t)
	r := e.signIn(t, "bob") // token_login off
	if _, err := e.svc.Update(ctx, "bob", users.Changes{TokenLogin: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if !e.signedIn(t, r) {
		t.Fatal("turning token_login on ended the session")
	}
	if _, err := e.svc.Update(ctx, "bob", users.Changes{TokenLogin: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if e.signedIn(t, r) {
		t.Fatal("turning token_login off kept the session")
	}
}

func TestDeleteEndsWebSessions(t *testing.T) {
	e := newSessionEnv(t)
	r := e.signIn(t, "alice")
	if err := e.svc.Delete(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if e.signedIn(t, r) {
		t.Fatal("a deleted user is still signed in")
	}
}

// When the sessions cannot be ended the admin gets a 503, and the user
// record change stays.
func TestUpdateReportsFailureToEndSessions(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	mustCreate(t, s, users.NewUser{Name: "alice", Password: goodPass})
	// The sessions live in a store that has gone away.
	down := openStore(t)
	if err := down.Close(); err != nil {
		t.Fatal(err)
	}
	s.SetSessions(session.New(down, st, session.Options{}))

	_, err := s.Update(ctx, "alice", users.Changes{Disabled: ptr(true)})
	wantProblem(t, err, http.StatusServiceUnavailable, "")
	if u, err := st.GetUser(ctx, "alice"); err != nil || !u.Disabled {
		t.Fatalf("user after the update: %+v, %v; want it disabled", u, err)
	}
	// Changes that end no session do not need the session store.
	if _, err := s.Update(ctx, "alice", users.Changes{Roles: &[]string{"ops"}}); err != nil {
		t.Fatal(err)
	}
}

// ---- Authenticator ----

type authEnv struct {
	st   *boltstore.Store
	svc  *users.Service
	auth *users.Authenticator
}

func newAuthEnv(t *testing.T, l bruteforce.Limits) *authEnv {
	t.Helper()
	s, st := newService(t)
	mustCreate(t, s, users.NewUser{Name: "alice", Password: goodPass})
	mustCreate(t, s, users.NewUser{Name: "bob", Password: goodPass})
	mustCreate(t, s, users.NewUser{Name: "dave", Password: goodPass, Disabled: true})
	auth, err := users.NewAuthenticator(st, bruteforce.New(st, l), testCost)
	if err != nil {
		t.Fatal(err)
	}
	return &authEnv{st: st, svc: s, auth: auth}
}

// wantRateLimited checks that err is a 429 with a Retry-After.
func wantRateLimited(t *testing.T, err error) {
	t.Helper()
	var rl *apierr.RateLimited
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v, want *apierr.RateLimited", err)
	}
	if p := apierr.For(err); p.Status != http.StatusTooManyRequests || p.RetryAfter <= 0 || rl.RetryAfter <= 0 {
		t.Fatalf("problem = %+v, want 429 with RetryAfter > 0", p)
	}
}

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		name, user, password string
		wantErr              error
		status               int
	}{
		{"right password", "alice", goodPass, nil, 0},
		{"name case folded", "ALICE", goodPass, nil, 0},
		{"wrong password", "alice", "wrong password", apierr.ErrBadCredentials, http.StatusUnauthorized},
		{"empty password", "alice", "", apierr.ErrBadCredentials, http.StatusUnauthorized},
		{"unknown user", "mallory", goodPass, apierr.ErrBadCredentials, http.StatusUnauthorized},
		{"disabled user", "dave", goodPass, apierr.ErrForbidden, http.StatusForbidden},
		{"disabled user wrong password", "dave", "wrong password", apierr.ErrBadCredentials, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAuthEnv(t, bruteforce.Limits{})
			u, err := e.auth.Authenticate(context.Background(), tt.user, tt.password, "192.0.2.1")
			if tt.wantErr == nil {
				if err != nil || u.Name != strings.ToLower(tt.user) {
					t.Fatalf("Authenticate = %q, %v", u.Name, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if p := apierr.For(err); p.Status != tt.status {
				t.Fatalf("status = %d, want %d", p.Status, tt.status)
			}
			if u.Name != "" {
				t.Fatalf("failed authentication returned user %q", u.Name)
			}
		})
	}
}

func TestAccountLockout(t *testing.T) {
	ctx := context.Background()
	const perAccount = 3
	limits := bruteforce.Limits{PerAccount: perAccount, PerAddress: 1000, Window: time.Hour}

	t.Run("locked even with the right password", func(t *testing.T) {
		e := newAuthEnv(t, limits)
		for i := range perAccount {
			// Each attempt from its own address: the account is what locks.
			addr := fmt.Sprintf("198.51.100.%d", i+1)
			if _, err := e.auth.Authenticate(ctx, "alice", "wrong password", addr); !errors.Is(err, apierr.ErrBadCredentials) {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
		}
		_, err := e.auth.Authenticate(ctx, "alice", goodPass, "203.0.113.9")
		wantRateLimited(t, err)
		_, err = e.auth.Authenticate(ctx, "Alice", goodPass, "")
		wantRateLimited(t, err)
		// Another account is not affected.
		if _, err := e.auth.Authenticate(ctx, "bob", goodPass, "198.51.100.1"); err != nil {
			t.Fatalf("bob: %v", err)
		}
	})

	t.Run("unknown accounts lock too", func(t *testing.T) {
		e := newAuthEnv(t, limits)
		for range perAccount {
			_, _ = e.auth.Authenticate(ctx, "mallory", "x", "")
		}
		_, err := e.auth.Authenticate(ctx, "mallory", "x", "")
		wantRateLimited(t, err)
	})

	t.Run("success clears the account counter", func(t *testing.T) {
		e := newAuthEnv(t, limits)
		fail := func(n int) {
			t.Helper()
			for range n {
				if _, err := e.auth.Authenticate(ctx, "alice", "wrong password", ""); !errors.Is(err, apierr.ErrBadCredentials) {
					t.Fatal(err)
				}
			}
		}
		fail(perAccount - 1)
		if _, err := e.auth.Authenticate(ctx, "alice", goodPass, ""); err != nil {
			t.Fatal(err)
		}
		// Without the clear, these would add up to more than the limit.
		fail(perAccount - 1)
		if _, err := e.auth.Authenticate(ctx, "alice", goodPass, ""); err != nil {
			t.Fatalf("counter was not cleared by the success: %v", err)
		}
	})
}

func TestAddressLockout(t *testing.T) {
	ctx := context.Background()
	const perAddress = 4
	limits := bruteforce.Limits{PerAccount: 1000, PerAddress: perAddress, Window: time.Hour}
	const attacker, other = "203.0.113.66", "2001:db8::1"

	tests := []struct {
		name string
		// fail makes the i-th failed attempt from the attacker's address.
		fail func(e *authEnv, i int) error
	}{
		{"different account names", func(e *authEnv, i int) error {
			_, err := e.auth.Authenticate(ctx, fmt.Sprintf("user%d", i), "wrong password", attacker)
			return err
		}},
		{"wrong passwords for real accounts", func(e *authEnv, i int) error {
			_, err := e.auth.Authenticate(ctx, []string{"alice", "bob"}[i%2], "wrong password", attacker)
			return err
		}},
		{"malformed names", func(e *authEnv, i int) error {
			name := []string{"", "bad name!", strings.Repeat("x", 10000), "nul\x00byte", "\xff\xfe"}[i%5]
			_, err := e.auth.Authenticate(ctx, name, goodPass, attacker)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAuthEnv(t, limits)
			for i := range perAddress {
				if err := tt.fail(e, i); !errors.Is(err, apierr.ErrBadCredentials) {
					t.Fatalf("attempt %d: err = %v, want ErrBadCredentials", i+1, err)
				}
			}
			_, err := e.auth.Authenticate(ctx, "alice", goodPass, attacker)
			wantRateLimited(t, err)
			if _, err := e.auth.Authenticate(ctx, "alice", goodPass, other); err != nil {
				t.Fatalf("another address is locked too: %v", err)
			}
		})
	}
}

func TestAuthenticateStoreUnavailable(t *testing.T) {
	e := newAuthEnv(t, bruteforce.Limits{})
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "mallory", "bad name!"} {
		t.Run(name, func(t *testing.T) {
			_, err := e.auth.Authenticate(context.Background(), name, goodPass, "192.0.2.1")
			if p := apierr.For(err); p.Status != http.StatusServiceUnavailable {
				t.Fatalf("status = %d (%v), want 503", p.Status, err)
			}
		})
	}
}

// Concurrent wrong passwords cannot all slip past the limit before any is
// counted: every guess is counted before its password is checked.
func TestConcurrentGuessesRespectTheLimit(t *testing.T) {
	st := openStore(t)
	svc := users.NewService(st, 4, nil)
	if _, err := svc.Create(context.Background(), users.NewUser{Name: "alice", Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	a, err := users.NewAuthenticator(st, bruteforce.New(st, bruteforce.Limits{PerAccount: 5, PerAddress: 1000}), 4)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var checked atomic.Int64
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Authenticate(context.Background(), "alice", "wrong password", "")
			if errors.Is(err, apierr.ErrBadCredentials) {
				checked.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := checked.Load(); n > 5 {
		t.Fatalf("%d wrong passwords were checked, limit 5", n)
	}
}
