package session_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/store/redisstore"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// redisServer is the Redis of the tests that run on both stores; each
// store on it has a prefix of its own.
var (
	redisServer *redistest.Server
	prefixes    atomic.Uint64
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	srv, stop, err := redistest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	redisServer = srv
	return m.Run()
}

// clock is a manager's time, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openBolt(t *testing.T) store.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openRedis(t *testing.T) store.Store {
	t.Helper()
	st, err := redisstore.Open(redisServer.URL(), redisstore.Options{Prefix: fmt.Sprintf("sess%d", prefixes.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// env is a manager on a real store with users alice and bob.
type env struct {
	st    store.Store
	m     *session.Manager
	clock *clock
}

// onStores runs test on a fresh embedded store and a fresh Redis store.
// The stores keep real time; the manager's clock is the test's, so the
// manager's own idle and absolute checks are what the tests exercise.
func onStores(t *testing.T, o session.Options, test func(t *testing.T, e *env)) {
	for name, open := range map[string]func(*testing.T) store.Store{"bolt": openBolt, "redis": openRedis} {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			for _, name := range []string{"alice", "bob"} {
				if err := st.CreateUser(t.Context(), store.User{Name: name}); err != nil {
					t.Fatal(err)
				}
			}
			c := newClock()
			o := o
			o.Now = c.Now
			test(t, &env{st: st, m: session.New(st, st, o), clock: c})
		})
	}
}

// start signs user in and returns a request that carries the cookie.
func (e *env) start(t *testing.T, user string) *http.Request {
	t.Helper()
	value, err := e.m.Start(t.Context(), store.User{Name: user}, "192.0.2.1", "test browser")
	if err != nil {
		t.Fatal(err)
	}
	return withCookie(session.CookieNamePlain, value)
}

func withCookie(name, value string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://gw.example/", nil)
	r.AddCookie(&http.Cookie{Name: name, Value: value})
	return r
}

func (e *env) load(t *testing.T, r *http.Request) *session.Active {
	t.Helper()
	a, err := e.m.Load(t.Context(), r)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return a
}

func (e *env) wantNoSession(t *testing.T, r *http.Request) {
	t.Helper()
	if a, err := e.m.Load(t.Context(), r); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("Load = %+v, %v; want ErrNoSession", a, err)
	}
}

// stored returns the store's record of the request's session.
func (e *env) stored(t *testing.T, r *http.Request) (store.Session, error) {
	t.Helper()
	return e.st.GetSession(t.Context(), sha256.Sum256([]byte(session.CookieValue(r))))
}

func (e *env) wantDeleted(t *testing.T, r *http.Request) {
	t.Helper()
	if s, err := e.stored(t, r); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the store still has the session: %+v, %v", s, err)
	}
}

func TestStartAndLoad(t *testing.T) {
	onStores(t, session.Options{}, func(t *testing.T, e *env) {
		ua := strings.Repeat("é", 200) // 400 bytes
		value, err := e.m.Start(t.Context(), store.User{Name: "alice"}, "192.0.2.9", ua)
		if err != nil {
			t.Fatal(err)
		}
		if len(value) != 43 || strings.ContainsAny(value, "+/=") {
			t.Fatalf("cookie value %q is not 32 bytes of base64url", value)
		}
		other, err := e.m.Start(t.Context(), store.User{Name: "alice"}, "", "")
		if err != nil || other == value {
			t.Fatalf("second Start = %q, %v", other, err)
		}
		r := withCookie(session.CookieNamePlain, value)
		a := e.load(t, r)
		if a.User.Name != "alice" || a.Session.User != "alice" || a.Session.IP != "192.0.2.9" {
			t.Fatalf("Load = %+v", a)
		}
		if len(a.Session.UserAgent) > 256 || !strings.HasPrefix(ua, a.Session.UserAgent) || len(a.Session.UserAgent) < 255 {
			t.Fatalf("user agent kept as %d bytes %q", len(a.Session.UserAgent), a.Session.UserAgent)
		}
		if idle, abs := e.m.Lifetimes(); idle != 30*time.Minute || abs != 12*time.Hour {
			t.Fatalf("Lifetimes = %v, %v", idle, abs)
		}
		if want := e.clock.Now().Add(12 * time.Hour); !a.Session.ExpiresAt.Equal(want) {
			t.Fatalf("ExpiresAt = %v, want %v", a.Session.ExpiresAt, want)
		}
		// The store holds the hash, not the cookie value.
		rec, err := e.stored(t, r)
		if err != nil || rec.ID != sha256.Sum256([]byte(value)) || strings.Contains(fmt.Sprintf("%+v", rec), value) {
			t.Fatalf("stored %+v, %v", rec, err)
		}
		// CSRF.
		csrf := a.CSRF()
		if len(csrf) != 43 || csrf == value {
			t.Fatalf("CSRF secret %q", csrf)
		}
		if !a.CheckCSRF(csrf) || a.CheckCSRF("") || a.CheckCSRF(csrf[:42]) || a.CheckCSRF(csrf+"x") ||
			a.CheckCSRF(e.load(t, withCookie(session.CookieNamePlain, other)).CSRF()) {
			t.Fatal("CheckCSRF accepts a wrong token or refuses the right one")
		}
	})
}

