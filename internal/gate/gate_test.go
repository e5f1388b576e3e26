package gate_test

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/invalidate"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/users"
)

const lastUseEvery = 10 * time.Second

// clock is an injectable, lock-free clock (benchmarks read it on every
// check).
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time                  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration)         { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)                 { c.ns.Store(t.UnixNano()) }
func newClock(t time.Time) *clock                { c := &clock{}; c.Set(t); return c }
func (e *env) ops() uint64                       { return e.st.Ops() }
func (e *env) pending() map[string]store.LastUse { return e.uses.Pending("alice") }

// env wires a Checker the way the app does: a real embedded store, the
// decision cache, a last-use recorder, and the checker subscribed to the
// store's events. alice may use tokens.
type env struct {
	st      *boltstore.Store
	clk     *clock
	uses    *lastuse.Recorder
	checker *gate.Checker
	users   *users.Service
	pats    *pat.Service
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvWith(tb, nil)
}

// newEnvWith is newEnv with a checker that counts in m (nil: no metrics).
func newEnvWith(tb testing.TB, m *metrics.Set) *env {
	tb.Helper()
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	clk := newClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	e := &env{st: st, clk: clk, uses: lastuse.New(st)}
	c := cache.New(cache.Options{Now: clk.Now})
	e.checker = gate.New(st, c, e.uses, gate.Options{LastUseEvery: lastUseEvery, Now: clk.Now, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	targets := invalidate.Targets{
		Cache: c, Clients: oauthclient.NewTable(st), Denied: accesstoken.NewDenyList(st),
		Keys: keyring.NewHolder(st, keyring.Policy{}, "", 0, clk.Now), ACL: acl.New(st),
	}
	if err := st.Subscribe(ctx, targets.Handle); err != nil {
		tb.Fatal(err)
	}
	e.users = users.NewService(st, 4, clk.Now)
	e.pats = pat.NewService(st, e.uses, 0, clk.Now)
	if _, err := e.users.Create(context.Background(), users.NewUser{Name: "alice", Password: "correct horse", TokenLogin: true}); err != nil {
		tb.Fatal(err)
	}
	return e
}

// newToken issues a PAT for alice.
func (e *env) newToken(tb testing.TB, req pat.CreateRequest) pat.Created {
	tb.Helper()
	if req.Label == "" {
		req.Label = "t" + e.clk.Now().Format("150405.000000000")
		e.clk.Advance(time.Nanosecond)
	}
	c, err := e.pats.Create(context.Background(), "alice", req)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func (e *env) check(tok string, ip netip.Addr, required ...string) error {
	_, err := e.checker.Check(context.Background(), gate.Request{Token: tok, ClientIP: ip, Required: required})
	return err
}

var clientIP = netip.MustParseAddr("192.0.2.10")

// wantRefused checks that err is want and maps to status.
func wantRefused(t *testing.T, err, want error, status int) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if p := apierr.For(err); p.Status != status {
		t.Fatalf("status = %d, want %d", p.Status, status)
	}
}

// opsDuring returns how many store operations fn made.
func (e *env) opsDuring(fn func()) uint64 {
	before := e.ops()
	fn()
	return e.ops() - before
}

// malformedPAT is a PAT-shaped token whose checksum is wrong.
func malformedPAT(t *testing.T) string {
	t.Helper()
	tok, err := token.NewPAT()
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(tok)
	last := len(b) - 1
	if b[last] == '0' {
		b[last] = '1'
	} else {
		b[last] = '0'
	}
	return string(b)
}

func TestValidPAT(t *testing.T) {
	e := newEnv(t)
	c := e.newToken(t, pat.CreateRequest{Scopes: []string{"write", "read"}})
	id, err := e.checker.Check(context.Background(), gate.Request{Token: c.Token, ClientIP: clientIP, Required: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice" || id.TokenType != "pat" || id.TokenID != c.ID || id.Scopes != "read write" {
		t.Fatalf("identity = %+v", id)
	}
}

func TestCachedCheckMakesNoStoreOperation(t *testing.T) {
	e := newEnv(t)
	c := e.newToken(t, pat.CreateRequest{})
	if n := e.opsDuring(func() {
		if err := e.check(c.Token, clientIP); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Fatalf("cold check made %d store operations, want 1", n)
	}
	for i := range 3 {
		if n := e.opsDuring(func() {
			if err := e.check(c.Token, clientIP); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Fatalf("cached check %d made %d store operations, want 0", i, n)
		}
	}
}

func TestTokenShapes(t *testing.T) {
	tests := []struct {
		name   string
		tok    func(t *testing.T) string
		want   error
		status int
	}{
		{"none", func(*testing.T) string { return "" }, apierr.ErrNoToken, http.StatusUnauthorized},
		{"bad checksum", malformedPAT, apierr.ErrMalformedToken, http.StatusUnauthorized},
		{"garbage", func(*testing.T) string { return "not a token" }, apierr.ErrMalformedToken, http.StatusUnauthorized},
		{"uppercase hex", func(*testing.T) string { return "ABCDEF0123456789ABCDEF0123456789ABCDEF01" }, apierr.ErrMalformedToken, http.StatusUnauthorized},
		{"jwt", func(*testing.T) string { return "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl" }, apierr.ErrUnsupportedToken, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok := tt.tok(t)
			for range 2 {
				if n := e.opsDuring(func() { wantRefused(t, e.check(tok, clientIP), tt.want, tt.status) }); n != 0 {
					t.Fatalf("refusal by shape made %d store operations, want 0", n)
				}
			}
		})
	}
}

func TestUnknownTokenIsCachedAsMissing(t *testing.T) {
	for _, kind := range []string{"pat", "legacy"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			tok, err := token.NewPAT()
			if kind == "legacy" {
				tok, err = token.NewLegacy()
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := e.opsDuring(func() { wantRefused(t, e.check(tok, clientIP), apierr.ErrInvalidToken, http.StatusUnauthorized) }); n != 1 {
				t.Fatalf("first check made %d store operations, want 1", n)
			}
			if n := e.opsDuring(func() { wantRefused(t, e.check(tok, clientIP), apierr.ErrInvalidToken, http.StatusUnauthorized) }); n != 0 {
				t.Fatalf("second check made %d store operations, want 0 (negative entry)", n)
			}
		})
	}
}

func TestTokenCreatedAfterNegativeEntry(t *testing.T) {
	e := newEnv(t)
	tok, err := token.NewPAT()
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, e.check(tok, clientIP), apierr.ErrInvalidToken, http.StatusUnauthorized)
	err = e.st.CreateToken(context.Background(), store.Token{
		ID: "0123456789abcdef", Owner: "alice", Kind: store.KindPAT, Hash: token.Hash(tok),
		Enabled: true, CreatedAt: e.clk.Now(),
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.check(tok, clientIP); err != nil {
		t.Fatalf("token refused after it was created: %v", err)
	}
}

// TestChangesTakeEffectAtOnce: every change is seen by the next check,
// although the token was cached.
func TestChangesTakeEffectAtOnce(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, e *env, c pat.Created)
		want   error
		status int
	}{
		{"revoked", func(t *testing.T, e *env, c pat.Created) {
			if _, err := e.st.DeleteToken(ctx, "alice", c.ID); err != nil {
				t.Fatal(err)
			}
		}, apierr.ErrInvalidToken, http.StatusUnauthorized},
		{"token switched off", func(t *testing.T, e *env, c pat.Created) {
			off := false
			if _, err := e.pats.Update(ctx, "alice", c.ID, pat.UpdateRequest{Enabled: &off}); err != nil {
				t.Fatal(err)
			}
		}, apierr.ErrTokenDisabled, http.StatusUnauthorized},
		{"owner token_login off", func(t *testing.T, e *env, _ pat.Created) {
			off := false
			if _, err := e.users.Update(ctx, "alice", users.Changes{TokenLogin: &off}); err != nil {
				t.Fatal(err)
			}
		}, apierr.ErrLoginNotAllowed, http.StatusUnauthorized},
		{"owner disabled", func(t *testing.T, e *env, _ pat.Created) {
			on := true
			if _, err := e.users.Update(ctx, "alice", users.Changes{Disabled: &on}); err != nil {
				t.Fatal(err)
			}
		}, apierr.ErrLoginNotAllowed, http.StatusUnauthorized},
		{"owner deleted", func(t *testing.T, e *env, _ pat.Created) {
			if err := e.users.Delete(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
		}, apierr.ErrInvalidToken, http.StatusUnauthorized},
		{"allow-list set", func(t *testing.T, e *env, c pat.Created) {
			if _, err := e.pats.Update(ctx, "alice", c.ID, pat.UpdateRequest{AllowedIPs: &[]string{"10.0.0.0/8"}}); err != nil {
				t.Fatal(err)
			}
		}, apierr.ErrIPNotAllowed, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.newToken(t, pat.CreateRequest{})
			if err := e.check(c.Token, clientIP); err != nil {
				t.Fatal(err)
			}
			tt.change(t, e, c)
			wantRefused(t, e.check(c.Token, clientIP), tt.want, tt.status)
			// The refusal is cached too.
			if n := e.opsDuring(func() { wantRefused(t, e.check(c.Token, clientIP), tt.want, tt.status) }); n != 0 {
				t.Fatalf("repeated refusal made %d store operations", n)
			}
		})
	}

	t.Run("switched back on", func(t *testing.T) {
		e := newEnv(t)
		c := e.newToken(t, pat.CreateRequest{})
		for _, on := range []bool{false, true} {
			if _, err := e.pats.Update(ctx, "alice", c.ID, pat.UpdateRequest{Enabled: &on}); err != nil {
				t.Fatal(err)
			}
			if err := e.check(c.Token, clientIP); (err == nil) != on {
				t.Fatalf("enabled=%v: err = %v", on, err)
			}
		}
	})
}

func TestExpiry(t *testing.T) {
	e := newEnv(t)
	hour := int64(3600)
	c := e.newToken(t, pat.CreateRequest{ExpiresIn: &hour})
	if err := e.check(c.Token, clientIP); err != nil {
		t.Fatal(err)
	}
	e.clk.Set(c.ExpiresAt.Add(-time.Nanosecond))
	if err := e.check(c.Token, clientIP); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	e.clk.Set(*c.ExpiresAt)
	wantRefused(t, e.check(c.Token, clientIP), apierr.ErrExpiredToken, http.StatusUnauthorized)
	e.clk.Advance(24 * time.Hour)
	wantRefused(t, e.check(c.Token, clientIP), apierr.ErrExpiredToken, http.StatusUnauthorized)
}

func TestIPAllowList(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		ip      netip.Addr
		ok      bool
	}{
		{"no list, known ip", nil, clientIP, true},
		{"no list, unknown ip", nil, netip.Addr{}, true},
		{"in prefix", []string{"10.0.0.0/8"}, netip.MustParseAddr("10.20.30.40"), true},
		{"exact address", []string{"192.0.2.10"}, clientIP, true},
		{"ipv4-mapped client", []string{"192.0.2.0/24"}, netip.MustParseAddr("::ffff:192.0.2.10"), true},
		{"ipv6 prefix", []string{"2001:db8::/32"}, netip.MustParseAddr("2001:db8::7"), true},
		{"outside", []string{"10.0.0.0/8"}, netip.MustParseAddr("11.0.0.1"), false},
		{"other family", []string{"10.0.0.0/8"}, netip.MustParseAddr("2001:db8::1"), false},
		{"unknown client ip", []string{"10.0.0.0/8"}, netip.Addr{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.newToken(t, pat.CreateRequest{AllowedIPs: tt.allowed})
			err := e.check(c.Token, tt.ip)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantRefused(t, err, apierr.ErrIPNotAllowed, http.StatusForbidden)
		})
	}
}

func TestRequiredScopes(t *testing.T) {
	tests := []struct {
		name             string
		granted, require []string
		ok               bool
	}{
		{"none required", nil, nil, true},
		{"granted", []string{"read", "write"}, []string{"read"}, true},
		{"all granted", []string{"read", "write"}, []string{"write", "read"}, true},
		{"missing", []string{"read"}, []string{"write"}, false},
		{"one of two missing", []string{"read"}, []string{"read", "write"}, false},
		{"no scopes", nil, []string{"read"}, false},
		{"case sensitive", []string{"Read"}, []string{"read"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.newToken(t, pat.CreateRequest{Scopes: tt.granted})
			err := e.check(c.Token, clientIP, tt.require...)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantRefused(t, err, apierr.ErrInsufficientScope, http.StatusForbidden)
		})
	}
}

func TestConcurrentColdChecksShareOneStoreRead(t *testing.T) {
	tests := []struct {
		name string
		tok  func(t *testing.T, e *env) string
		want error
	}{
		{"existing", func(t *testing.T, e *env) string { return e.newToken(t, pat.CreateRequest{}).Token }, nil},
		{"unknown", func(t *testing.T, _ *env) string {
			tok, err := token.NewPAT()
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, apierr.ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 50
			e := newEnv(t)
			tok := tt.tok(t, e)
			start := make(chan struct{})
			errs := make([]error, n)
			var wg sync.WaitGroup
			before := e.ops()
			for i := range n {
				wg.Go(func() {
					<-start
					errs[i] = e.check(tok, clientIP)
				})
			}
			close(start)
			wg.Wait()
			if d := e.ops() - before; d != 1 {
				t.Fatalf("%d concurrent cold checks made %d store operations, want 1", n, d)
			}
			for i, err := range errs {
				if !errors.Is(err, tt.want) && err != tt.want {
					t.Fatalf("check %d: err = %v, want %v", i, err, tt.want)
				}
			}
		})
	}
}

func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t)
	cached := e.newToken(t, pat.CreateRequest{})
	uncached := e.newToken(t, pat.CreateRequest{})
	if err := e.check(cached.Token, clientIP); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}

	unknown, err := token.NewPAT()
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{uncached.Token, unknown} {
		wantRefused(t, e.check(tok, clientIP), apierr.ErrUnavailable, http.StatusServiceUnavailable)
	}
	// A failed look-up is not cached as a refusal.
	wantRefused(t, e.check(uncached.Token, clientIP), apierr.ErrUnavailable, http.StatusServiceUnavailable)
	if err := e.check(cached.Token, clientIP); err != nil {
		t.Fatalf("cached token refused while the store is down: %v", err)
	}
}

