package gate_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/testutil/metricstest"
)

// TestMetrics checks what a Check counts: its result, reason and token
// kind, whether it came from the cache, and the cache look-up.
func TestMetrics(t *testing.T) {
	m := metrics.New(metrics.Funcs{})
	reg := prometheus.NewPedanticRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, m)
	ctx := context.Background()
	good := e.newToken(t, pat.CreateRequest{Scopes: []string{"read"}})
	revoked := e.newToken(t, pat.CreateRequest{})
	if _, err := e.st.DeleteToken(ctx, "alice", revoked.ID); err != nil {
		t.Fatal(err)
	}
	check := func(tok string, required ...string) error {
		_, err := e.checker.Check(ctx, gate.Request{Token: tok, ClientIP: clientIP, Required: required})
		return err
	}
	for i := range 3 {
		if err := check(good.Token); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	for range 2 {
		if err := check(revoked.Token); !errors.Is(err, apierr.ErrInvalidToken) {
			t.Fatalf("revoked: %v", err)
		}
	}
	if err := check(good.Token, "admin"); !errors.Is(err, apierr.ErrInsufficientScope) {
		t.Fatalf("scope: %v", err)
	}
	if err := check("not a token"); !errors.Is(err, apierr.ErrMalformedToken) {
		t.Fatalf("malformed: %v", err)
	}
	if err := check(""); !errors.Is(err, apierr.ErrNoToken) {
		t.Fatalf("none: %v", err)
	}

	f := metricstest.Gather(t, reg)
	L := metricstest.L
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tokengate_decisions_total", L("result", "allowed", "reason", "ok", "kind", "pat"), 3},
		{"tokengate_decisions_total", L("result", "refused", "reason", "invalid_token", "kind", "pat"), 2},
		{"tokengate_decisions_total", L("result", "refused", "reason", "insufficient_scope", "kind", "pat"), 1},
		{"tokengate_decisions_total", L("result", "refused", "reason", "malformed_token", "kind", "malformed"), 1},
		{"tokengate_decisions_total", L("result", "refused", "reason", "no_token", "kind", "none"), 1},
		{"tokengate_decisions_total", nil, 8},
		// The first look-up of each token misses, the others hit.
		{"tokengate_cache_misses_total", nil, 2},
		{"tokengate_cache_hits_total", nil, 3},
		{"tokengate_cache_negative_hits_total", nil, 1},
		{"tokengate_decision_duration_seconds", L("cached", "false"), 2 + 2},
		{"tokengate_decision_duration_seconds", L("cached", "true"), 4},
	} {
		if got := f.Value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// BenchmarkCheckCachedPATMetrics is BenchmarkCheckCachedPAT with metrics
// on: the cached path must stay free of allocations.
func BenchmarkCheckCachedPATMetrics(b *testing.B) {
	e := newEnvWith(b, metrics.New(metrics.Funcs{}))
	c := e.newToken(b, pat.CreateRequest{Scopes: []string{"read", "write"}})
	req := gate.Request{Token: c.Token, ClientIP: clientIP, Required: []string{"read"}}
	ctx := context.Background()
	if _, err := e.checker.Check(ctx, req); err != nil {
		b.Fatal(err)
	}
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
}

// TestCachedCheckAllocatesNothing: with metrics on, a cached decision
// costs no allocation (the counters are made once, on first use).
func TestCachedCheckAllocatesNothing(t *testing.T) {
	e := newEnvWith(t, metrics.New(metrics.Funcs{}))
	c := e.newToken(t, pat.CreateRequest{})
	req := gate.Request{Token: c.Token, ClientIP: clientIP}
	ctx := context.Background()
	if _, err := e.checker.Check(ctx, req); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := e.checker.Check(ctx, req); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("a cached check allocates %v times", n)
	}
}

// A PAT taken from a legacy source is refused inside the check: it is
// counted as refused (unsupported_token), never as allowed, and its use
// is not noted.
func TestLegacySourceRefusalIsCounted(t *testing.T) {
	m := metrics.New(metrics.Funcs{})
	reg := prometheus.NewPedanticRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, m)
	c := e.newToken(t, pat.CreateRequest{})
	_, err := e.checker.Check(context.Background(), gate.Request{Token: c.Token, ClientIP: clientIP, Legacy: true})
	if !errors.Is(err, apierr.ErrUnsupportedToken) {
		t.Fatalf("a PAT from a legacy source: %v", err)
	}
	if u, ok := e.pending()[c.ID]; ok {
		t.Errorf("the refused request was noted as a use: %+v", u)
	}
	f := metricstest.Gather(t, reg)
	L := metricstest.L
	if got := f.Value("tokengate_decisions_total", L("result", "refused", "reason", "unsupported_token", "kind", "pat")); got != 1 {
		t.Errorf("refused unsupported_token pat = %v, want 1", got)
	}
	if got := f.Value("tokengate_decisions_total", L("result", "allowed")); got != 0 {
		t.Errorf("allowed = %v, want 0", got)
	}
}