func TestStartUnknownUser(t *testing.T) {
	onStores(t, session.Options{}, func(t *testing.T, e *env) {
		if _, err := e.m.Start(t.Context(), store.User{Name: "nobody"}, "", ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Start for an unknown user: %v, want ErrNotFound", err)
		}
	})
}

func TestIdleExpiry(t *testing.T) {
	onStores(t, session.Options{}, func(t *testing.T, e *env) {
		r := e.start(t, "alice")
		// Requests 29 minutes apart keep it alive well past 30 minutes.
		for range 3 {
			e.clock.Advance(29 * time.Minute)
			e.load(t, r)
		}
		e.clock.Advance(30 * time.Minute)
		e.wantNoSession(t, r)
		e.wantDeleted(t, r)
	})
}

func TestAbsoluteExpiry(t *testing.T) {
	onStores(t, session.Options{Idle: time.Hour, Absolute: 2 * time.Hour}, func(t *testing.T, e *env) {
		r := e.start(t, "alice")
		for _, d := range []time.Duration{50 * time.Minute, 50 * time.Minute, 19 * time.Minute} {
			e.clock.Advance(d)
			e.load(t, r) // up to 1h59m: still in
		}
		e.clock.Advance(time.Minute)
		e.wantNoSession(t, r) // 2h, however busy
		e.wantDeleted(t, r)
	})
}

func TestDisabledUser(t *testing.T) {
	onStores(t, session.Options{}, func(t *testing.T, e *env) {
		r := e.start(t, "alice")
		bobs := e.start(t, "bob")
		e.load(t, r)
		_, err := e.st.UpdateUser(t.Context(), "alice", func(u *store.User) error { u.Disabled = true; return nil })
		if err != nil {
			t.Fatal(err)
		}
		e.wantNoSession(t, r)
		e.wantDeleted(t, r)
		// Enabling the user again does not bring the session back.
		_, err = e.st.UpdateUser(t.Context(), "alice", func(u *store.User) error { u.Disabled = false; return nil })
		if err != nil {
			t.Fatal(err)
		}
		e.wantNoSession(t, r)
		e.load(t, bobs)
	})
}