func TestLastUseRecorded(t *testing.T) {
	e := newEnv(t)
	c := e.newToken(t, pat.CreateRequest{})
	other := e.newToken(t, pat.CreateRequest{})

	wantUse := func(stage string, at time.Time, ip string) {
		t.Helper()
		u, ok := e.pending()[c.ID]
		if !ok || !u.At.Equal(at) || u.IP != ip || u.Owner != "alice" || u.TokenID != c.ID {
			t.Fatalf("%s: pending use = %+v, %v; want at %v from %q", stage, u, ok, at, ip)
		}
	}

	if len(e.pending()) != 0 {
		t.Fatal("a use is pending before any check")
	}
	first := e.clk.Now()
	if err := e.check(c.Token, clientIP); err != nil {
		t.Fatal(err)
	}
	wantUse("first check", first, clientIP.String())
	if _, ok := e.pending()[other.ID]; ok {
		t.Fatal("an unused token has a pending use")
	}

	// Repeated checks from the same address within LastUseEvery do not
	// record again.
	for range 3 {
		e.clk.Advance(lastUseEvery / 10)
		if err := e.check(c.Token, clientIP); err != nil {
			t.Fatal(err)
		}
	}
	wantUse("within the interval", first, clientIP.String())

	// A check from another address is recorded at once (the recent
	// addresses see it), then throttled like the first.
	other2 := netip.MustParseAddr("198.51.100.1")
	e.clk.Advance(lastUseEvery / 10)
	second := e.clk.Now()
	for range 2 {
		if err := e.check(c.Token, other2); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(lastUseEvery / 10)
	}
	wantUse("from another address", second, other2.String())
	if n := len(e.uses.Pending("alice")); n != 1 {
		t.Fatalf("%d tokens pending, want 1", n)
	}

	// Once the interval has passed, the next check is recorded.
	e.clk.Set(first.Add(lastUseEvery))
	if err := e.check(c.Token, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	wantUse("after the interval", first.Add(lastUseEvery), "")

	// A refused check is not a use.
	e.clk.Advance(2 * lastUseEvery)
	if err := e.check(c.Token, clientIP, "admin"); !errors.Is(err, apierr.ErrInsufficientScope) {
		t.Fatal(err)
	}
	wantUse("after a refusal", first.Add(lastUseEvery), "")

	// The recorded use reaches the store on flush.
	if err := e.uses.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored, err := e.st.GetToken(context.Background(), "alice", c.ID)
	if err != nil || !stored.LastUsedAt.Equal(first.Add(lastUseEvery)) {
		t.Fatalf("stored last use = %v, %v", stored.LastUsedAt, err)
	}
}

// TestLastUseHostCleaned: the site recorded with a use is the client's
// Host made printable and bounded (store.CleanHost): a client of a
// catch-all site cannot store a megabyte or terminal escapes in a token's
// last use and recent addresses.
func TestLastUseHostCleaned(t *testing.T) {
	e := newEnv(t)
	c := e.newToken(t, pat.CreateRequest{})
	host := "\x1b[2Jevil\tsite " + strings.Repeat("a", 1<<16)
	if _, err := e.checker.Check(context.Background(), gate.Request{Token: c.Token, ClientIP: clientIP, Host: host}); err != nil {
		t.Fatal(err)
	}
	if err := e.uses.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored, err := e.st.GetToken(context.Background(), "alice", c.ID)
	if err != nil || len(stored.RecentAddresses) != 1 {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	want := store.CleanHost(host)
	if !strings.HasPrefix(want, "?[2Jevil?site?aaa") || len(want) != store.MaxHostLength {
		t.Fatalf("CleanHost = %.40q (%d bytes)", want, len(want))
	}
	if stored.LastUsedHost != want || stored.RecentAddresses[0].Host != want {
		t.Errorf("recorded host %.40q (%d bytes), recent %.40q; want %.40q", stored.LastUsedHost, len(stored.LastUsedHost), stored.RecentAddresses[0].Host, want)
	}
}

// ---- benchmarks ----

func BenchmarkCheckCachedPAT(b *testing.B) {
	e := newEnv(b)
	c := e.newToken(b, pat.CreateRequest{Scopes: []string{"read", "write"}})
	req := gate.Request{Token: c.Token, ClientIP: clientIP, Required: []string{"read"}}
	ctx := context.Background()
	if _, err := e.checker.Check(ctx, req); err != nil {
		b.Fatal(err)
	}
	before := e.ops()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.checker.Check(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if d := e.ops() - before; d != 0 {
		b.Fatalf("cached checks made %d store operations", d)
	}
}

// BenchmarkCheckCachedPATAddresses is BenchmarkCheckCachedPAT for a token
// used by a fleet of four addresses in turn: recordUse remembers four
// addresses per decision (decision.UseMemory), so it should cost what one
// address costs.
func BenchmarkCheckCachedPATAddresses(b *testing.B) {
	e := newEnv(b)
	c := e.newToken(b, pat.CreateRequest{Scopes: []string{"read", "write"}})
	var reqs []gate.Request
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"} {
		reqs = append(reqs, gate.Request{Token: c.Token, ClientIP: netip.MustParseAddr(a), Required: []string{"read"}})
	}
	ctx := context.Background()
	if _, err := e.checker.Check(ctx, reqs[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if _, err := e.checker.Check(ctx, reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCheckMalformed(b *testing.B) {
	e := newEnv(b)
	tok, err := token.NewPAT()
	if err != nil {
		b.Fatal(err)
	}
	bad := []byte(tok)
	bad[len(bad)-1] ^= 1 // '0'..'z' stay alphanumeric; the checksum breaks
	req := gate.Request{Token: string(bad), ClientIP: clientIP}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.checker.Check(ctx, req); !errors.Is(err, apierr.ErrMalformedToken) {
			b.Fatalf("err = %v", err)
		}
	}
}
