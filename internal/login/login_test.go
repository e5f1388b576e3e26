package login_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/login"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/users"
)

const (
	backendUser     = "alice"
	backendPassword = "secret"
	localPassword   = "correct horse"
	addr            = "198.51.100.7"
	perAccount      = 3
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// backend is the legacy backend: alice/secret gets 200, anything else 401,
// unless status overrides the answer. It counts the requests it sees.
type backend struct {
	srv    *httptest.Server
	hits   atomic.Int64
	status atomic.Int64
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if s := b.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		if u, p, ok := r.BasicAuth(); ok && u == backendUser && p == backendPassword {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// env is a store with both identity sources on it.
type env struct {
	st      *boltstore.Store
	now     time.Time
	backend *backend
	source  *login.BackendSource
	local   *users.Authenticator
	sources *login.Sources
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, now: t0, backend: newBackend(t)}
	e.source = &login.BackendSource{
		URL: e.backend.srv.URL, Client: e.backend.srv.Client(), Store: st,
		Limiter:      bruteforce.New(st, bruteforce.Limits{PerAccount: perAccount, PerAddress: 100, Window: 15 * time.Minute}),
		DefaultRoles: []string{"legacy"}, Now: func() time.Time { return e.now },
	}
	if e.local, err = users.NewAuthenticator(st, bruteforce.New(st, bruteforce.Limits{}), 4); err != nil {
		t.Fatal(err)
	}
	e.sources, err = login.NewSources(login.Local, map[string]login.Authenticator{login.Local: e.local, login.Backend: e.source})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// localUser creates one of the gateway's own users.
func (e *env) localUser(t *testing.T, name string, roles ...string) {
	t.Helper()
	if _, err := users.NewService(e.st, 4, nil).Create(context.Background(), users.NewUser{Name: name, Password: localPassword, Roles: roles, TokenLogin: true}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) backendLogin(name, password string) (store.User, error) {
	return e.source.Authenticate(context.Background(), name, password, addr)
}

func (e *env) failures(t *testing.T, key string) int64 {
	t.Helper()
	n, err := e.st.FailureCount(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return n
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

func wantNoUser(t *testing.T, e *env, name string) {
	t.Helper()
	if _, err := e.st.GetUser(context.Background(), name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("user %q was provisioned (GetUser err = %v)", name, err)
	}
}

func TestSources(t *testing.T) {
	tests := []struct {
		name, kind, user, password string
		status                     int    // 0: accepted
		source                     string // the accepted user's Source
	}{
		{"default is local", "", "carol", localPassword, 0, ""},
		{"local by name", login.Local, "carol", localPassword, 0, ""},
		{"backend by name", login.Backend, backendUser, backendPassword, 0, login.Backend},
		{"default does not ask the backend", "", backendUser, backendPassword, http.StatusUnauthorized, ""},
		{"unknown name", "ldap", "carol", localPassword, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.localUser(t, "carol")
			u, err := e.sources.Authenticate(context.Background(), tt.kind, tt.user, tt.password, addr)
			if tt.status != 0 {
				wantStatus(t, err, tt.status)
				var fe *apierr.FieldError
				if tt.status == http.StatusBadRequest && (!errors.As(err, &fe) || fe.Field != "auth-user-type") {
					t.Fatalf("err = %v, want a field error on auth-user-type", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if u.Name != tt.user || u.Source != tt.source {
				t.Fatalf("user = %+v, want %s from source %q", u, tt.user, tt.source)
			}
		})
	}
}

func TestSourcesDefault(t *testing.T) {
	e := newEnv(t)
	e.localUser(t, "carol")
	if u, err := e.sources.Default().Authenticate(context.Background(), "carol", localPassword, addr); err != nil || u.Name != "carol" {
		t.Fatalf("Default().Authenticate = %+v, %v", u, err)
	}
	if _, err := login.NewSources(login.Backend, map[string]login.Authenticator{login.Local: e.local}); err == nil {
		t.Fatal("NewSources accepted a default that is not configured")
	}
}

func TestBackendProvisionsOnFirstLogin(t *testing.T) {
	e := newEnv(t)
	u, err := e.backendLogin(backendUser, backendPassword)
	if err != nil {
		t.Fatalf("first login: %v", err)
	}
	stored, err := e.st.GetUser(context.Background(), backendUser)
	if err != nil {
		t.Fatalf("user not provisioned: %v", err)
	}
	for _, got := range []store.User{u, stored} {
		if got.Name != backendUser || got.Source != login.Backend || !got.TokenLogin || got.Disabled ||
			got.PasswordHash != "" || !slices.Equal(got.Roles, []string{"legacy"}) || !got.CreatedAt.Equal(t0) {
			t.Fatalf("provisioned user = %+v", got)
		}
	}

	// The second login reuses the record, with what an administrator
	// changed in it.
	if _, err := e.st.UpdateUser(context.Background(), backendUser, func(u *store.User) error {
		u.Roles = []string{"dev"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.now = t0.Add(time.Hour)
	again, err := e.backendLogin(backendUser, backendPassword)
	if err != nil {
		t.Fatalf("second login: %v", err)
	}
	if !again.CreatedAt.Equal(t0) || !slices.Equal(again.Roles, []string{"dev"}) {
		t.Fatalf("second login got %+v, want the existing record", again)
	}
	if all, _ := e.st.ListUsers(context.Background()); len(all) != 1 {
		t.Fatalf("%d users after two logins, want 1", len(all))
	}
}

func TestBackendWrongPasswordIsCounted(t *testing.T) {
	e := newEnv(t)
	for i := range perAccount {
		_, err := e.backendLogin(backendUser, "guess")
		wantStatus(t, err, http.StatusUnauthorized)
		if !errors.Is(err, apierr.ErrBadCredentials) {
			t.Fatalf("err = %v, want ErrBadCredentials", err)
		}
		if n := e.failures(t, "acct:"+backendUser); n != int64(i+1) {
			t.Fatalf("after %d failures the account counter is %d", i+1, n)
		}
	}
	wantNoUser(t, e, backendUser)
	hits := e.backend.hits.Load()
	_, err := e.backendLogin(backendUser, backendPassword)
	wantStatus(t, err, http.StatusTooManyRequests)
	if e.backend.hits.Load() != hits {
		t.Fatal("a locked account was still checked with the backend")
	}
	wantNoUser(t, e, backendUser)
}

func TestBackendUnavailable(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(*backend)
	}{
		{"backend answers 500", func(b *backend) { b.status.Store(http.StatusInternalServerError) }},
		{"backend answers 302", func(b *backend) { b.status.Store(http.StatusFound) }},
		{"backend is down", func(b *backend) { b.srv.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.breakIt(e.backend)
			_, err := e.backendLogin(backendUser, backendPassword)
			wantStatus(t, err, http.StatusServiceUnavailable)
			if !errors.Is(err, apierr.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if n := e.failures(t, "acct:"+backendUser); n != 0 {
				t.Fatalf("an unavailable backend counted %d failures", n)
			}
			wantNoUser(t, e, backendUser)
		})
	}
}

func TestBackendDisabledUser(t *testing.T) {
	e := newEnv(t)
	if _, err := e.backendLogin(backendUser, backendPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.UpdateUser(context.Background(), backendUser, func(u *store.User) error {
		u.Disabled = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := e.backendLogin(backendUser, backendPassword)
	wantStatus(t, err, http.StatusForbidden)
}

// A backend account that happens to share its name with one of the
// gateway's own users must not log in as that user.
func TestBackendDoesNotTakeOverALocalUser(t *testing.T) {
	e := newEnv(t)
	e.localUser(t, backendUser, "admin")
	_, err := e.backendLogin(backendUser, backendPassword)
	wantStatus(t, err, http.StatusForbidden)
	u, err := e.st.GetUser(context.Background(), backendUser)
	if err != nil || u.Source != "" || u.PasswordHash == "" {
		t.Fatalf("the local user changed: %+v, %v", u, err)
	}
}

func TestBackendBadNameIsNotSent(t *testing.T) {
	for _, name := range []string{"al ice", "alice/../admin", "\u212alice", "", "al:ice"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			_, err := e.backendLogin(name, backendPassword)
			wantStatus(t, err, http.StatusUnauthorized)
			if n := e.backend.hits.Load(); n != 0 {
				t.Fatalf("the backend was asked %d times", n)
			}
			if n := e.failures(t, "addr:"+addr); n != 1 {
				t.Fatalf("the address counter is %d, want 1", n)
			}
		})
	}
}

func TestProvisionedUserCannotLogInLocally(t *testing.T) {
	e := newEnv(t)
	if _, err := e.backendLogin(backendUser, backendPassword); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{backendPassword, ""} {
		_, err := e.sources.Authenticate(context.Background(), login.Local, backendUser, pw, addr)
		wantStatus(t, err, http.StatusUnauthorized)
	}
}

// A client that hangs up while the backend checks its password still has
// the wrong guess counted: the backend saw the password, so hanging up
// must not turn the guess into an error that counts nothing.
func TestBackendGuessCountedWhenTheClientHangsUp(t *testing.T) {
	e := newEnv(t)
	arrived, answer := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-answer
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(slow.Close)
	e.source.URL, e.source.Client = slow.URL, slow.Client()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
		time.Sleep(50 * time.Millisecond) // let the cancellation reach the call
		close(answer)
	}()
	_, err := e.source.Authenticate(ctx, backendUser, "guess", addr)
	if !errors.Is(err, apierr.ErrBadCredentials) {
		t.Fatalf("err = %v, want ErrBadCredentials", err)
	}
	if n := e.failures(t, "acct:"+backendUser); n != 1 {
		t.Fatalf("the account counter is %d after a wrong guess whose client hung up, want 1", n)
	}
}

// TestBackendRedirectIsNotFollowed: a backend that redirects (to the same
// host, where Go's default policy would resend the password) never sees
// the credentials a second time; the login fails (503, not counted against
// the user) and the redirect is logged once per streak, with the status and
// the Location's host, never the password or the Location's query.
func TestBackendRedirectIsNotFollowed(t *testing.T) {
	e := newEnv(t)
	var followed atomic.Int64
	var redirecting atomic.Bool
	redirecting.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			w.WriteHeader(http.StatusOK)
			return
		}
		if redirecting.Load() {
			http.Redirect(w, r, "/elsewhere?leak="+backendPassword, http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	e.source.URL, e.source.Client = srv.URL, srv.Client()
	core, logs := observer.New(zap.InfoLevel)
	e.source.Logger = zap.New(core)
	for range 3 {
		_, err := e.backendLogin(backendUser, backendPassword)
		wantStatus(t, err, http.StatusServiceUnavailable)
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times, with the password", n)
	}
	if n := e.failures(t, "acct:"+backendUser); n != 0 {
		t.Fatalf("redirects counted %d failures against the user", n)
	}
	warns := logs.FilterLevelExact(zap.WarnLevel).All()
	host := strings.TrimPrefix(srv.URL, "http://")
	if len(warns) != 1 || warns[0].ContextMap()["status"] != int64(http.StatusFound) || warns[0].ContextMap()["location_host"] != host {
		t.Fatalf("warnings %v, want one with status 302 and location_host %s", warns, host)
	}
	if strings.Contains(fmt.Sprint(logs.All()), backendPassword) {
		t.Fatal("the password reached the log")
	}
	// Once it answers without a redirect the streak ends; a new one warns.
	redirecting.Store(false)
	if _, err := e.backendLogin(backendUser, backendPassword); err != nil {
		t.Fatal(err)
	}
	redirecting.Store(true)
	_, err := e.backendLogin(backendUser, backendPassword)
	wantStatus(t, err, http.StatusServiceUnavailable)
	if n := logs.FilterLevelExact(zap.WarnLevel).Len(); n != 2 {
		t.Fatalf("%d warnings after a second streak, want 2", n)
	}
}

func TestPlainRemote(t *testing.T) {
	for raw, want := range map[string]bool{
		"http://backend.example/check": true, "http://10.0.0.5:8080/auth": true,
		"https://backend.example/check": false, "http://127.0.0.1:9000/auth": false, "http://localhost/auth": false,
		"http://[::1]/auth": false,
	} {
		if got := login.PlainRemote(raw); got != want {
			t.Errorf("PlainRemote(%q) = %v, want %v", raw, got, want)
		}
	}
}