func TestDeletedUser(t *testing.T) {
	onStores(t, session.Options{}, func(t *testing.T, e *env) {
		r := e.start(t, "alice")
		if err := e.st.DeleteUser(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		e.wantNoSession(t, r)
		// A new alice does not inherit the session.
		if err := e.st.CreateUser(t.Context(), store.User{Name: "alice"}); err != nil {
			t.Fatal(err)
		}
		e.wantNoSession(t, r)
	})
}

func TestEndAndEndUser(t *testing.T) {
	onStores(t, session.Options{}, func(t *testing.T, e *env) {
		a1, a2, b := e.start(t, "alice"), e.start(t, "alice"), e.start(t, "bob")
		ctx := t.Context()

		if err := e.m.End(ctx, a1); err != nil {
			t.Fatal(err)
		}
		e.wantNoSession(t, a1)
		e.load(t, a2)
		if err := e.m.End(ctx, a1); err != nil {
			t.Fatalf("End of an ended session: %v", err)
		}
		if err := e.m.End(ctx, httptest.NewRequest(http.MethodGet, "/", nil)); err != nil {
			t.Fatalf("End without a cookie: %v", err)
		}

		a3 := e.start(t, "alice")
		if err := e.m.EndUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		e.wantNoSession(t, a2)
		e.wantNoSession(t, a3)
		e.load(t, b)
		if err := e.m.EndUser(ctx, "alice"); err != nil {
			t.Fatalf("EndUser without sessions: %v", err)
		}
	})
}

func TestTouchOnlyAfterAMinute(t *testing.T) {
	onStores(t, session.Options{}, func(t *testing.T, e *env) {
		r := e.start(t, "alice")
		started := e.clock.Now()
		seen := func() time.Time {
			t.Helper()
			s, err := e.stored(t, r)
			if err != nil {
				t.Fatal(err)
			}
			return s.SeenAt
		}
		e.clock.Advance(59 * time.Second)
		if a := e.load(t, r); !a.Session.SeenAt.Equal(started) {
			t.Fatalf("SeenAt after 59s = %v, want %v", a.Session.SeenAt, started)
		}
		if got := seen(); !got.Equal(started) {
			t.Fatalf("stored SeenAt after 59s = %v, want the start %v", got, started)
		}
		e.clock.Advance(time.Second)
		if a := e.load(t, r); !a.Session.SeenAt.Equal(e.clock.Now()) {
			t.Fatalf("SeenAt after 60s = %v, want %v", a.Session.SeenAt, e.clock.Now())
		}
		if got := seen(); !got.Equal(e.clock.Now()) {
			t.Fatalf("stored SeenAt after 60s = %v, want %v", got, e.clock.Now())
		}
	})
}

// counting is a real store that counts session reads.
type counting struct {
	store.Store
	gets atomic.Int64
}

func (c *counting) GetSession(ctx context.Context, id store.TokenHash) (store.Session, error) {
	c.gets.Add(1)
	return c.Store.GetSession(ctx, id)
}

func TestMalformedCookieCostsNoStoreAccess(t *testing.T) {
	st := &counting{Store: openBolt(t)}
	m := session.New(st, st, session.Options{})
	valid := strings.Repeat("A", 43)
	for _, v := range []string{
		"", "x", strings.Repeat("A", 42), strings.Repeat("A", 44), strings.Repeat("A", 42) + "!",
		strings.Repeat("A", 42) + "+", strings.Repeat("A", 42) + "B", // B leaves bits set past the 32 bytes
	} {
		if _, err := m.Load(t.Context(), withCookie(session.CookieNamePlain, v)); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("Load(%q) = %v, want ErrNoSession", v, err)
		}
	}
	if _, err := m.Load(t.Context(), httptest.NewRequest(http.MethodGet, "/", nil)); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Load without a cookie = %v", err)
	}
	if n := st.gets.Load(); n != 0 {
		t.Fatalf("malformed cookies cost %d store reads", n)
	}
	if _, err := m.Load(t.Context(), withCookie(session.CookieNamePlain, valid)); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("Load of an unknown session = %v", err)
	}
	if n := st.gets.Load(); n != 1 {
		t.Fatalf("a well-formed unknown cookie cost %d store reads, want 1", n)
	}
}

