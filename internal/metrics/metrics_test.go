package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/metricstest"
	"github.com/tokengate/tokengate/internal/token"
)

// Interface guard: the Set observes the store's calls.
var _ store.Observer = (*metrics.Set)(nil)

// every returns a registry holding every metric family, each with a
// series (a Vec shows up only once it has one).
func every(t *testing.T) (*metrics.Set, *prometheus.Registry) {
	t.Helper()
	one := func() float64 { return 1 }
	s := metrics.New(metrics.Funcs{CacheEntries: one, CacheEvictions: one, BreakerOpen: one, BreakerOpens: one, WebhookQueue: one,
		TaskFailures: map[string]func() float64{"dormancy_scan": one, "expiry_scan": func() float64 { return 2 }}})
	reg := prometheus.NewPedanticRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := metrics.Register(reg, metrics.AuditFailures(one)); err != nil {
		t.Fatal(err)
	}
	s.Decision(nil, metrics.KindPAT, true, time.Microsecond)
	s.CacheLookup(true, false)
	s.CacheLookup(true, true)
	s.CacheLookup(false, false)
	s.StoreCall("LookupToken", time.Millisecond, "")
	s.StoreCall("LookupToken", time.Second, metrics.StoreUnreachable)
	s.Event("reset")
	s.TokenRequest("client_credentials", nil)
	s.SignIn(metrics.SignInWeb, apierr.ErrBadCredentials)
	s.WebhookEvent(metrics.WebhookDelivered)
	return s, reg
}

// families is every metric family's name and type (counter, gauge,
// histogram).
func families(t *testing.T) map[string]string {
	t.Helper()
	_, reg := every(t)
	out := map[string]string{}
	for name, mf := range metricstest.Gather(t, reg) {
		out[name] = strings.ToLower(mf.GetType().String())
	}
	return out
}