func TestStoreOutageIsNotNoSession(t *testing.T) {
	st := openBolt(t)
	if err := st.CreateUser(t.Context(), store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	m := session.New(st, st, session.Options{})
	value, err := m.Start(t.Context(), store.User{Name: "alice"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r := withCookie(session.CookieNamePlain, value)
	if _, err := m.Load(t.Context(), r); err == nil || errors.Is(err, session.ErrNoSession) {
		t.Fatalf("Load on a closed store = %v, want the store's error", err)
	}
	if err := m.End(t.Context(), r); err == nil {
		t.Fatal("End on a closed store succeeded")
	}
	if err := m.EndUser(t.Context(), "alice"); err == nil {
		t.Fatal("EndUser on a closed store succeeded")
	}
	if _, err := m.Start(t.Context(), store.User{Name: "alice"}, "", ""); err == nil {
		t.Fatal("Start on a closed store succeeded")
	}
}

// failingTouch is a real store whose TouchSession fails while broken.
type failingTouch struct {
	store.Store
	broken atomic.Bool
}

var errDown = errors.New("store down")

func (f *failingTouch) TouchSession(ctx context.Context, id store.TokenHash, at time.Time) error {
	if f.broken.Load() {
		return errDown
	}
	return f.Store.TouchSession(ctx, id, at)
}

func TestFailedTouchIsLoggedOncePerStreak(t *testing.T) {
	st := &failingTouch{Store: openBolt(t)}
	if err := st.CreateUser(t.Context(), store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	c := newClock()
	m := session.New(st, st, session.Options{Now: c.Now, Logger: zap.New(core)})
	value, err := m.Start(t.Context(), store.User{Name: "alice"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	r := withCookie(session.CookieNamePlain, value)
	errorsLogged := func() int { return logs.FilterLevelExact(zapcore.ErrorLevel).Len() }

	st.broken.Store(true)
	for range 3 {
		c.Advance(2 * time.Minute)
		if _, err := m.Load(t.Context(), r); err != nil {
			t.Fatalf("a failed touch failed the request: %v", err)
		}
	}
	if n := errorsLogged(); n != 1 {
		t.Fatalf("a streak of 3 failed touches logged %d errors, want 1", n)
	}
	st.broken.Store(false)
	c.Advance(2 * time.Minute)
	if _, err := m.Load(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	st.broken.Store(true)
	c.Advance(2 * time.Minute)
	if _, err := m.Load(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if n := errorsLogged(); n != 2 {
		t.Fatalf("two streaks logged %d errors, want 2", n)
	}
	csrf := ""
	st.broken.Store(false)
	if a, err := m.Load(t.Context(), r); err == nil {
		csrf = a.CSRF()
	}
	for _, entry := range logs.All() {
		text := entry.Message + fmt.Sprint(entry.ContextMap())
		if strings.Contains(text, value) || (csrf != "" && strings.Contains(text, csrf)) {
			t.Fatalf("a log entry holds a secret: %s", text)
		}
	}
}

func TestCookies(t *testing.T) {
	value := strings.Repeat("A", 43)
	tlsReq := httptest.NewRequest(http.MethodGet, "https://gw.example/", nil)
	tlsReq.TLS = &tls.ConnectionState{}
	plainReq := httptest.NewRequest(http.MethodGet, "http://gw.example/", nil)

	set := func(r *http.Request) *http.Cookie {
		w := httptest.NewRecorder()
		session.SetCookie(w, r, value)
		cs := w.Result().Cookies()
		if len(cs) != 1 {
			t.Fatalf("SetCookie set %d cookies", len(cs))
		}
		return cs[0]
	}
	c := set(tlsReq)
	if c.Name != "__Host-tokengate-session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode ||
		c.Path != "/" || c.Domain != "" || c.MaxAge != 0 || !c.Expires.IsZero() || c.Value != value {
		t.Fatalf("TLS cookie %+v", c)
	}
	c = set(plainReq)
	if c.Name != "tokengate-session" || c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode ||
		c.Path != "/" || c.Domain != "" || c.MaxAge != 0 || c.Value != value {
		t.Fatalf("plain cookie %+v", c)
	}

	w := httptest.NewRecorder()
	session.ClearCookie(w, tlsReq)
	cleared := map[string]*http.Cookie{}
	for _, c := range w.Result().Cookies() {
		cleared[c.Name] = c
	}
	for _, name := range []string{"__Host-tokengate-session", "tokengate-session"} {
		c := cleared[name]
		if c == nil || c.MaxAge >= 0 || c.Value != "" || c.Path != "/" || !c.HttpOnly {
			t.Fatalf("ClearCookie for %s: %+v", name, c)
		}
	}
	if !cleared["__Host-tokengate-session"].Secure {
		t.Fatal("ClearCookie: the __Host- cookie without Secure is refused by browsers")
	}
	if raw := w.Header().Values("Set-Cookie"); !strings.Contains(strings.Join(raw, "\n"), "Max-Age=0") {
		t.Fatalf("Set-Cookie %q has no Max-Age=0", raw)
	}

	// CookieValue.
	other := strings.Repeat("B", 42) + "A"
	for _, tc := range []struct {
		name   string
		tls    bool
		cookie string
		want   string
	}{
		{"plain name over HTTP", false, "tokengate-session=" + value, value},
		{"host name over HTTP", false, "__Host-tokengate-session=" + value, value},
		{"host name over TLS", true, "__Host-tokengate-session=" + value, value},
		{"plain name over TLS is ignored", true, "tokengate-session=" + value, ""},
		{"host name wins over TLS", true, "tokengate-session=" + other + "; __Host-tokengate-session=" + value, value},
		{"malformed", false, "tokengate-session=abc", ""},
		{"first well-formed", false, "tokengate-session=abc; tokengate-session=" + value, value},
		{"none", false, "a=1", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		r.Header.Set("Cookie", tc.cookie)
		if got := session.CookieValue(r); got != tc.want {
			t.Errorf("%s: CookieValue = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStripCookie(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string // nil: no Cookie header
	}{
		{"ours in the middle", []string{"a=1; tokengate-session=x; b=2"}, []string{"a=1; b=2"}},
		{"only ours", []string{"tokengate-session=x"}, nil},
		{"both of ours", []string{"__Host-tokengate-session=x; tokengate-session=y"}, nil},
		{"host one first", []string{"__Host-tokengate-session=x;a=1"}, []string{"a=1"}},
		{"several lines", []string{"a=1", "tokengate-session=x", "b=2; __Host-tokengate-session=y"}, []string{"a=1", "b=2"}},
		{"other cookies untouched", []string{"a=1;b=2", "c=3"}, []string{"a=1;b=2", "c=3"}},
		{"look-alike names kept", []string{"tokengate-sessions=1; x-tokengate-session=2; Tokengate-Session=3"},
			[]string{"tokengate-sessions=1; x-tokengate-session=2; Tokengate-Session=3"}},
		{"no header", nil, nil},
	} {
		h := http.Header{}
		for _, line := range tc.in {
			h.Add("Cookie", line)
		}
		h.Set("X-Other", "kept")
		session.StripCookie(h)
		got, ok := h["Cookie"]
		if tc.want == nil {
			if ok {
				t.Errorf("%s: Cookie = %q, want none", tc.name, got)
			}
		} else if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: Cookie = %q, want %q", tc.name, got, tc.want)
		}
		if h.Get("X-Other") != "kept" {
			t.Errorf("%s: another header was touched", tc.name)
		}
	}
}

// A sign-in that checked the old password while the password changed
// (its session is made after the change ended the user's sessions) is
// refused: the session remembers which password it was made with. The same
// for token login switched off in between.
func TestSessionFromBeforeAChangeIsRefused(t *testing.T) {
	st := openBolt(t)
	old := store.User{Name: "alice", PasswordHash: "$2a$04$old", TokenLogin: true}
	if err := st.CreateUser(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	m := session.New(st, st, session.Options{})
	for name, change := range map[string]func(*store.User) error{
		"new password":    func(u *store.User) error { u.PasswordHash = "$2a$04$new"; return nil },
		"token login off": func(u *store.User) error { u.TokenLogin = false; return nil },
	} {
		if _, err := st.UpdateUser(t.Context(), "alice", func(u *store.User) error { *u = old; return nil }); err != nil {
			t.Fatal(err)
		}
		authenticated, err := st.GetUser(t.Context(), "alice") // what the sign-in checked
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpdateUser(t.Context(), "alice", change); err != nil { // the change lands
			t.Fatal(err)
		}
		value, err := m.Start(t.Context(), authenticated, "", "") // then the session is made
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Load(t.Context(), withCookie(session.CookieNamePlain, value)); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("%s: a session signed in before it still loads (%v)", name, err)
		}
	}
	// Switching token login on does not end a session.
	if _, err := st.UpdateUser(t.Context(), "alice", func(u *store.User) error { u.TokenLogin = false; return nil }); err != nil {
		t.Fatal(err)
	}
	u, err := st.GetUser(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	value, err := m.Start(t.Context(), u, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateUser(t.Context(), "alice", func(u *store.User) error { u.TokenLogin = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Load(t.Context(), withCookie(session.CookieNamePlain, value)); err != nil {
		t.Errorf("token login switched on ended the session: %v", err)
	}
}