func TestNilSetCountsNothing(t *testing.T) {
	var s *metrics.Set
	s.Decision(errors.New("x"), metrics.KindPAT, false, time.Second)
	s.CacheLookup(true, false)
	s.StoreCall("GetUser", time.Second, "")
	s.Event("token")
	s.TokenRequest("client_credentials", nil)
	s.SignIn(metrics.SignInWeb, nil)
	s.WebhookEvent(metrics.WebhookQueued)
	if err := s.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterTwiceAndInTwoRegistries(t *testing.T) {
	s, reg := every(t)
	// The same registry again (a second provisioning): no error.
	if err := s.Register(reg); err != nil {
		t.Fatalf("registering again: %v", err)
	}
	// A config reload: a new registry, the same collectors, whose counts
	// go on.
	next := prometheus.NewPedanticRegistry()
	if err := s.Register(next); err != nil {
		t.Fatalf("registering in a new registry: %v", err)
	}
	s.Decision(nil, metrics.KindPAT, true, time.Microsecond)
	f := metricstest.Gather(t, next)
	if got := f.Value("tokengate_decisions_total", metricstest.L("result", "allowed", "kind", "pat")); got != 2 {
		t.Fatalf("decisions after the reload = %v, want 2", got)
	}
}

func TestCounts(t *testing.T) {
	_, reg := every(t)
	f := metricstest.Gather(t, reg)
	L := metricstest.L
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tokengate_store_operations_total", L("operation", "LookupToken"), 2},
		{"tokengate_store_errors_total", L("operation", "LookupToken", "reason", "unreachable"), 1},
		{"tokengate_store_operation_duration_seconds", L("operation", "LookupToken"), 2},
		{"tokengate_invalidation_events_total", L("kind", "reset"), 1},
		{"tokengate_invalidation_resets_total", nil, 1},
		{"tokengate_token_requests_total", L("grant_type", "client_credentials", "result", "issued"), 1},
		{"tokengate_sign_ins_total", L("source", "web", "result", "invalid_credentials"), 1},
		{"tokengate_cache_hits_total", nil, 1},
		{"tokengate_cache_negative_hits_total", nil, 1},
		{"tokengate_cache_misses_total", nil, 1},
		{"tokengate_cache_entries", nil, 1},
		{"tokengate_store_breaker_open", nil, 1},
		{"tokengate_audit_write_failures_total", nil, 1},
		{"tokengate_background_failures_total", L("task", "dormancy_scan"), 1},
		{"tokengate_background_failures_total", L("task", "expiry_scan"), 2},
	} {
		if got := f.Value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestStoreRefusalHasNoDuration(t *testing.T) {
	s := metrics.New(metrics.Funcs{})
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	s.StoreCall("GetUser", 0, metrics.StoreRefused)
	f := metricstest.Gather(t, reg)
	if f.Value("tokengate_store_errors_total", metricstest.L("reason", "refused")) != 1 ||
		f.Value("tokengate_store_operation_duration_seconds", nil) != 0 {
		t.Fatal("a refused call is an error without a duration")
	}
}

func TestGrantTypeIsBounded(t *testing.T) {
	s := metrics.New(metrics.Funcs{})
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		s.TokenRequest(fmt.Sprintf("made-up-%d", i), apierr.ErrUnsupportedGrantType)
	}
	s.TokenRequest("missing", apierr.Field("grant_type", errors.New("is required")))
	mf := metricstest.Gather(t, reg)["tokengate_token_requests_total"]
	if n := len(mf.GetMetric()); n != 2 {
		t.Fatalf("%d series for made-up grant types, want 2 (other, missing)", n)
	}
	if got := metricstest.Gather(t, reg).Value("tokengate_token_requests_total",
		metricstest.L("grant_type", "other", "result", "unsupported_grant_type")); got != 50 {
		t.Fatalf("other = %v", got)
	}
}

func TestReasonOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{apierr.ErrNoToken, "no_token"},
		{apierr.ErrMalformedToken, "malformed_token"},
		{fmt.Errorf("%w: unknown kid", apierr.ErrInvalidToken), "invalid_token"},
		{apierr.ErrExpiredToken, "expired_token"},
		{apierr.ErrTokenDisabled, "token_disabled"},
		{fmt.Errorf("%w: the user is disabled", apierr.ErrLoginNotAllowed), "login_not_allowed"},
		{apierr.ErrUnsupportedToken, "unsupported_token"},
		{apierr.ErrClientDisabled, "client_disabled"},
		{apierr.ErrIPNotAllowed, "ip_not_allowed"},
		{apierr.ErrInsufficientScope, "insufficient_scope"},
		{apierr.ErrMultipleCredentials, "multiple_credentials"},
		{&apierr.RateLimited{RetryAfter: time.Second}, "rate_limited"},
		{fmt.Errorf("%w: %w", apierr.ErrUnavailable, &store.UnavailableError{Err: errors.New("down")}), "unavailable"},
		{context.Canceled, "canceled"},
		{errors.New("a bug"), "server_error"},
	} {
		if got := metrics.ReasonOf(c.err).String(); got != c.want {
			t.Errorf("ReasonOf(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		present bool
		shape   token.Kind
		dkind   string
		want    string
	}{
		{false, token.Malformed, "", "none"},
		{true, token.Malformed, "", "malformed"},
		{true, token.PAT, "pat", "pat"},
		{true, token.Legacy, "legacy", "legacy"},
		{true, token.JWT, "oauth", "access_token"},
		{true, token.JWT, "jwt", "external_jwt"},
		{true, token.JWT, "", "jwt"},
	} {
		if got := metrics.KindOf(c.present, c.shape, c.dkind).String(); got != c.want {
			t.Errorf("KindOf(%v, %v, %q) = %s, want %s", c.present, c.shape, c.dkind, got, c.want)
		}
	}
}

// TestDecisionAllocatesNothing: after the first use of a label set, a
// decision is counted without allocation (the hot path).
func TestDecisionAllocatesNothing(t *testing.T) {
	s := metrics.New(metrics.Funcs{})
	s.Decision(nil, metrics.KindPAT, true, time.Microsecond)
	s.Decision(apierr.ErrMalformedToken, metrics.KindMalformed, false, time.Microsecond)
	if n := testing.AllocsPerRun(100, func() {
		s.Decision(nil, metrics.KindPAT, true, time.Microsecond)
		s.CacheLookup(true, false)
		s.Decision(apierr.ErrMalformedToken, metrics.KindMalformed, false, time.Microsecond)
	}); n != 0 {
		t.Fatalf("counting a decision allocates %v times", n)
	}
}

// BenchmarkCachedDecision is what metrics add to a cached check: two
// clock reads, the cache look-up counter, the decision counter and the
// latency histogram.
func BenchmarkCachedDecision(b *testing.B) {
	s := metrics.New(metrics.Funcs{})
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		s.CacheLookup(true, false)
		s.Decision(nil, metrics.KindPAT, true, time.Since(start))
	}
}
